// The tenant live stream (SSE, GET /api/v1/stream; docs/api.md "Live stream").
//
// One EventSource per page. Each message is re-dispatched on `document` as a CustomEvent
// "live:<event>" whose `detail` is the parsed JSON, so htmx fragments refresh with
// hx-trigger="live:incident from:document" and page scripts listen with
// document.addEventListener("live:metrics", ...). The page's host (for its chart values) comes from
// <body data-live-host="...">. A page without <body data-live> (signed out: /login, /setup) opens no
// stream: it would only be refused (401, a console error) and retried. On an error the browser
// reconnects by itself and sends the last event id, and the server sends what was missed first
// ("reset" when that is too much: fragments that listen for live:reset reload). "live:status" tells "open" / "reconnecting" / "closed", and an
// element with data-test="live-status" (if the page has one) shows it.
"use strict";

(function () {
  var EVENTS = ["incident", "command", "notification", "run", "host", "metrics", "reset", "ready"];
  var source = null;
  // set when a closed stream is opened afresh (no Last-Event-ID): its first "ready" becomes a reset
  var missed = false;

  function streamUrl() {
    var url = "/api/v1/stream";
    var host = document.body && document.body.getAttribute("data-live-host");
    if (host) {
      url += "?host=" + encodeURIComponent(host);
    }
    return url;
  }

  function emit(name, detail) {
    document.dispatchEvent(new CustomEvent("live:" + name, { detail: detail }));
  }

  function setStatus(status) {
    var marks = document.querySelectorAll('[data-test="live-status"]');
    for (var i = 0; i < marks.length; i++) {
      marks[i].textContent = status;
      marks[i].setAttribute("data-status", status);
    }
    emit("status", status);
  }

  function relay(name) {
    return function (message) {
      var detail = null;
      try {
        detail = message.data ? JSON.parse(message.data) : null;
      } catch (err) {
        return; // not ours: ignore rather than break the page
      }
      emit(name, detail);
      if (name === "ready" && missed) {
        missed = false;
        emit("reset", { reason: "the stream was closed; reload what it shows" });
      }
    };
  }

  function open() {
    if (source !== null || typeof EventSource === "undefined" || !document.body.hasAttribute("data-live")) {
      return;
    }
    source = new EventSource(streamUrl(), { withCredentials: true });
    for (var i = 0; i < EVENTS.length; i++) {
      source.addEventListener(EVENTS[i], relay(EVENTS[i]));
    }
    source.onopen = function () {
      setStatus("open");
    };
    source.onerror = function () {
      // CONNECTING: the browser retries by itself (with Last-Event-ID). CLOSED: the server refused
      // (401/403/404/429): try once more after a pause, with a fresh EventSource.
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        missed = true;
        setStatus("closed");
        window.setTimeout(open, 15000);
      } else {
        setStatus("reconnecting");
      }
    };
  }

  function close() {
    if (source !== null) {
      source.close();
      source = null;
    }
  }

  // A page leaving (or going into the back/forward cache) frees its server slot at once.
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) {
      open();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", open);
  } else {
    open();
  }

  window.infragentLive = { open: open, close: close };
})();
