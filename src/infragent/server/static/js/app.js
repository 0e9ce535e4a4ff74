// InfrAgent dashboard behaviour: no inline scripts (the CSP forbids them).
"use strict";
(function () {
  // <time datetime="…Z"> in the browser's own time zone (the server writes UTC).
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = d.toLocaleString(); el.title = el.getAttribute("datetime"); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
  document.addEventListener("htmx:load", function (e) { localTimes(e.target); });

  // The incident on screen changed: htmx's event filters need eval (refused by the CSP), so the
  // page listens for its own event instead.
  document.addEventListener("live:incident", function (e) {
    var id = document.body.dataset.incidentId;
    if (id && e.detail && e.detail.incident_id === id) {
      document.dispatchEvent(new CustomEvent("live:this-incident", { detail: e.detail }));
    }
  });
})();
