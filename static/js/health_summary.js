/* Home page of IT: the connector-health tile says how many connections are unhealthy (reads
   /api/v1/health/ once on load, then every 30 s); the tile's top edge turns red when one is. */
(function () {
  "use strict";
  var tile = document.querySelector("[data-health-tile]");
  if (!tile || !window.fetch) {
    return;
  }
  var url = tile.getAttribute("data-health-api");
  var label = tile.querySelector("[data-health-summary]");
  function load() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        if (label) {
          label.textContent = data.summary;
        }
        tile.classList.toggle("tile-alert", data.verdict === "red");
        window.setTimeout(load, 30000);
      })
      .catch(function () {
        window.setTimeout(load, 60000);
      });
  }
  load();
})();
