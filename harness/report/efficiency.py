"""Ops, efficiency and profile charts: measured against stated GMACs, achieved TFLOP/s and MFU, images per joule,
power and clocks from telemetry, and a profiled case's top operators. Pure functions of a ``derive``d frame
(see ``harness.report.figures`` for the shared conventions), returning None when there is nothing to draw.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from harness.regress.metrics import number
from harness.report.data import NEUTRAL_COLOUR, NEUTRAL_LIGHT
from harness.report.figures import case_order, esc, grouped_bars, layout, numeric, values

#: Expected width (px) of the charts drawn side by side in pairs.
HALF = 560


def ops_table_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per model and resolution: measured GMACs per image, stated GMACs and their deviation."""
    if frame.empty:
        return frame
    rows = frame[numeric(frame, "gmacs").notna()]
    if rows.empty:
        return rows
    rows = case_order(rows.assign(variant=""))
    rows = rows.drop_duplicates(["model", "resolution"])
    stated = numeric(rows, "stated_gmacs")
    dev = numeric(rows, "ops_deviation")
    # Recompute the deviation where the record lacks it but has both sides.
    dev = dev.where(dev.notna(), rows["gmacs"] / stated - 1)
    return rows.assign(stated=stated, deviation=dev)


def ops_figure(frame: pd.DataFrame) -> go.Figure | None:
    """Measured GMACs per image against the stated ``_ops`` (scaled to the resolution), per model, with the
    deviation (measured / stated − 1) written on the measured bar."""
    rows = ops_table_rows(frame)
    if rows.empty:
        return None
    labels = [esc(f"{m} {int(r)}px") for m, r in zip(rows["model"], numeric(rows, "resolution").fillna(0), strict=True)]
    models = list(map(str, rows["model"]))
    devs = values(rows["deviation"])
    measured = go.Bar(
        x=labels,
        y=values(rows["gmacs"]),
        name="measured GMACs",
        marker={"color": NEUTRAL_COLOUR},
        text=["" if d is None else f"{d:+.2%}" for d in devs],
        textposition="outside",
        hovertemplate="%{x}<br>measured %{y:.4g} GMACs<extra></extra>",
        meta={"pk": {"model": models}},
    )
    stated = go.Bar(
        x=labels,
        y=values(rows["stated"]),
        name="stated GMACs (_ops)",
        marker={"color": NEUTRAL_LIGHT},
        hovertemplate="%{x}<br>stated %{y:.4g} GMACs<extra></extra>",
        meta={"pk": {"model": models}},
    )
    return go.Figure(
        data=[measured, stated],
        layout=layout(
            "Measured against stated GMACs per image",
            "",
            "GMACs / image",
            xlabels=labels,
            legend=[measured.name, stated.name],
            barmode="group",
        ),
    )


def tflops_bars(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Achieved TFLOP/s (model FLOPs per image × throughput) per case for ``mode``."""
    title = f"Achieved TFLOP/s, {mode}"
    return grouped_bars(frame, mode, "achieved_tflops", title, "TFLOP/s", "TFLOP/s", width=HALF, timed=True)


def mfu_bars(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Model FLOPs utilisation (% of the matmul peak measured in the run) per case for ``mode``."""
    return grouped_bars(
        frame, mode, "mfu", f"MFU, {mode}", "% of measured peak", "%", scale=100.0, width=HALF, timed=True
    )


def img_per_joule_bars(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Images per joule (images over the NVML energy counter's difference) per case for ``mode``."""
    return grouped_bars(
        frame, mode, "telemetry.img_per_j", f"Images per joule, {mode}", "images / J", "img/J", timed=True
    )


def _power_errors(rows: pd.DataFrame) -> tuple[list, list]:
    avg, peak = numeric(rows, "telemetry.power_avg_w"), numeric(rows, "telemetry.power_max_w")
    plus = [None if p != p or a != a else max(p - a, 0.0) for a, p in zip(avg, peak, strict=True)]
    return plus, [0.0] * len(plus)


def power_bars(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Average board power (W) during each case of ``mode``; the whisker reaches the maximum sampled power."""
    return grouped_bars(
        frame,
        mode,
        "telemetry.power_avg_w",
        f"Power during each case, {mode} (bar: average, whisker: maximum)",
        "W",
        "W avg",
        errors=_power_errors,
        width=HALF,
    )


def clock_bars(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Mean SM clock (MHz) during each case of ``mode``."""
    return grouped_bars(
        frame, mode, "telemetry.sm_clock_mhz", f"SM clock during each case, {mode}", "MHz", "MHz", width=HALF
    )


def profile_figure(top_ops: list[dict[str, Any]], case_id: str, keys: dict[str, str]) -> go.Figure | None:
    """Horizontal bars of the self time (ms; device time when recorded, else host) of a case's top operators;
    ``keys`` are the case's filter keys (model, mode, precision)."""
    ops = [op for op in top_ops or [] if isinstance(op, dict) and op.get("name") is not None]
    if not ops:
        return None
    device = any(number(op.get("self_cuda_time_ms"), text=True) for op in ops)
    key = "self_cuda_time_ms" if device else "self_time_ms"
    ops = sorted(ops, key=lambda op: number(op.get(key), text=True) or 0.0)
    trace = go.Bar(
        x=[number(op.get(key), text=True) for op in ops],
        y=[esc(op["name"]) for op in ops],
        orientation="h",
        marker={"color": NEUTRAL_COLOUR},
        hovertemplate="%{y}<br>%{x:.4g} ms<extra></extra>",
        meta={"fk": {k: str(v) for k, v in keys.items()}},
    )
    return go.Figure(
        data=[trace],
        layout=layout(
            f"Top operators by self {'device' if device else 'CPU'} time: {case_id}",
            "ms",
            "",
            height=max(200, 70 + 22 * len(ops)),
            ylabels=list(trace.y),
            yaxis={"type": "category"},
        ),
    )
