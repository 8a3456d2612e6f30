// The hardware comparison page's own behaviour, after report.js: the "At a glance" table of every pair of runs'
// geometric-mean ratio follows the page filter. Its numbers are recomputed from the throughput table's rows that
// the filter leaves visible (the same rule as the page was written with: cases where both runs have a throughput).
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent).hardware;
  var glance = document.querySelector("#glance table.sortable");
  var table = document.querySelector("#throughput table.sortable");
  if (!DATA || !glance || !table) return;
  // The glance rows in pair order, kept before any sort moves them.
  var pairRows = Array.prototype.slice.call(glance.tBodies[0].rows);

  // A throughput links to the case in its run's report, where the run folder has one (rows in page order).
  if (DATA.links) {
    Array.prototype.forEach.call(table.tBodies[0].rows, function (tr, k) {
      (DATA.links[k] || []).forEach(function (href, i) {
        var td = tr.cells[1 + i];
        if (!href || !td) return;
        var a = document.createElement("a");
        a.setAttribute("href", href);
        a.textContent = td.textContent;
        td.textContent = "";
        td.appendChild(a);
      });
    });
  }

  function ratioText(v) {
    return v === null ? "n/a" : v.toFixed(2) + "\u00d7";
  }

  function setCell(td, value, text) {
    td.textContent = text;
    if (value === null) td.removeAttribute("data-sort");
    else td.setAttribute("data-sort", String(value));
  }

  function throughputs(tr) {
    var out = [];
    for (var i = 0; i < DATA.runs; i++) {
      var td = tr.cells[1 + i];
      var s = td ? td.getAttribute("data-sort") : null;
      var v = s === null ? NaN : Number(s);
      out.push(isFinite(v) && v > 0 ? v : null);
    }
    return out;
  }

  function recompute() {
    var visible = Array.prototype.filter.call(table.tBodies[0].rows, function (tr) { return !tr.hidden; });
    var values = visible.map(throughputs);
    DATA.pairs.forEach(function (pair, k) {
      var tr = pairRows[k];
      if (!tr) return;
      var a = pair[0], b = pair[1], logs = 0, n = 0, lo = null, hi = null;
      values.forEach(function (t) {
        if (t[a] === null || t[b] === null) return;
        var r = t[b] / t[a];
        logs += Math.log(r);
        n++;
        lo = lo === null ? r : Math.min(lo, r);
        hi = hi === null ? r : Math.max(hi, r);
      });
      var g = n ? Math.exp(logs / n) : null;
      setCell(tr.cells[1], n, String(n));
      setCell(tr.cells[2], g, ratioText(g));
      setCell(tr.cells[3], lo, ratioText(lo));
      setCell(tr.cells[4], hi, ratioText(hi));
      tr.classList.toggle("muted", n === 0);
    });
    // What the numbers were computed for: the filter's choices (tests and scripts wait on it).
    var chosen = {};
    ["model", "mode", "precision"].forEach(function (k) {
      var sel = document.getElementById("filter-" + k);
      chosen[k] = sel ? sel.value : "";
    });
    glance.setAttribute("data-filter", JSON.stringify(chosen));
  }

  // report.js filters the tables synchronously in its own listeners, registered before these.
  ["model", "mode", "precision"].forEach(function (k) {
    var sel = document.getElementById("filter-" + k);
    if (sel) sel.addEventListener("change", recompute);
  });
  var reset = document.getElementById("filter-reset");
  if (reset) reset.addEventListener("click", recompute);
})();
