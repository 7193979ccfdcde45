// The trend chart of a KPI page: draws the series embedded by the page (the same payload as
// GET /api/v1/kpis/{key}/series/) with Chart.js, served from static/vendor/chartjs.
(function () {
  "use strict";

  function draw() {
    var source = document.getElementById("kpi-series");
    var canvas = document.getElementById("kpi-chart");
    if (!source || !canvas || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var hourly = data.grain === "hour";
    var labels = [];
    var byCurrency = {};
    data.points.forEach(function (point) {
      var label = hourly ? point.bucket.slice(0, 16).replace("T", " ") : point.bucket.slice(0, 10);
      if (labels[labels.length - 1] !== label) {
        labels.push(label);
      }
      var key = point.currency || data.unit;
      (byCurrency[key] = byCurrency[key] || []).push(
        point.value === null ? null : Number(point.value)
      );
    });
    var palette = ["#1f5fbf", "#6b3fa0", "#1c6b3a", "#8a5300"];
    var datasets = Object.keys(byCurrency).map(function (key, i) {
      return {
        label: key,
        data: byCurrency[key],
        borderColor: palette[i % palette.length],
        backgroundColor: palette[i % palette.length],
        spanGaps: true,
        tension: 0.2,
      };
    });
    if (data.thresholds) {
      [["warning", "#8a5300"], ["breach", "#b42318"]].forEach(function (band) {
        var level = Number(data.thresholds[band[0]]);
        datasets.push({
          type: "line",
          label: band[0] + " (" + level + ")",
          data: labels.map(function () { return level; }),
          borderColor: band[1],
          borderDash: [6, 4],
          borderWidth: 1,
          pointRadius: 0,
          fill: false,
        });
      });
    }
    new window.Chart(canvas, {
      type: data.chart || "line",
      data: { labels: labels, datasets: datasets },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: data.unit } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
