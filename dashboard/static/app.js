// Sluice dashboard: live updates, charts and confirmations. Plain
// JavaScript, loaded from a file (the Content-Security-Policy forbids
// inline scripts). Live regions are re-rendered by the server and swapped
// in, so every value is escaped by the same templates as the first load.
'use strict';

(function () {
  var REFRESH_MS = 2000;

  function setStatus(ok) {
    var dot = document.getElementById('live-status');
    if (dot) {
      dot.className = ok ? 'status ok' : 'status down';
      dot.title = ok ? 'live' : 'cannot reach the server; retrying';
    }
  }

  function liveUrl(region) {
    var inner = region.querySelector('[data-refresh]');
    return (inner && inner.getAttribute('data-refresh')) || region.getAttribute('data-live');
  }

  function refresh(region) {
    var url = liveUrl(region);
    if (!url) return;
    fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (r.status === 401) { window.location.href = '/dashboard/login'; return null; }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        region.innerHTML = html;
        drawCharts(region);
        setStatus(true);
      })
      .catch(function () { setStatus(false); });
  }

  // A line chart (series of values) or a bar chart (one value per label),
  // from the JSON in the canvas's data-chart attribute.
  function drawChart(canvas) {
    var spec;
    try { spec = JSON.parse(canvas.getAttribute('data-chart')); } catch (e) { return; }
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || 600, height = canvas.clientHeight || 200;
    canvas.width = width * ratio; canvas.height = height * ratio;
    var ctx = canvas.getContext('2d');
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    var left = 44, bottom = 22, top = 18, plotW = width - left - 8, plotH = height - top - bottom;
    var max = 0;
    spec.series.forEach(function (s) { s.values.forEach(function (v) { if (v > max) max = v; }); });
    if (max === 0) max = 1;
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#667';
    ctx.strokeStyle = '#dde';
    ctx.beginPath(); ctx.moveTo(left, top); ctx.lineTo(left, top + plotH); ctx.lineTo(left + plotW, top + plotH); ctx.stroke();
    ctx.fillText(String(Math.round(max * 10) / 10), 2, top + 4);
    ctx.fillText('0', 30, top + plotH);
    var labels = spec.labels || [];
    if (labels.length) {
      ctx.fillText(labels[0], left, height - 6);
      var last = labels[labels.length - 1];
      ctx.fillText(last, left + plotW - ctx.measureText(last).width, height - 6);
    }
    spec.series.forEach(function (s, si) {
      ctx.strokeStyle = ctx.fillStyle = s.color || '#36c';
      var n = s.values.length;
      if (spec.kind === 'bars') {
        var w = plotW / Math.max(n, 1);
        s.values.forEach(function (v, i) {
          var h = (v / max) * plotH;
          ctx.fillRect(left + i * w + 2, top + plotH - h, Math.max(w - 4, 1), h);
        });
        return;
      }
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      s.values.forEach(function (v, i) {
        var x = left + (n > 1 ? (i / (n - 1)) * plotW : 0);
        var y = top + plotH - (v / max) * plotH;
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
      ctx.fillText(s.name, left + 8 + si * 90, 12);
    });
  }

  function drawCharts(root) {
    Array.prototype.forEach.call(root.querySelectorAll('canvas[data-chart]'), drawChart);
  }

  // Destructive actions ask first.
  document.addEventListener('submit', function (e) {
    var message = e.target.getAttribute('data-confirm');
    if (message && !window.confirm(message)) e.preventDefault();
  });

  document.addEventListener('DOMContentLoaded', function () {
    drawCharts(document);
    var regions = document.querySelectorAll('[data-live]');
    if (!regions.length) return;
    setStatus(true);
    setInterval(function () {
      if (document.hidden) return;
      Array.prototype.forEach.call(regions, refresh);
    }, REFRESH_MS);
  });
})();
