/* Follows a running bulk action: reads its API record every two seconds and updates the
   progress bar and counts; reloads the page once it has finished (to show the errors). */
(function () {
  "use strict";
  var box = document.querySelector("[data-bulk-running]");
  if (!box || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-bulk-url");
  function set(name, value) {
    var node = document.querySelector('[data-bulk="' + name + '"]');
    if (node) {
      node.textContent = String(value);
    }
  }
  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        var bar = document.querySelector('[data-bulk="bar"]');
        if (bar) {
          bar.max = data.total;
          bar.value = data.done;
        }
        ["done", "total", "succeeded", "failed"].forEach(function (key) {
          set(key, data[key]);
        });
        if (data.status === "finished" || data.status === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 2000);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 5000);
      });
  }
  window.setTimeout(poll, 1000);
})();
