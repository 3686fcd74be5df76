// Strata console: refreshes the live charts. Everything else works without
// JavaScript.
(function () {
  "use strict";
  function refresh(box, every) {
    var url = box.getAttribute("data-live");
    window.setTimeout(function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) { box.innerHTML = html; box.removeAttribute("data-stale"); })
        .catch(function () { box.setAttribute("data-stale", "true"); })
        .finally(function () { window.setTimeout(tick, every); });
    }, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (box) { refresh(box, 5000); });
  });
})();
