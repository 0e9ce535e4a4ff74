// The host page's charts (uPlot): first data from <script id="chart-data">, then the points of the
// stream's `metrics` events (live.js dispatches them as "live:metrics" on document).
"use strict";
(function () {
  var source = document.getElementById("chart-data");
  if (!source || typeof uPlot === "undefined") return;
  var spec = JSON.parse(source.textContent);
  var host = document.body.dataset.liveHost;
  var COLORS = ["#2f6fde", "#e0782f", "#2fa36b", "#b3459b"];
  var charts = {};

  function bytes(v) {
    if (v == null) return "—";
    var u = ["B/s", "KB/s", "MB/s", "GB/s"], i = 0;
    while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return v.toFixed(v < 10 && i ? 1 : 0) + " " + u[i];
  }
  function formatter(unit) {
    if (unit === "%") return function (v) { return v == null ? "—" : v.toFixed(0) + "%"; };
    if (unit === "B/s") return bytes;
    return function (v) { return v == null ? "—" : v.toFixed(2); };
  }
  function options(el, c) {
    var fmt = formatter(c.unit);
    var ink = getComputedStyle(document.body).color;
    var grid = { stroke: "rgba(128,128,128,0.18)", width: 1 };
    return {
      width: Math.max(200, el.clientWidth), height: 170,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      // x: always the page's whole range, ending now (or at the newest point): a host seen once
      // draws one point at the right edge instead of an axis spread over years
      scales: { x: { time: true, range: function (u, lo, hi) {
        var end = Math.max(hi == null ? 0 : hi, Date.now() / 1000);
        return [end - spec.span, end];
      } }, y: c.unit === "%" ? { range: [0, 100] } : { range: function (u, lo, hi) { return [0, Math.max(hi, c.unit ? 1 : 0.1) * 1.1]; } } },
      axes: [
        { stroke: ink, grid: grid, ticks: grid },
        { stroke: ink, grid: grid, ticks: grid, size: 74, values: function (u, vals) { return vals.map(fmt); } }
      ],
      series: [{}].concat(c.lines.map(function (l, i) {
        return { label: l.label, stroke: COLORS[i % COLORS.length], width: 1.5, value: function (u, v) { return fmt(v); },
                 fill: c.lines.length === 1 ? COLORS[i] + "22" : undefined, spanGaps: true };
      }))
    };
  }
  function mark(key) {
    var c = charts[key];
    c.el.setAttribute("data-points", String(c.data[0].length));
  }

  Object.keys(spec.charts).forEach(function (key) {
    var el = document.getElementById("chart-" + key);
    if (!el) return;
    var c = spec.charts[key];
    charts[key] = { el: el, spec: c, data: c.data, plot: new uPlot(options(el, c), c.data, el) };
    mark(key);
  });

  document.addEventListener("live:metrics", function (e) {
    var m = e.detail;
    if (!m || m.host !== host || !m.values) return;
    Object.keys(charts).forEach(function (key) {
      var c = charts[key], lines = c.spec.lines, d = c.data;
      var vals = lines.map(function (l) { return l.key in m.values ? m.values[l.key] : null; });
      if (vals.every(function (v) { return v == null; })) return;
      var xs = d[0], last = xs.length ? xs[xs.length - 1] : -Infinity;
      if (m.ts <= last) return; // already plotted (a resumed stream repeats nothing, a page load may)
      xs.push(m.ts);
      vals.forEach(function (v, i) { d[i + 1].push(v); });
      var cut = 0;
      while (cut < xs.length && xs[cut] < m.ts - spec.span) cut++;
      if (cut) d.forEach(function (col) { col.splice(0, cut); });
      c.plot.setData(d);
      mark(key);
    });
  });

  var pending = 0;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      Object.keys(charts).forEach(function (k) {
        var c = charts[k];
        c.plot.setSize({ width: Math.max(200, c.el.clientWidth), height: 170 });
      });
    }, 150);
  });
})();
