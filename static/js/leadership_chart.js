// The leadership page's charts: one per currency, the legal entities along the axis, a bar
// per money figure (backlog, billed, earned revenue, margin) and figures in another unit
// (margin variance) as a line on their own axis. Data: the page's embedded JSON
// (dashboards.leadership.chart), the same figures as the table and /api/v1/leadership/.
(function () {
  "use strict";

  var palette = ["#1f5fbf", "#1c6b3a", "#6b3fa0", "#8a5300", "#b42318"];

  function draw() {
    var source = document.getElementById("leadership-data");
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    data.charts.forEach(function (chart, index) {
      var canvas = document.querySelector('[data-leadership-chart="' + index + '"]');
      if (!canvas) {
        return;
      }
      var otherUnits = [];
      var datasets = chart.series.map(function (series, i) {
        var values = series.values.map(function (v) { return v === null ? null : Number(v); });
        var colour = palette[i % palette.length];
        if (series.money) {
          return { type: "bar", label: series.label, data: values, backgroundColor: colour, yAxisID: "y" };
        }
        if (otherUnits.indexOf(series.unit) < 0) {
          otherUnits.push(series.unit);
        }
        return {
          type: "line", label: series.label + " (" + series.unit + ")", data: values,
          borderColor: colour, backgroundColor: colour, yAxisID: "y2", spanGaps: true,
        };
      });
      var scales = {
        y: { beginAtZero: true, title: { display: true, text: chart.currency || "" } },
      };
      if (otherUnits.length) {
        scales.y2 = {
          position: "right", grid: { drawOnChartArea: false },
          title: { display: true, text: otherUnits.join(", ") },
        };
      }
      new window.Chart(canvas, {
        type: "bar",
        data: { labels: chart.labels, datasets: datasets },
        options: {
          maintainAspectRatio: false,
          animation: false,
          scales: scales,
          plugins: { legend: { position: "bottom" } },
        },
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
