"""Resolution scaling: how each model's throughput changes with the input size, and how far that is from the
ideal of a constant number of pixels per second.

Two pure functions of a ``harness.report.data`` frame, each for one mode, each None unless some case was measured
(or published) at two resolutions or more with everything else equal: ``throughput_vs_resolution`` (img/s
against the side in pixels, log scales) and ``pixel_scaling`` (pixels per second relative to the same case at its
reference resolution, 224 px where present: 1.0 means throughput falls exactly as the pixel count grows, above 1
means larger inputs use the device better). A line is one case apart from its resolution: model, batch size,
precision, memory format, compile, DDP world size and device.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from harness.report.data import PRECISION_ORDER, column, device_colours, model_order, ordered, truthy
from harness.report.figures import MAX_LEGEND, _fmt, case_line, esc, key_traces, log_x_figure, numeric, values

#: The resolution scaling is measured from: the catalog's stated figures are at 224 px.
REFERENCE_PX = 224
LINE_KEYS = ("model", "batch_size", "precision", "fmt", "_compiled", "_world", "device_key")


def _lines(frame: pd.DataFrame, mode: str) -> list[tuple[tuple, pd.DataFrame]]:
    rows = frame[(frame["mode"] == mode) & numeric(frame, "tput").notna()] if not frame.empty else frame
    if rows.empty or numeric(rows, "resolution").nunique() < 2:
        return []
    rows = rows.assign(
        _compiled=[truthy(c) for c in column(rows, "compile")],
        _world=pd.to_numeric(column(rows, "world_size"), errors="coerce").fillna(1).astype(int),
        _res=numeric(rows, "resolution"),
    )
    models = {m: i for i, m in enumerate(model_order(rows["model"]))}
    precisions = {p: i for i, p in enumerate(PRECISION_ORDER)}
    out = []
    for key, sub in rows.groupby(list(LINE_KEYS), sort=False, dropna=False):
        sub = sub.sort_values("_res").drop_duplicates("_res", keep="last")
        if len(sub) >= 2:
            out.append((key, sub))
    out.sort(key=lambda item: (models.get(str(item[0][0]), 99), item[0][1], precisions.get(item[0][2], 9), item[0][3:]))
    return out


def _name(key: tuple, many_devices: bool) -> str:
    model, batch, precision, fmt, compiled, world, device = key
    text = f"{model} bs{int(batch)}" + (" compiled" if compiled else "") + (f" ddp×{world}" if world > 1 else "")
    return text + (f" @ {device}" if many_devices else "") + f" · {precision} · {fmt}"


def _figure(frame: pd.DataFrame, mode: str, title: str, ytitle: str, y_of, unit: str, ideal: bool) -> go.Figure | None:
    lines = _lines(frame, mode)
    if not lines:
        return None
    many_devices = len({key[-1] for key, _ in lines}) > 1
    colours = device_colours(key[-1] for key, _ in lines) if many_devices else {}
    models = model_order(key[0] for key, _ in lines)
    many = len(lines) > MAX_LEGEND
    traces = []
    for key, sub in lines:
        y = y_of(sub)
        if y is None:
            continue
        model, precision, fmt = key[0], key[2], key[3]
        hover = [f"{esc(c)} · {esc(key[-1])}<br>{_fmt(v, unit)}" for c, v in zip(sub["case"], y, strict=True)]
        name = esc(_name(key, many_devices))
        case = (model, mode, precision, fmt)
        colour = colours.get(str(key[-1]))
        traces.append(case_line(values(sub["_res"]), y, name, hover, case, models, not many, colour))
    if not traces:
        return None
    sizes = sorted({int(r) for _, sub in lines for r in sub["_res"]})
    if ideal:
        traces.append(
            go.Scatter(
                x=sizes,
                y=[1.0] * len(sizes),
                mode="lines",
                name="constant pixels/s",
                line={"color": "#9aa5b1", "dash": "dash", "width": 1},
                hoverinfo="skip",
            )
        )
    if many:
        precisions = ordered((key[2] for key, _ in lines), PRECISION_ORDER)
        traces += key_traces(models, precisions, ordered((key[3] for key, _ in lines), ()), colours or None)
    return log_x_figure(traces, title, "input side (px)", ytitle, sizes, yaxis={"type": "log"} if not ideal else {})


def throughput_vs_resolution(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Throughput (img/s) against the input side (px) for ``mode``, log scales: a line per case apart from its
    resolution; None unless some case spans two resolutions or more."""
    return _figure(
        frame,
        mode,
        f"Throughput against resolution, {mode}",
        "images / s",
        lambda sub: values(sub["tput"]),
        "img/s",
        ideal=False,
    )


def _relative_pixels(sub: pd.DataFrame) -> list[float | None] | None:
    res = sub["_res"].tolist()
    base = REFERENCE_PX if REFERENCE_PX in res else min(res)
    ref = sub[sub["_res"] == base]["tput"].iloc[0]
    if not ref or ref != ref:
        return None
    return [float(t * r * r / (ref * base * base)) for t, r in zip(sub["tput"], res, strict=True)]


def pixel_scaling(frame: pd.DataFrame, mode: str) -> go.Figure | None:
    """Pixels per second relative to the same case at 224 px (or its smallest resolution when it has no 224 px
    record) against the input side, for ``mode``: 1.0 is throughput falling exactly with the pixel count."""
    return _figure(
        frame,
        mode,
        f"Resolution scaling, {mode}: pixels/s relative to {REFERENCE_PX} px",
        f"pixels/s ÷ pixels/s at {REFERENCE_PX} px",
        _relative_pixels,
        "×",
        ideal=True,
    )
