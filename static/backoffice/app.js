/* Ledgerline back office: draws every <canvas data-chart="ID"> from the JSON in <script id="ID">
   (Chart.js, served from static/vendor). Amounts travel as exact decimal strings and become numbers
   only here, for drawing. Re-runs after htmx swaps. */
(function () {
  "use strict";
  var palette = ["#2f5bd3", "#1f8a4c", "#b7791f", "#c53030", "#6b46c1", "#2c7a7b"];

  function money(currency) {
    try { return new Intl.NumberFormat("en-US", { style: "currency", currency: currency }); }
    catch (e) { return new Intl.NumberFormat("en-US"); }
  }

  function draw(canvas) {
    if (!window.Chart || Chart.getChart(canvas)) { return; }
    var source = document.getElementById(canvas.dataset.chart);
    if (!source) { return; }
    var spec = JSON.parse(source.textContent);
    var type = canvas.dataset.type || "bar";
    var fmt = spec.currency ? money(spec.currency) : null;
    var datasets = spec.datasets.map(function (ds, i) {
      var color = palette[i % palette.length];
      var line = (ds.type || type) === "line";
      return { label: ds.label, type: ds.type, data: ds.data.map(Number), backgroundColor: line ? color + "33" : color,
               borderColor: line ? (ds.type ? "#1d2330" : color) : color, borderWidth: line ? 2 : 0,
               fill: line && !ds.type, pointRadius: ds.type ? 3 : 0, tension: 0.2, order: ds.type ? 0 : 1 };
    });
    new Chart(canvas, {
      type: type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { display: datasets.length > 1, position: "bottom" },
                   tooltip: { callbacks: { label: function (ctx) {
                     return ctx.dataset.label + ": " + (fmt ? fmt.format(ctx.parsed.y) : ctx.parsed.y); } } } },
        scales: { y: { beginAtZero: true, stacked: !!spec.stacked, ticks: { callback: function (v) { return fmt ? fmt.format(v) : v; } } },
                  x: { stacked: !!spec.stacked, ticks: { maxRotation: 0, autoSkip: true } } }
      }
    });
  }

  function drawAll(root) { (root || document).querySelectorAll("canvas[data-chart]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (e) { drawAll(e.target); });
  document.addEventListener("click", function (e) {
    var box = document.getElementById("search-results");
    if (box && !e.target.closest(".globalsearch")) { box.innerHTML = ""; }
  });
})();
