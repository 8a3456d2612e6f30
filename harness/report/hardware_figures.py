"""The charts of the hardware comparison page: bars per case, one bar group per run, as pure functions of the
comparison frame (``comparison_frame``: the rows of a ``HardwareComparison`` with what the charts need).

The conventions are the run report's (``harness.report.figures``): text from records is HTML-escaped, values are
plain lists, and every bar carries its model, mode and precision in ``meta.pk`` so the page filter can drop it.
A speedup chart has a dashed line at 1.0: the reference run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from harness.regress.metrics import number
from harness.report.data import MODE_ORDER, PRECISION_ORDER
from harness.report.figures import bar_figure, esc, numeric, values

#: The reference run is grey; the others take these colours in order (then repeat).
REFERENCE_COLOUR = "#9aa5b1"
RUN_COLOURS = ("#3b6ea8", "#e08a2c", "#2a9d8f", "#9a5bb5", "#c94c4c", "#8c6d31", "#d16ba5", "#4c9a6a")
#: Above this many bars in a full-width (half-width) chart the values are in the hover only: labels on every bar
#: would overlap.
MAX_BAR_TEXT = 48
MAX_BAR_TEXT_HALF = 20
#: Expected width (px) of the charts drawn side by side in pairs.
HALF = 560


#: The fields one speedup chart holds fixed: its title names them, its bars differ in model (and batch size).
GROUP_FIELDS = ("mode", "precision", "fmt", "resolution")


def comparison_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The comparison's case rows with what the page adds: ``fmt`` (NCHW or channels_last), ``ref_tput`` (the
    reference run's img/s for the same case), ``case_batch`` (the batch size of the case's first row) and
    ``variant`` (empty: the case label says everything)."""
    if frame.empty:
        return frame
    df = frame.copy()
    df["fmt"] = ["channels_last" if c is True or c == 1 else "NCHW" for c in df["channels_last"]]
    ref = df[df["run_index"] == 0].set_index("case")["throughput_img_s"]
    df["ref_tput"] = df["case"].map(ref)
    # Under the published-matching rule a case's runs may differ in batch size; its axis label takes the first's.
    df["case_batch"] = df["case"].map(df.drop_duplicates("case").set_index("case")["batch_size"])
    df["variant"] = ""
    return df


def speedup_groups(rows: pd.DataFrame):
    """``rows`` split by ``GROUP_FIELDS`` (one speedup chart each): (key tuple, rows) pairs in page order: mode,
    precision, NCHW before channels_last, resolution."""
    modes = {m: i for i, m in enumerate(MODE_ORDER)}
    precisions = {p: i for i, p in enumerate(PRECISION_ORDER)}
    keys = rows[list(GROUP_FIELDS)].drop_duplicates().to_dict("records")
    keys.sort(
        key=lambda k: (
            modes.get(k["mode"], len(modes)),
            str(k["mode"]),
            precisions.get(k["precision"], len(precisions)),
            str(k["precision"]),
            k["fmt"] != "NCHW",
            k["resolution"] if k["resolution"] == k["resolution"] else 0,
        )
    )
    for k in keys:
        mask = pd.Series(True, index=rows.index)
        for f in GROUP_FIELDS:
            mask &= rows[f] == k[f] if k[f] == k[f] else rows[f].isna()
        yield tuple(k[f] for f in GROUP_FIELDS), rows[mask]


def run_colour(index: int) -> str:
    """The colour of run ``index`` in every chart of the page (run 0, the reference, is grey)."""
    return REFERENCE_COLOUR if index == 0 else RUN_COLOURS[(index - 1) % len(RUN_COLOURS)]


def ratio_text(value: float | None) -> str:
    """A speedup as text: ``1.97×`` (two decimals), or ``n/a``."""
    return "n/a" if value is None else f"{value:.2f}×"


def case_axis(rows: pd.DataFrame, fixed: tuple[str, ...]) -> list[str]:
    """An axis label per row: the model, then each matching field the chart does not fix (``fixed``) and that
    takes more than one value in ``rows`` (the case's batch size, resolution, precision, memory format, mode, DDP
    size). All rows of one case get one label, even where their batch sizes differ (published matching)."""
    parts: list[tuple[str, Callable[[Any], str]]] = [
        ("mode", str),
        ("case_batch", lambda v: f"bs{int(v)}" if number(v) is not None else str(v)),
        ("resolution", lambda v: f"{int(v)}px" if number(v) is not None else str(v)),
        ("precision", str),
        ("fmt", str),
        ("world_size", lambda v: f"ddp×{int(v)}" if number(v) and number(v) > 1 else ""),
    ]
    varying = [
        (name, show)
        for name, show in parts
        if name not in fixed and name in rows.columns and rows[name].nunique(dropna=False) > 1
    ]
    out = []
    for _, r in rows.iterrows():
        words = [str(r["model"])] + [show(r[name]) for name, show in varying]
        out.append(" ".join(w for w in words if w))
    return out


def _keys(rows: pd.DataFrame) -> dict[str, list[str | None]]:
    """Per-bar filter keys; a missing value (a summary bar over every model) matches every filter choice."""
    out: dict[str, list[str | None]] = {}
    for name in ("model", "mode", "precision"):
        if name in rows.columns:
            out[name] = [None if v is None or v != v or v == "all" else str(v) for v in rows[name]]
    return out


def run_bars(
    rows: pd.DataFrame,
    value: str,
    runs: list[tuple[int, str]],
    title: str,
    ytitle: str,
    shown: Callable[[float | None], str],
    hover: Callable[[pd.Series], str],
    reference: str | None = None,
    width: int = 1100,
    scale: float = 1.0,
) -> go.Figure | None:
    """Bars of ``value`` per category (the ``x`` column of ``rows``, in row order), one bar group per run in
    ``runs`` ((run index, name) pairs; colour by run). ``shown(v)`` writes a bar's value on it, ``hover(row)``
    gives its hover text (HTML-escaped by the caller). With ``reference`` (the reference run's name) a dashed
    line marks 1.0. None when no run has a value."""
    rows = rows[numeric(rows, value).notna()] if not rows.empty else rows
    if rows.empty:
        return None
    categories = list(dict.fromkeys(esc(x) for x in rows["x"]))
    limit = MAX_BAR_TEXT if width > HALF else MAX_BAR_TEXT_HALF
    labelled = len(rows[rows["run_index"].isin([i for i, _ in runs])]) <= limit
    traces = []
    for index, name in runs:
        sub = rows[rows["run_index"] == index]
        if sub.empty:
            continue
        y = values(numeric(sub, value), scale)
        trace: dict[str, Any] = {
            "x": [esc(x) for x in sub["x"]],
            "y": y,
            "name": esc(name),
            "marker": {"color": run_colour(index)},
            "hovertext": [hover(r) for _, r in sub.iterrows()],
            "hovertemplate": "%{hovertext}<extra></extra>",
            "meta": {"pk": _keys(sub), "run": index},
        }
        if labelled:
            trace.update(text=[shown(v) for v in y], textposition="outside", cliponaxis=False, textfont={"size": 10})
        traces.append(go.Bar(**trace))
    if not traces:
        return None
    extra: dict[str, Any] = {}
    if reference is not None:
        line = {"color": "#52606d", "width": 1.5, "dash": "dash"}
        extra["shapes"] = [
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 1, "y1": 1, "line": line}
        ]
        # The line's legend entry draws nothing and carries no filter keys, so the page filter leaves it alone.
        traces.append(go.Scatter(x=[None], y=[None], mode="lines", name=f"{esc(reference)} = 1.0", line=line))
    return bar_figure(
        traces,
        title,
        ytitle,
        categories,
        width,
        height=380,
        bargap=0.22 if len(categories) > 3 else 0.55,
        bargroupgap=0.05,
        xaxis={"type": "category"},
        yaxis={"rangemode": "tozero"},
        **extra,
    )


def speedup_bars(rows: pd.DataFrame, names: list[str], title: str) -> go.Figure | None:
    """Speedup over the reference per case of one group (mode, precision, memory format, resolution): a bar per
    run after the reference, a dashed line at 1.0 for the reference itself. ``names`` are the runs' short names
    by run index; the hover gives both throughputs and the ratio."""

    def hover(r: pd.Series) -> str:
        return (
            f"{esc(r['case'])}<br>{esc(names[int(r['run_index'])])}: {r['throughput_img_s']:.4g} img/s"
            f"<br>{esc(names[0])}: {r['ref_tput']:.4g} img/s<br>speedup {r['speedup']:.3f}×"
        )

    runs = [(i, name) for i, name in enumerate(names) if i > 0]
    return run_bars(rows, "speedup", runs, title, "speedup (×)", ratio_text, hover, reference=names[0])


def geomean_bars(summary: pd.DataFrame, names: list[str], width: int = 1100) -> go.Figure | None:
    """Geometric-mean speedup over the reference per mode and precision (and over all cases first, when there
    are several groups), one bar per run after the reference; the hover gives the case count, min and max."""
    if summary.empty:
        return None
    rows = summary[summary["run_index"] > 0]
    rows = rows.assign(
        x=["all cases" if m == "all" else f"{m} · {p}" for m, p in zip(rows["mode"], rows["precision"], strict=True)]
    )

    def hover(r: pd.Series) -> str:
        return (
            f"{esc(names[int(r['run_index'])])}, {esc(r['x'])}<br>geometric mean {r['geomean_speedup']:.3f}× over"
            f" {int(r['cases'])} case(s)<br>min {r['min_speedup']:.3f}×, max {r['max_speedup']:.3f}×"
        )

    runs = [(i, name) for i, name in enumerate(names) if i > 0]
    title = "Geometric-mean speedup per mode and precision"
    return run_bars(
        rows, "geomean_speedup", runs, title, "speedup (×)", ratio_text, hover, reference=names[0], width=width
    )


def metric_bars(
    rows: pd.DataFrame, names: list[str], value: str, title: str, ytitle: str, unit: str, scale: float = 1.0
) -> go.Figure | None:
    """``value`` per case for every run that has it, reference included, side by side (half width)."""

    def shown(v: float | None) -> str:
        return "" if v is None else f"{v:.3g}"

    def hover(r: pd.Series) -> str:
        v = number(r[value])
        return f"{esc(r['case'])}<br>{esc(names[int(r['run_index'])])}: {v * scale:.4g} {unit}"

    runs = list(enumerate(names))
    return run_bars(rows, value, runs, title, ytitle, shown, hover, width=HALF, scale=scale)


def mode_precision_groups(rows: pd.DataFrame) -> list[tuple[Any, Any]]:
    """The (mode, precision) pairs of ``rows`` in page order."""
    modes = {m: i for i, m in enumerate(MODE_ORDER)}
    precisions = {p: i for i, p in enumerate(PRECISION_ORDER)}
    keys = list(dict.fromkeys(zip(rows["mode"], rows["precision"], strict=True)))
    keys.sort(key=lambda k: (modes.get(k[0], len(modes)), str(k[0]), precisions.get(k[1], len(precisions)), str(k[1])))
    return keys


def throughput_bars(rows: pd.DataFrame, names: list[str], title: str) -> go.Figure | None:
    """Absolute throughput (img/s) per case of one mode and precision, one bar per run, reference included."""

    def shown(v: float | None) -> str:
        return "" if v is None else f"{v:,.0f}"

    def hover(r: pd.Series) -> str:
        return f"{esc(r['case'])}<br>{esc(names[int(r['run_index'])])}: {r['throughput_img_s']:,.1f} img/s"

    runs = list(enumerate(names))
    return run_bars(rows, "throughput_img_s", runs, title, "images / s", shown, hover)
