// The report's behaviour: draw every chart from the embedded figure JSON, filter charts and tables by model,
// mode and precision, draw one case at a time where a chart has a case chooser, sort tables by a click on a
// header, and download a table as CSV (built here from the table's rows; no server). No libraries beyond plotly.js.
(function () {
  "use strict";
  if (window.performance && performance.mark) performance.mark("report-script");
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var KEYS = ["model", "mode", "precision"];
  var state = { model: "", mode: "", precision: "" };
  // Nothing in the toolbar may reach the network: no plotly logo link, no "edit in Chart Studio", no cloud share.
  var CONFIG = {
    displaylogo: false, responsive: true, showSendToCloud: false, showEditInChartStudio: false, showLink: false,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "sendChartToCloud", "sendDataToCloud", "editInChartStudio"]
  };
  // The case a chart with a chooser draws ("*": every case; "": the chart has no chooser).
  var choice = "";
  // Per-point arrays of a trace that must be sliced together when points are filtered out.
  var POINT_ATTRS = [["x"], ["y"], ["text"], ["hovertext"], ["customdata"], ["ids"], ["marker", "color"],
    ["marker", "size"], ["marker", "symbol"], ["error_y", "array"], ["error_y", "arrayminus"],
    ["error_x", "array"], ["error_x", "arrayminus"]];
  // Per-row arrays of a heatmap, and the arrays whose rows hold one value per column.
  var ROW_ATTRS = [["y"], ["z"], ["text"], ["customdata"]];
  var GRID_ATTRS = ["z", "text", "customdata"];

  function matches(value, want) {
    if (!want || value === undefined || value === null) return true;
    if (Array.isArray(value)) return value.indexOf(want) >= 0;
    return value === want;
  }

  function getPath(obj, path) {
    for (var i = 0; i < path.length; i++) {
      if (obj === undefined || obj === null) return undefined;
      obj = obj[path[i]];
    }
    return obj;
  }

  function setPath(obj, path, value) {
    for (var i = 0; i < path.length - 1; i++) obj = obj[path[i]];
    obj[path[path.length - 1]] = value;
  }

  function chosen(value) {
    return !choice || choice === "*" || value === undefined || value === choice;
  }

  function keep(keys, i) {
    for (var k = 0; k < KEYS.length; k++) {
      var list = keys[KEYS[k]];
      if (list && !matches(list[i], state[KEYS[k]])) return false;
    }
    return !keys.case || chosen(keys.case[i]);
  }

  function slice(trace, attrs, keys, n) {
    var idx = [];
    for (var i = 0; i < n; i++) if (keep(keys, i)) idx.push(i);
    if (!idx.length) return null;
    if (idx.length === n) return trace;
    var copy = JSON.parse(JSON.stringify(trace));
    attrs.forEach(function (path) {
      var v = getPath(copy, path);
      if (Array.isArray(v) && v.length === n) setPath(copy, path, idx.map(function (j) { return v[j]; }));
    });
    return copy;
  }

  // A heatmap without the columns that do not match (x labels and every row of the grids).
  function sliceColumns(trace, keys) {
    var n = (trace.x || []).length;
    var idx = [];
    for (var i = 0; i < n; i++) if (keep(keys, i)) idx.push(i);
    if (!idx.length) return null;
    if (idx.length === n) return trace;
    var copy = JSON.parse(JSON.stringify(trace));
    var pick = function (row) { return idx.map(function (j) { return row[j]; }); };
    copy.x = pick(copy.x);
    GRID_ATTRS.forEach(function (name) { if (Array.isArray(copy[name])) copy[name] = copy[name].map(pick); });
    return copy;
  }

  // A trace as the filter would draw it, or null when none of its points match.
  function filterTrace(trace) {
    var meta = trace.meta;
    if (!meta || typeof meta !== "object") return trace;
    var fk = meta.fk || {};
    for (var k = 0; k < KEYS.length; k++) if (!matches(fk[KEYS[k]], state[KEYS[k]])) return null;
    if (!chosen(meta.case)) return null;
    if (meta.pk) {
      var n = (trace.x || trace.y || []).length;
      return slice(trace, POINT_ATTRS, meta.pk, n);
    }
    if (meta.rk) trace = slice(trace, ROW_ATTRS, meta.rk, (trace.y || []).length);
    if (trace && meta.ck) trace = sliceColumns(trace, meta.ck);
    return trace;
  }

  function filterFigure(fig) {
    var data = [];
    var carriesData = 0;
    fig.data.forEach(function (t) {
      var f = filterTrace(t);
      if (f !== null) {
        data.push(f);
        if (t.meta && typeof t.meta === "object") carriesData++;
      }
    });
    var layout = fig.layout;
    ["xaxis", "yaxis"].forEach(function (axis) {
      var cats = layout[axis] && layout[axis].categoryarray;
      if (!cats) return;
      var letter = axis.charAt(0);
      var seen = {};
      data.forEach(function (t) { (t[letter] || []).forEach(function (v) { seen[v] = true; }); });
      layout = JSON.parse(JSON.stringify(layout));
      layout[axis].categoryarray = cats.filter(function (c) { return seen[c]; });
    });
    return { data: data, layout: layout, empty: carriesData === 0 };
  }

  function draw(div, first) {
    var fig = DATA.plots[div.id];
    choice = div.getAttribute("data-choice") || "";
    var f = filterFigure(fig);
    choice = "";
    var note = div.parentNode.querySelector(".filtered-out");
    div.hidden = f.empty;
    if (note) note.hidden = !f.empty;
    if (f.empty) {
      if (!first) Plotly.purge(div);
      return Promise.resolve();
    }
    return first || !div.classList.contains("js-plotly-plot")
      ? Plotly.newPlot(div, f.data, f.layout, CONFIG)
      : Plotly.react(div, f.data, f.layout, CONFIG);
  }

  function rowMatches(el) {
    for (var k = 0; k < KEYS.length; k++) {
      var want = state[KEYS[k]];
      var have = el.getAttribute("data-" + KEYS[k]);
      if (want && have !== null && have !== "" && have.split(" ").indexOf(want) < 0) return false;
    }
    return true;
  }

  function filterTables() {
    document.querySelectorAll(".group").forEach(function (g) { g.hidden = !rowMatches(g); });
    document.querySelectorAll("table.sortable").forEach(function (table) {
      var shown = 0;
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        var ok = rowMatches(tr);
        tr.hidden = !ok;
        if (ok) shown++;
      });
      var foot = table.querySelector("tfoot");
      if (foot) foot.hidden = shown > 0;
    });
  }

  // A case chooser offers the cases the page filter leaves; when it drops the case drawn, the first one left is.
  function filterChoosers() {
    document.querySelectorAll("label.chooser select").forEach(function (sel) {
      var div = document.getElementById(sel.getAttribute("data-plot"));
      var keysOf = {};
      DATA.plots[div.id].data.forEach(function (t) {
        if (t.meta && t.meta.case !== undefined) keysOf[t.meta.case] = t.meta.fk || {};
      });
      var first = null;
      Array.prototype.forEach.call(sel.options, function (o) {
        var fk = keysOf[o.value];
        var ok = !fk || KEYS.every(function (k) { return matches(fk[k], state[k]); });
        o.hidden = o.disabled = !ok;
        if (ok && first === null) first = o.value;
      });
      if (sel.selectedOptions[0] && sel.selectedOptions[0].disabled && first !== null) {
        sel.value = first;
        div.setAttribute("data-choice", first);
      }
    });
  }

  function applyFilter() {
    KEYS.forEach(function (k) {
      var sel = document.getElementById("filter-" + k);
      state[k] = sel ? sel.value : "";
      if (sel) sel.classList.toggle("set", !!sel.value);
    });
    filterTables();
    filterChoosers();
    var pending = [];
    document.querySelectorAll(".plot").forEach(function (div) { pending.push(draw(div, false)); });
    return Promise.all(pending).then(function () { document.body.setAttribute("data-filtered", JSON.stringify(state)); });
  }

  function cellValue(td) {
    var s = td.getAttribute("data-sort");
    var v = s !== null ? s : td.textContent.trim();
    var n = Number(v);
    return v !== "" && isFinite(n) ? n : v.toLowerCase();
  }

  function sortBy(th) {
    var table = th.closest("table");
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    th.parentNode.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a.cells[col]), y = cellValue(b.cells[col]);
      // Empty cells (no value) sort last either way.
      if (x === "" || y === "") return x === y ? 0 : (x === "" ? 1 : -1);
      var c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function csvField(text) {
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  // The table as CSV: its header and the rows the filter shows, each cell's text as the page shows it.
  function tableCsv(table) {
    var lines = [];
    var head = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) { return csvField(c.textContent.trim()); });
    lines.push(head.join(","));
    Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) {
      if (tr.hidden) return;
      lines.push(Array.prototype.map.call(tr.cells, function (c) { return csvField(c.textContent.trim()); }).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }

  document.querySelectorAll("button.csv").forEach(function (button, index) {
    button.addEventListener("click", function () {
      var table = button.parentNode.nextElementSibling.querySelector("table");
      var section = button.closest("section");
      var blob = new Blob(["\ufeff" + tableCsv(table)], { type: "text/csv;charset=utf-8" });
      var a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = (section ? section.id : "table") + "-" + (index + 1) + ".csv";
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
    });
  });

  document.querySelectorAll("label.chooser select").forEach(function (sel) {
    sel.addEventListener("change", function () {
      var div = document.getElementById(sel.getAttribute("data-plot"));
      div.setAttribute("data-choice", sel.value);
      draw(div, false).then(function () { div.setAttribute("data-drawn-choice", sel.value); });
    });
  });

  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); } });
  });
  KEYS.forEach(function (k) {
    var sel = document.getElementById("filter-" + k);
    if (sel) sel.addEventListener("change", applyFilter);
  });
  var reset = document.getElementById("filter-reset");
  if (reset) reset.addEventListener("click", function () {
    KEYS.forEach(function (k) { var sel = document.getElementById("filter-" + k); if (sel) sel.value = ""; });
    applyFilter();
  });

  var first = [];
  document.querySelectorAll(".plot").forEach(function (div) { first.push(draw(div, true)); });
  Promise.all(first).then(function () {
    document.body.classList.remove("drawing");
    void document.body.offsetHeight; // the one layout of the whole page, tables included
    if (window.performance && performance.mark) performance.mark("report-rendered");
    document.body.setAttribute("data-rendered", String(first.length));
  });
})();
