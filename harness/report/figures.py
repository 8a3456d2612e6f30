"""The report's charts: pure functions of a frame from ``harness.report.data`` (``derive``d records) that return
a plotly Figure, or None when the frame holds nothing to draw.

Every trace carries its filter keys in ``meta`` so the page's filter can re-draw it: ``meta.fk`` holds keys that
apply to the whole trace (a string, or a list meaning "any of"), ``meta.pk`` per-point lists, ``meta.rk`` per-row
lists of a heatmap. Text that came from records is HTML-escaped (plotly renders a subset of HTML in labels).
Values are plain lists (never numpy arrays) so the page gets readable JSON the filter can slice.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from harness.regress.metrics import number
from harness.report.blocks import NOISY_MARK, fmt_number
from harness.report.data import (
    MODE_ORDER,
    PRECISION_ORDER,
    column,
    device_colours,
    model_order,
    ordered,
    precision_colour,
)

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
GRID = "#e6e8eb"
#: Above this many lines a chart's legend explains the encoding (model, precision, format) rather than listing lines.
MAX_LEGEND = 16
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "triangle-down", "star", "pentagon", "cross", "hexagon")
#: The speedup heatmaps' colour spans 1/SPEEDUP_RANGE to SPEEDUP_RANGE on a log scale, the same on every page and
#: whatever the cells hold (beyond it the colour saturates; every cell is labelled with its ratio), so one odd cell
#: cannot wash out the others and a colour means the same ratio in every chart: 1.25x is as blue as 0.8x is red.
SPEEDUP_RANGE = 4.0
#: The ratios the speedup colour bar is labelled at.
SPEEDUP_TICKS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Bar patterns that tell precisions and memory formats apart when colour names the device.
PATTERNS = ("", "/", "x", "\\", ".", "+", "-", "|")
#: Width of one heatmap column (px): a heatmap of few columns is drawn this narrow, not stretched over the page.
CELL_PX = 96


def colours_by_device(frame: pd.DataFrame) -> dict[str, str]:
    """The device colours of ``frame`` when it holds several devices (then charts colour by device), else {}."""
    devices = column(frame, "device_key").dropna()
    return device_colours(devices) if devices.nunique() > 1 else {}


def esc(text: Any) -> str:
    """``text`` escaped for plotly labels, which render a subset of HTML."""
    return html.escape(str(text), quote=False)


#: Approximate width of one character of the 11-12 px chart font, for sizing margins without automargin.
CHAR_PX = 6.6


def layout(
    title: str,
    xtitle: str = "",
    ytitle: str = "",
    height: int = 420,
    xlabels: list[str] | None = None,
    ylabels: list[str] | None = None,
    legend: list[str] | None = None,
    legend_side: str = "top",
    width: int = 1100,
    **extra: Any,
) -> dict[str, Any]:
    """The shared look: an empty template (plotly.js defaults, nothing large embedded), system fonts, light grid.

    Margins are sized here from the tick labels (``xlabels``, ``ylabels``) and the legend entries (``legend``,
    placed at the ``top`` or on the ``right``; ``width`` is the expected width in pixels) rather than by
    plotly's automargin, which costs every chart a second layout pass when the page opens."""
    xlabels, ylabels, legend = xlabels or [], ylabels or [], legend or []
    tilt = len(xlabels) > 6
    xlen = max((len(x) for x in xlabels), default=0)
    bottom = 30 + (int(xlen * CHAR_PX * 0.6) + 10 if tilt else 20) + (22 if xtitle else 0)
    ylen = max((len(y) for y in ylabels), default=6)
    left = 20 + int(ylen * CHAR_PX) + (24 if ytitle else 0)
    if tilt and xlabels:  # the first tilted label reaches left of the axis: keep it on the page
        left = max(left, int(len(xlabels[0]) * CHAR_PX * 0.82) - 10)
    top, right = 44, 24
    legend_layout: dict[str, Any] = {"font": {"size": 11}}
    if legend and legend_side == "right":
        right += 50 + int(max(len(n) for n in legend) * CHAR_PX)
        legend_layout.update(orientation="v", x=1.01, xanchor="left", y=1, yanchor="top")
    elif legend:
        per_row = max(1, width // (50 + int(max(len(n) for n in legend) * CHAR_PX)))
        top += 24 * -(-len(legend) // per_row)
        legend_layout.update(orientation="h", x=0, xanchor="left", y=1.0, yanchor="bottom")
    out: dict[str, Any] = {
        "template": go.layout.Template(),
        "title": {
            "text": esc(title),
            "x": 0.01,
            "xanchor": "left",
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 10},
            "font": {"size": 15},
        },
        "font": {"family": FONT, "size": 12, "color": "#1f2933"},
        "height": height + top - 44,
        "margin": {"l": left, "r": right, "t": top, "b": bottom},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "xaxis": {"title": {"text": xtitle}, "gridcolor": GRID, "zerolinecolor": GRID, "tickangle": -35 if tilt else 0},
        "yaxis": {"title": {"text": ytitle}, "gridcolor": GRID, "zerolinecolor": "#c5c9ce"},
        "showlegend": bool(legend),
        "legend": legend_layout,
        "hoverlabel": {"font": {"family": FONT}},
    }
    for axis in ("xaxis", "yaxis"):
        if axis in extra:
            out[axis] = {**out[axis], **extra.pop(axis)}
    out.update(extra)
    return out


def numeric(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` as floats (NaN where null or absent)."""
    if name not in frame.columns:
        return pd.Series(float("nan"), index=frame.index)
    return pd.to_numeric(frame[name], errors="coerce")


def case_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted the way every chart and table lists cases: model (catalog order), mode, batch size,
    resolution, precision, memory format, then variant."""
    rank = {m: i for i, m in enumerate(model_order(rows["model"]))}
    modes = {m: i for i, m in enumerate(MODE_ORDER)}
    precisions = {p: i for i, p in enumerate(PRECISION_ORDER)}
    keyed = rows.assign(
        _m=rows["model"].map(lambda m: rank.get(str(m), len(rank))),
        _o=column(rows, "mode").map(lambda m: modes.get(m, len(modes))),
        _b=numeric(rows, "batch_size").fillna(0),
        _r=numeric(rows, "resolution").fillna(0),
        _p=column(rows, "precision").map(lambda p: precisions.get(p, len(precisions))),
        _f=column(rows, "fmt").fillna(""),
        _v=column(rows, "variant").fillna(""),
    )
    keyed = keyed.sort_values(["_m", "_o", "_b", "_r", "_p", "_f", "_v"], kind="stable")
    return keyed.drop(columns=["_m", "_o", "_b", "_r", "_p", "_f", "_v"])


def values(series: pd.Series, scale: float = 1.0) -> list[float | None]:
    return [None if v is None or v != v else float(v) * scale for v in series]


def _fmt(value: float | None, unit: str = "", digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return f"{fmt_number(value, digits)}{(' ' + unit) if unit else ''}"


def grouped_bars(
    frame: pd.DataFrame,
    mode: str,
    value: str,
    title: str,
    ytitle: str,
    unit: str,
    scale: float = 1.0,
    errors: Callable[[pd.DataFrame], tuple[list, list] | None] | None = None,
    hover: Callable[[pd.Series], str] | None = None,
    width: int = 1100,
    timed: bool = False,
) -> go.Figure | None:
    """Bars of ``value`` per case (x: model and batch size) for one ``mode``, one bar group per precision and
    memory format (colour: precision; hatching: channels_last). ``errors(rows)`` may give (plus, minus) lists.
    A ``timed`` value (measured against the clock: throughput and what follows from it) is marked above the bar
    of a case measured under noise, with the reason in its hover. Records of several devices: colour names the
    device and bars of one case on each device stand side by side (precision and memory format by pattern)."""
    rows = frame[(frame["mode"] == mode) & numeric(frame, value).notna()] if not frame.empty else frame
    if rows.empty:
        return None
    rows = case_order(rows)
    by_device = colours_by_device(frame)
    xcol = "xlabel" if by_device and "xlabel" in rows.columns else "label"
    categories = [esc(x) for x in dict.fromkeys(rows[xcol])]
    traces = []
    precisions = ordered(rows["precision"], PRECISION_ORDER)
    series = [
        (device, precision, fmt)
        for device in (sorted(by_device) if by_device else [None])
        for precision in precisions
        for fmt in ("NCHW", "channels_last")
    ]
    for device, precision, fmt in series:
        sub = rows[(rows["precision"] == precision) & (rows["fmt"] == fmt)]
        if device is not None:
            sub = sub[sub["device_key"] == device]
        if sub.empty:
            continue
        y = values(numeric(sub, value), scale)
        texts = []
        for (_, r), v in zip(sub.iterrows(), y, strict=True):
            extra = hover(r) if hover else ""
            where = f" · {esc(r['device_key'])}" if by_device else ""
            texts.append(f"{esc(r['case'])}{where}<br>{_fmt(v, unit)}{extra}{noise_hover(r) if timed else ''}")
        if device is None:
            name, colour, shape = f"{precision} · {fmt}", precision_colour(precision), "/" if fmt != "NCHW" else ""
        else:
            name, colour = esc(f"{device} · {precision} · {fmt}"), by_device[device]
            shape = PATTERNS[(2 * precisions.index(precision) + (fmt != "NCHW")) % len(PATTERNS)]
        trace: dict[str, Any] = {
            "x": [esc(x) for x in sub[xcol]],
            "y": y,
            "name": name,
            "marker": {"color": colour, "pattern": {"shape": shape}},
            "hovertext": texts,
            "hovertemplate": "%{hovertext}<extra></extra>",
            "meta": {
                "fk": {"mode": mode, "precision": str(precision)},
                "pk": {"model": list(map(str, sub["model"]))},
            },
        }
        if timed and "noisy" in sub.columns and sub["noisy"].any():
            trace.update(text=[NOISY_MARK if n else "" for n in sub["noisy"]], textposition="outside")
        err = errors(sub) if errors else None
        if err is not None:
            plus, minus = err
            trace["error_y"] = {"type": "data", "array": plus, "arrayminus": minus, "color": "#333", "width": 3}
        traces.append(go.Bar(**trace))
    return bar_figure(traces, title, ytitle, categories, width, bargap=0.25)


def bar_figure(
    traces: list, title: str, ytitle: str, categories: list[str], width: int = 1100, **extra: Any
) -> go.Figure:
    """Grouped bars over ``categories`` (escaped), in that order, with every trace in the legend; ``extra`` goes to
    ``layout`` (an ``xaxis`` there is merged into the category axis)."""
    xaxis = {"categoryorder": "array", "categoryarray": categories, **extra.pop("xaxis", {})}
    return go.Figure(
        data=traces,
        layout=layout(
            title,
            "",
            ytitle,
            xlabels=categories,
            legend=[t.name for t in traces],
            width=width,
            barmode="group",
            xaxis=xaxis,
            **extra,
        ),
    )


def lines_vs_batch(frame: pd.DataFrame, mode: str, value: str, title: str, ytitle: str, unit: str) -> go.Figure | None:
    """``value`` against batch size for one ``mode``: a line per model, precision and memory format (colour:
    precision, dash: channels_last, marker: model); None unless the cases span two batch sizes or more."""
    rows = frame[(frame["mode"] == mode) & numeric(frame, value).notna()] if not frame.empty else frame
    if rows.empty or numeric(rows, "batch_size").nunique() < 2:
        return None
    models = model_order(rows["model"])
    by_device = colours_by_device(frame)
    traces = []
    keys = ["model", "precision", "fmt", "variant", "device_key"]
    groups = case_order(rows).groupby(keys, sort=False)
    many = groups.ngroups > MAX_LEGEND
    for (model, precision, fmt, variant, device), sub in groups:
        sub = sub.sort_values("batch_size")
        y = values(numeric(sub, value))
        name = f"{model}{variant} · {precision} · {fmt}"
        hover = [f"{esc(c)}<br>{_fmt(v, unit)}" for c, v in zip(sub["case"], y, strict=True)]
        x = values(numeric(sub, "batch_size"))
        colour = by_device.get(str(device))
        line = case_line(x, y, esc(name), hover, (model, mode, precision, fmt), models, not many, colour)
        traces.append(line)
    if many:
        precisions = ordered(rows["precision"], PRECISION_ORDER)
        traces = [*traces, *key_traces(models, precisions, ordered(rows["fmt"], ()), by_device)]
    sizes = sorted({int(b) for b in numeric(rows, "batch_size").dropna()})
    return log_x_figure(traces, title, "batch size", ytitle, sizes)


def case_line(
    x: list,
    y: list,
    name: str,
    hover: list[str],
    case: tuple,
    models: list[str],
    legend: bool = True,
    colour: str | None = None,
) -> go.Scatter:
    """One line of a family of cases against an x axis. ``case`` is (model, mode, precision, memory format): the
    colour is the precision's (or ``colour``: the device's, when the lines come from several devices),
    channels_last is dotted, the marker is the model's (by its place in ``models``), and the trace carries the
    page filter's keys. ``name`` and ``hover`` come escaped."""
    model, mode, precision, fmt = case
    return go.Scatter(
        x=x,
        y=y,
        mode="lines+markers",
        name=name,
        line={"color": colour or precision_colour(precision), "dash": "dot" if fmt != "NCHW" else "solid", "width": 2},
        marker={"symbol": SYMBOLS[models.index(str(model)) % len(SYMBOLS)], "size": 8},
        hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>",
        showlegend=legend,
        meta={"fk": {"model": str(model), "mode": mode, "precision": str(precision)}},
    )


def log_x_figure(traces: list, title: str, xtitle: str, ytitle: str, ticks: list[int], **extra: Any) -> go.Figure:
    """Lines against a log x axis ticked at ``ticks``, the legend on the right (without the traces kept out of
    it); ``extra`` goes to ``layout``."""
    axis = {"type": "log", "tickvals": ticks, "ticktext": [str(t) for t in ticks]}
    legend = [t.name for t in traces if t.showlegend is not False]
    return go.Figure(
        data=traces,
        layout=layout(title, xtitle, ytitle, legend=legend, legend_side="right", xaxis=axis, **extra),
    )


def key_traces(
    models: list[str], precisions: list[str], formats: list[str], devices: dict[str, str] | None = None
) -> list[go.Scatter]:
    """A legend that explains the encoding instead of naming every line (too many lines to list): one entry per
    model (marker), precision (colour; or per device when ``devices`` maps them to colours) and memory format
    (dash). The entries draw nothing and carry no filter keys (no ``meta``), so the page filter leaves them alone."""
    out = []
    for i, model in enumerate(models):
        marker = {"symbol": SYMBOLS[i % len(SYMBOLS)], "size": 8, "color": "#52606d"}
        out.append(go.Scatter(x=[None], y=[None], mode="markers", name=esc(model), marker=marker))
    colours = devices or {p: precision_colour(p) for p in precisions}
    for name, colour in colours.items():
        line = {"color": colour, "width": 3}
        out.append(go.Scatter(x=[None], y=[None], mode="lines", name=esc(name), line=line))
    for fmt in formats:
        line = {"color": "#52606d", "dash": "dot" if fmt != "NCHW" else "solid", "width": 2}
        out.append(go.Scatter(x=[None], y=[None], mode="lines", name=esc(fmt), line=line))
    return out


def _ci_errors(rows: pd.DataFrame) -> tuple[list, list] | None:
    ci = rows["throughput_ci95"] if "throughput_ci95" in rows.columns else None
    if ci is None or not any(isinstance(c, list) and len(c) == 2 for c in ci):
        return None
    plus, minus = [], []
    for c, v in zip(ci, rows["tput"], strict=True):
        lo, hi = (number(c[0]), number(c[1])) if isinstance(c, list) and len(c) == 2 else (None, None)
        ok = lo is not None and hi is not None and v == v
        plus.append(max(hi - v, 0.0) if ok else None)
        minus.append(max(v - lo, 0.0) if ok else None)
    return plus, minus


def noise_hover(r: pd.Series) -> str:
    """The hover line of a value measured under noise (empty for a quiet one)."""
    reason = r.get("noise_text")
    return f"<br>{NOISY_MARK} noisy: {esc(reason)}" if isinstance(reason, str) and reason else ""


def _ci_hover(r: pd.Series) -> str:
    c = r.get("throughput_ci95")
    # Images over the total time, where stalled steps moved it away from the median step's figure (one-rank cases:
    # a DDP bar is the global throughput, the record's figures are its rank's).
    total, median = number(r.get("throughput_total_img_s")), number(r.get("throughput_img_s"))
    moved = total and median and (number(r.get("world_size")) or 1) <= 1 and abs(total / median - 1) > 0.01
    extra = f"<br>over the total time: {fmt_number(total)} img/s" if moved else ""
    if isinstance(c, list) and len(c) == 2 and number(c[0]) is not None and number(c[1]) is not None:
        return f"<br>95% CI {fmt_number(c[0])} to {fmt_number(c[1])}{extra}"
    return ("<br>no interval (published figure, no samples)" if not r.get("has_samples") else "<br>no interval") + extra


def throughput_bars(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Throughput (img/s) per model and batch size for ``mode``, grouped by precision and memory format, with
    the bootstrap 95% interval as error bars where the record has one."""
    return grouped_bars(
        frame,
        mode,
        "tput",
        f"Throughput, {mode}",
        "images / s",
        "img/s",
        errors=_ci_errors,
        hover=_ci_hover,
        timed=True,
    )


def throughput_lines(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Throughput (img/s) against batch size for ``mode``: a line per model, precision and memory format."""
    return lines_vs_batch(frame, mode, "tput", f"Throughput against batch size, {mode}", "images / s", "img/s")


def memory_lines(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Peak memory (MiB: allocated on CUDA, resident set on CPU) against batch size for ``mode``; bars per case
    when the cases share one batch size."""
    rows = frame[frame["mode"] == mode] if not frame.empty else frame
    kinds = sorted({k for k in rows.get("mem_kind", pd.Series(dtype=object)).dropna()})
    ytitle = " / ".join(kinds) + " (MiB)" if kinds else "MiB"
    lines = lines_vs_batch(frame, mode, "mem_mib", f"Peak memory against batch size, {mode}", ytitle, "MiB")
    return lines or grouped_bars(frame, mode, "mem_mib", f"Peak memory per case, {mode}", ytitle, "MiB")


def _ratios(num: pd.DataFrame, den: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """Matching cases of ``num`` and ``den`` joined on ``on``, with ``ratio`` = numerator / denominator img/s (and
    each side's ``noise_text``)."""
    cols = [*on, "tput", "case_id", "noise_text"]
    joined = num[cols].merge(den[cols], on=on, suffixes=("_n", "_d"))
    joined = joined[(joined["tput_d"] > 0) & joined["tput_n"].notna()]
    return joined.assign(ratio=joined["tput_n"] / joined["tput_d"])


def _heatmap(
    pieces: list[tuple[str, list[str], pd.DataFrame]],
    title: str,
    mode: str,
    row_suffix: Callable[[pd.Series], str] = lambda r: "",
) -> go.Figure | None:
    """A ratio heatmap: rows are models (and variants), columns are (piece, batch size) where each piece is
    (column label prefix, the precisions its cells involve, joined ratios). Cells show the ratio, marked when
    either case was measured under noise (the hover says why); the colour is log2 of the ratio over a fixed,
    symmetric range (``SPEEDUP_RANGE``). The filter keys are the mode (whole chart), the model per row and the
    precisions per column."""
    pieces = [(label, keys, joined) for label, keys, joined in pieces if not joined.empty]
    if not pieces:
        return None
    everything = case_order(
        pd.concat([j.assign(_col=label) for label, _, j in pieces], ignore_index=True).assign(mode=mode)
    )
    everything = everything.assign(row=[f"{r['model']}{r['variant']}{row_suffix(r)}" for _, r in everything.iterrows()])
    rows = list(dict.fromkeys(everything["row"]))
    row_model = [str(everything.loc[everything["row"] == r, "model"].iloc[0]) for r in rows]
    columns: list[tuple[str, int]] = []
    column_keys: list[list[str]] = []
    for label, keys, joined in pieces:
        for size in sorted({int(b) for b in joined["batch_size"]}):
            columns.append((label, size))
            column_keys.append(keys)
    z = [[None] * len(columns) for _ in rows]
    text = [[""] * len(columns) for _ in rows]
    hover = [[""] * len(columns) for _ in rows]
    for _, r in everything.iterrows():
        i, j = rows.index(r["row"]), columns.index((r["_col"], int(r["batch_size"])))
        z[i][j] = math.log2(float(r["ratio"]))
        noisy = [f"{esc(r[f'case_id_{s}'])}: {esc(r[f'noise_text_{s}'])}" for s in "nd" if r[f"noise_text_{s}"]]
        text[i][j] = f"{r['ratio']:.2f}×" + (f" {NOISY_MARK}" if noisy else "")
        hover[i][j] = (
            f"{esc(r['case_id_n'])}: {fmt_number(r['tput_n'])} img/s"
            f"<br>{esc(r['case_id_d'])}: {fmt_number(r['tput_d'])} img/s"
            f"<br>ratio {r['ratio']:.3f}" + "".join(f"<br>{NOISY_MARK} noisy: {n}" for n in noisy)
        )
    x = [esc(f"{label} bs{size}" if label else f"bs{size}") for label, size in columns]
    trace = go.Heatmap(
        z=z,
        x=x,
        y=[esc(r) for r in rows],
        text=text,
        texttemplate="%{text}",
        customdata=hover,
        hovertemplate="%{customdata}<extra></extra>",
        colorscale="RdBu",
        zmin=-math.log2(SPEEDUP_RANGE),
        zmax=math.log2(SPEEDUP_RANGE),
        zauto=False,
        showscale=True,
        colorbar={
            "title": {"text": "ratio", "side": "top"},
            "tickvals": [math.log2(t) for t in SPEEDUP_TICKS],
            "ticktext": [f"{t:g}×" for t in SPEEDUP_TICKS],
            "thickness": 12,
            "len": 1.0,
            "x": 1.0,
            "xpad": 14,
            "xanchor": "left",
        },
        xgap=2,
        ygap=2,
        meta={"fk": {"mode": mode}, "rk": {"model": row_model}, "ck": {"precision": column_keys}},
    )
    fig_layout = layout(
        title,
        "",
        "",
        height=max(200, 70 + 30 * len(rows)),
        xlabels=x,
        ylabels=list(trace.y),
        xaxis={"type": "category"},
        yaxis={"type": "category", "autorange": "reversed"},
    )
    fig_layout["margin"]["r"] = 110  # the colour bar and its labels
    if len(columns) <= 8:
        # Few columns: as wide as they need, not stretched over the page (a single column would be a banner).
        fig_layout["width"] = fig_layout["margin"]["l"] + 110 + max(len(columns), 2) * CELL_PX
    return go.Figure(data=[trace], layout=fig_layout)


def amp_speedup(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Heatmap of AMP (amp_fp16, amp_bf16) throughput over fp32 throughput (×) for ``mode``: rows are models
    (and memory formats), columns AMP precision and batch size; only cases that match in everything else
    (memory format, resolution, device, compile) are paired."""
    if frame.empty:
        return None
    rows = frame[frame["mode"] == mode]
    on = ["model", "batch_size", "fmt", "variant"]
    fp32 = rows[rows["precision"] == "fp32"]
    pieces = [
        (amp, [amp, "fp32"], _ratios(rows[rows["precision"] == amp], fp32, on)) for amp in ("amp_fp16", "amp_bf16")
    ]
    return _heatmap(
        pieces,
        f"AMP over fp32, {mode}",
        mode,
        row_suffix=lambda r: " · channels_last" if r["fmt"] != "NCHW" else "",
    )


def channels_last_speedup(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Heatmap of channels_last throughput over NCHW throughput (×) for ``mode``: rows are models, columns
    precision and batch size."""
    if frame.empty:
        return None
    rows = frame[frame["mode"] == mode]
    on = ["model", "batch_size", "variant"]
    pieces = []
    for precision in ordered(rows["precision"], PRECISION_ORDER):
        same = rows[rows["precision"] == precision]
        pieces.append((precision, [precision], _ratios(same[same["fmt"] != "NCHW"], same[same["fmt"] == "NCHW"], on)))
    return _heatmap(pieces, f"channels_last over NCHW, {mode}", mode)
