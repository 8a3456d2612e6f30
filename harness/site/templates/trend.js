(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("site-data").textContent);
  var MAX = 8;
  var CONFIG = { displaylogo: false, responsive: true, showSendToCloud: false, showEditInChartStudio: false,
                 modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  var COLOURS = ["#3b6ea8", "#d1742f", "#2f8f5b", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#b7950b"];
  var byId = {};
  DATA.cases.forEach(function (c) { byId[c.id] = c; });
  var x = DATA.nights.map(function (n) { return n.t; });
  var select = document.getElementById("case-choice");
  var filter = document.getElementById("case-filter");
  var chart = document.getElementById("chart");

  // Plotly reads a few HTML tags in names and hover text: a case id is shown as text.
  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  function pct(v) { return (v >= 0 ? "+" : "\u2212") + Math.abs(v * 100).toFixed(1) + "%"; }
  function num(v) { return v >= 1000 ? Math.round(v).toLocaleString("en-US") : Number(v.toPrecision(4)).toString(); }
  function night(t) { return (t || "start unknown").replace("T", " ").replace(/Z$/, "").slice(0, 16); }
  function link(i, c) { return DATA.nights[i].r + "#" + c.a; }
  function cell(tr, text, cls, href) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (href) { var a = document.createElement("a"); a.href = href; a.textContent = text; td.appendChild(a); }
    else td.textContent = text;
    tr.appendChild(td);
  }

  function chosen() {
    var ids = [];
    for (var i = 0; i < select.options.length; i++) if (select.options[i].selected) ids.push(select.options[i].value);
    return ids.slice(0, MAX);
  }

  function draw() {
    var ids = chosen();
    var traces = [], up = { x: [], y: [], text: [], customdata: [] }, down = { x: [], y: [], text: [], customdata: [] };
    var shapes = [];
    var marks = { failed: { x: [], text: [], customdata: [] }, noisy: { x: [], y: [], text: [], customdata: [] } };
    ids.forEach(function (id, k) {
      var c = byId[id], label = esc(id);
      traces.push({ x: x, y: c.y, type: "scatter", mode: "lines+markers", name: label, connectgaps: false,
                    line: { width: 1.5, color: COLOURS[k % COLOURS.length] }, marker: { size: 4 },
                    customdata: x.map(function (_, i) { return link(i, c); }),
                    hovertemplate: label + "<br>%{x}<br>%{y:.4g} img/s<extra></extra>" });
      (c.failed || []).forEach(function (i) {
        marks.failed.x.push(x[i]); marks.failed.customdata.push(link(i, c));
        marks.failed.text.push(label + "<br>failed " + night(x[i]));
      });
      (c.noisy || []).forEach(function (i) {
        marks.noisy.x.push(x[i]); marks.noisy.y.push(c.y[i]); marks.noisy.customdata.push(link(i, c));
        marks.noisy.text.push(label + "<br>noisy " + night(x[i]) + ": " + num(c.y[i]) + " img/s");
      });
      c.steps.forEach(function (s) {
        var into = s.change < 0 ? down : up;
        into.x.push(x[s.index]); into.y.push(c.y[s.index]); into.customdata.push(link(s.index, c));
        into.text.push(label + "<br>step " + pct(s.change) + ": " + num(s.before) + " \u2192 " + num(s.after) + " img/s" +
                       (s.recovered_at !== null ? "<br>recovered " + night(x[s.recovered_at]) : "<br>not recovered"));
        if (ids.length === 1) shapes.push({ type: "line", xref: "x", yref: "paper", x0: x[s.index], x1: x[s.index],
                                            y0: 0, y1: 1, line: { color: s.change < 0 ? "#d1342f" : "#1e7b45", dash: "dot", width: 1 } });
      });
    });
    [[down, "step down (regression)", "#d1342f"], [up, "step up", "#1e7b45"]].forEach(function (d) {
      if (d[0].x.length) traces.push({ x: d[0].x, y: d[0].y, type: "scatter", mode: "markers", name: d[1],
        text: d[0].text, customdata: d[0].customdata, hovertemplate: "%{text}<extra></extra>",
        marker: { size: 14, color: "rgba(0,0,0,0)", line: { width: 2.5, color: d[2] } } });
    });
    if (marks.noisy.x.length) traces.push({ x: marks.noisy.x, y: marks.noisy.y, type: "scatter", mode: "markers",
      name: "noisy night", text: marks.noisy.text, customdata: marks.noisy.customdata,
      hovertemplate: "%{text}<extra></extra>", marker: { size: 9, symbol: "diamond-open", color: "#a35a00" } });
    if (marks.failed.x.length) traces.push({ x: marks.failed.x, y: marks.failed.x.map(function () { return 0; }),
      type: "scatter", mode: "markers", name: "failed", text: marks.failed.text, customdata: marks.failed.customdata,
      hovertemplate: "%{text}<extra></extra>", marker: { size: 9, symbol: "x", color: "#b3261e" } });
    var layout = { margin: { l: 70, r: 20, t: 10, b: 50 }, showlegend: true,
                   legend: { orientation: "h", y: -0.15 }, shapes: shapes, hovermode: "closest",
                   xaxis: { type: "date", title: { text: "night (run start, UTC)" } },
                   yaxis: { title: { text: "images / s" }, rangemode: "tozero" } };
    chart.dataset.cases = ids.join("\n");
    chart.dataset.steps = String(down.x.length + up.x.length);
    var done = Plotly.react(chart, traces, layout, CONFIG);
    steps(ids);
    history.replaceState(null, "", "#case=" + ids.map(encodeURIComponent).join(","));
    return done;
  }

  function steps(ids) {
    var body = document.querySelector("#steps tbody");
    body.textContent = "";
    var n = 0;
    ids.forEach(function (id) {
      var c = byId[id];
      c.steps.forEach(function (s) {
        var tr = document.createElement("tr");
        cell(tr, id);
        cell(tr, night(x[s.index]), "", link(s.index, c));
        cell(tr, pct(s.change), "n " + (s.change < 0 ? "bad" : "good"));
        cell(tr, num(s.before) + " \u2192 " + num(s.after), "n");
        if (s.recovered_at !== null) cell(tr, night(x[s.recovered_at]), "", link(s.recovered_at, c));
        else cell(tr, s.change < 0 ? "not recovered" : "", s.change < 0 ? "bad" : "");
        body.appendChild(tr);
        n++;
      });
    });
    document.getElementById("no-steps").hidden = n > 0;
  }

  function pick(ids) {
    var want = {};
    ids.forEach(function (id) { want[id] = true; });
    for (var i = 0; i < select.options.length; i++) select.options[i].selected = !!want[select.options[i].value];
  }

  filter.addEventListener("input", function () {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (var i = 0; i < select.options.length; i++) {
      var o = select.options[i], text = o.value.toLowerCase();
      o.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    }
  });
  select.addEventListener("change", draw);

  var fromHash = window.location.hash.replace(/^#case=/, "").split(",").map(function (part) {
    try { return decodeURIComponent(part); } catch (e) { return ""; }
  }).filter(function (id) { return byId[id]; });
  pick(fromHash.length ? fromHash : DATA.cases.length ? [DATA.cases[0].id] : []);
  draw().then(function () {
    chart.on("plotly_click", function (ev) {
      var p = ev.points && ev.points[0];
      if (p && p.customdata) window.location.href = p.customdata;
    });
    document.documentElement.dataset.ready = "1";
    if (window.performance && performance.mark) performance.mark("ready");
  });
})();
