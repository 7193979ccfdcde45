// The charts of the reconciliation pages, drawn with Chart.js (static/vendor/chartjs) from the
// data each page embeds: the amount at risk per legal entity on a run's page (bar) and the
// match rate of each finished run on a definition's history (line). Tables beside each chart
// hold the same figures.
(function () {
  "use strict";

  function data(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function draw() {
    if (typeof window.Chart === "undefined") {
      return;
    }
    var risk = data("recon-risk-data");
    var riskCanvas = document.getElementById("recon-risk-chart");
    if (risk && riskCanvas && risk.values.length) {
      new window.Chart(riskCanvas, {
        type: "bar",
        data: {
          labels: risk.labels,
          datasets: [
            {
              label: "Amount at risk",
              data: risk.values.map(Number),
              backgroundColor: "#b42318",
            },
          ],
        },
        options: {
          maintainAspectRatio: false,
          animation: false,
          scales: { y: { beginAtZero: true } },
          plugins: { legend: { display: false } },
        },
      });
    }
    var rate = data("recon-rate-data");
    var rateCanvas = document.getElementById("recon-rate-chart");
    if (rate && rateCanvas && rate.values.length) {
      new window.Chart(rateCanvas, {
        type: "line",
        data: {
          labels: rate.labels,
          datasets: [
            {
              label: "Match rate (%)",
              data: rate.values,
              borderColor: "#1f5fbf",
              backgroundColor: "#1f5fbf",
              tension: 0.2,
            },
          ],
        },
        options: {
          maintainAspectRatio: false,
          animation: false,
          scales: { y: { suggestedMin: 90, max: 100, title: { display: true, text: "%" } } },
          plugins: { legend: { position: "bottom" } },
        },
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
