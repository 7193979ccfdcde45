/* Connector health: fetches the report's part of the page every N seconds (data-health-refresh)
   and swaps it in, so a connection turning unhealthy shows red within a minute. The summary
   line above it is a polite live region, updated only when its text changes. Pauses while
   the tab is hidden; a session that expired (the answer is not the fragment) reloads the
   page, which then goes to the sign-in form. */
(function () {
  "use strict";
  var box = document.getElementById("health-report");
  if (!box || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-health-url");
  var every = parseInt(box.getAttribute("data-health-refresh"), 10) * 1000 || 15000;
  var summary = document.getElementById("health-summary");
  var timer = null;

  function schedule(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, delay);
  }

  function refresh() {
    if (document.hidden) {
      return; // resumed by visibilitychange
    }
    fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status >= 400) {
          throw new Error("HTTP " + response.status);
        }
        if (response.headers.get("X-Health-Fragment") !== "1") {
          window.location.reload();
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        box.innerHTML = html;
        var body = box.querySelector(".health-body");
        if (summary && body) {
          var text = body.getAttribute("data-summary");
          if (summary.textContent !== text) {
            summary.textContent = text;
          }
          summary.className =
            "health-summary health-summary-" + body.getAttribute("data-verdict");
        }
        schedule(every);
      })
      .catch(function () {
        schedule(every);
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      schedule(0);
    }
  });
  schedule(every);
})();
