"""Accuracy against speed: each model's stated acc@1 (from the catalog) against its measured throughput, with
the Pareto front, and measured accuracy against stated where records carry it.

Which stated figure applies: the record's ``weights`` tag (``V1``, ``IMAGENET1K_V2``) picks that entry; a local
weights path is matched to an entry by its file name; a record without weights (random initialisation, the usual
benchmark) is shown against the model's best stated entry, and the page says so.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from harness.errors import HarnessError
from harness.regress.metrics import number
from harness.report.blocks import fmt_number
from harness.report.data import PRECISION_ORDER, model_order, ordered, precision_colour
from harness.report.figures import SYMBOLS, esc, key_traces, layout, numeric


def stated_accuracy(model: Any, weights: Any) -> tuple[float, str] | None:
    """(stated acc@1 in %, which entry and why) for ``model`` run with ``weights``; None when unknown."""
    from harness.zoo.catalog import get_entry

    try:
        entry = get_entry(str(model))
    except HarnessError:
        return None
    if weights is None or weights != weights:
        best = entry.best_weights
        return best.acc1, f"{best.tag} (best stated entry; the run loaded no weights)"
    text = str(weights)
    name = PurePath(text).name
    for w in entry.weights:
        if name == w.file_name:
            return w.acc1, f"{w.tag} (from the weights file {name})"
    try:
        w = entry.weights_entry(text)
    except HarnessError:
        return None
    return w.acc1, w.tag


def accuracy_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Per group (mode, precision, batch size, and resolution/device/compile variant) the best throughput of
    each model, with its stated acc@1 and whether it is on the group's Pareto front."""
    columns = ["group", "mode", "precision", "batch_size", "model", "tput", "acc1", "weights_note", "case_id"]
    columns += ["device", "front"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = frame[numeric(frame, "tput").notna()]
    out = []
    for (mode, precision, bs, variant), sub in rows.groupby(["mode", "precision", "batch_size", "variant"], sort=False):
        best = sub.sort_values("tput", ascending=False).drop_duplicates("model")
        points = []
        for _, r in best.iterrows():
            stated = stated_accuracy(r["model"], r.get("weights"))
            if stated is None:
                continue
            points.append(
                {
                    "group": f"{precision} bs{int(bs)}{variant}",
                    "mode": mode,
                    "precision": precision,
                    "batch_size": int(bs),
                    "model": str(r["model"]),
                    "tput": float(r["tput"]),
                    "acc1": stated[0],
                    "weights_note": stated[1],
                    "case_id": r["case_id"],
                    "device": str(r.get("device_key") or ""),
                }
            )
        front = pareto_front(points)
        out.extend({**p, "front": p["model"] in front} for p in points)
    return pd.DataFrame(out, columns=columns)


def pareto_front(points: list[dict[str, Any]]) -> set[str]:
    """Models not dominated in (throughput, acc@1): no other model is at least as fast and at least as accurate
    while strictly better in one of the two."""
    front = set()
    for p in points:
        dominated = any(
            q is not p
            and q["tput"] >= p["tput"]
            and q["acc1"] >= p["acc1"]
            and (q["tput"], q["acc1"]) != (p["tput"], p["acc1"])
            for q in points
        )
        if not dominated:
            front.add(p["model"])
    return front


def accuracy_figure(frame: pd.DataFrame, mode: str, colours: dict[str, str] | None = None) -> go.Figure | None:
    """Stated acc@1 (%) against measured throughput (img/s) for ``mode``: a marker per model in each group
    (colour: precision, or the device's where ``colours`` maps devices to colours (a report of several devices);
    marker: the model) and the group's Pareto front as a dashed line."""
    points = accuracy_points(frame)
    points = points[points["mode"] == mode]
    if points.empty:
        return None
    # No text beside the markers (labels of neighbouring models overlap): the marker is the model's, the colour the
    # precision's, the legend explains both, and the hover names the case.
    models = model_order(points["model"])
    traces = []
    for precision in ordered(points["precision"], PRECISION_ORDER):
        for group, sub in points[points["precision"] == precision].groupby("group", sort=False):
            device = str(sub["device"].iloc[0])
            colour = colours.get(device, precision_colour(precision)) if colours else precision_colour(precision)
            fk = {"mode": mode, "precision": str(precision)}
            traces.append(
                go.Scatter(
                    x=sub["tput"].tolist(),
                    y=sub["acc1"].tolist(),
                    mode="markers",
                    name=esc(group),
                    showlegend=False,
                    marker={
                        "color": colour,
                        "symbol": [SYMBOLS[models.index(m) % len(SYMBOLS)] for m in sub["model"]],
                        "size": 11,
                        "line": {"width": 1, "color": "#fff"},
                    },
                    hovertext=[
                        f"{esc(c)} ({esc(group)})<br>{fmt_number(t)} img/s<br>stated acc@1 {a:.2f}% ({esc(w)})"
                        for c, t, a, w in zip(
                            sub["case_id"], sub["tput"], sub["acc1"], sub["weights_note"], strict=True
                        )
                    ],
                    hovertemplate="%{hovertext}<extra></extra>",
                    meta={"fk": fk, "pk": {"model": sub["model"].tolist()}},
                )
            )
            front = sub[sub["front"]].sort_values("tput")
            traces.append(
                go.Scatter(
                    x=front["tput"].tolist(),
                    y=front["acc1"].tolist(),
                    mode="lines",
                    name=esc(f"Pareto front, {group}"),
                    line={"color": colour, "dash": "dash", "width": 1.5},
                    hoverinfo="skip",
                    showlegend=False,
                    meta={"fk": fk, "pk": {"model": front["model"].tolist()}, "role": "front"},
                )
            )
    shown = {d: c for d, c in (colours or {}).items() if d in set(points["device"])} or None
    traces += key_traces(models, ordered(points["precision"], PRECISION_ORDER), [], shown)
    return go.Figure(
        data=traces,
        layout=layout(
            f"Stated acc@1 against throughput, {mode} (dashed: Pareto front)",
            "images / s (log)",
            "stated acc@1 (%)",
            height=480,
            legend=[t.name for t in traces if t.showlegend is not False],
            legend_side="right",
            xaxis={"type": "log"},
            showlegend=True,
        ),
    )


def measured_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    """Records that carry a measured ``accuracy`` dict with acc1: measured and stated acc@1 in %, with the case's
    resolution and device."""
    columns = ["model", "mode", "precision", "case_id", "resolution", "device", "measured", "stated", "weights_note"]
    if frame.empty or "accuracy" not in frame.columns:
        return pd.DataFrame(columns=columns)
    out = []
    for _, r in frame.iterrows():
        acc = r["accuracy"]
        value = number(acc.get("acc1"), text=True) if isinstance(acc, dict) else None
        if value is None:
            continue
        # Evaluations report acc@1 as a fraction or a percentage; the catalog states percentages.
        measured = value * 100 if value <= 1.0 else value
        stated = stated_accuracy(r["model"], r.get("weights"))
        out.append(
            {
                "model": str(r["model"]),
                "mode": r["mode"],
                "precision": r["precision"],
                "case_id": r["case_id"],
                "resolution": r.get("resolution"),
                "device": str(r.get("device_key") or ""),
                "measured": measured,
                "stated": stated[0] if stated else None,
                "weights_note": stated[1] if stated else "no stated figure",
            }
        )
    return pd.DataFrame(out, columns=columns)


def measured_vs_stated_figure(frame: pd.DataFrame) -> go.Figure | None:
    """Measured acc@1 against stated acc@1 (%) per case, with the line where they are equal."""
    rows = measured_accuracy(frame)
    rows = rows[rows["stated"].notna()]
    if rows.empty:
        return None
    traces = []
    for precision in ordered(rows["precision"], PRECISION_ORDER):
        sub = rows[rows["precision"] == precision]
        traces.append(
            go.Scatter(
                x=sub["stated"].tolist(),
                y=sub["measured"].tolist(),
                mode="markers",
                name=esc(precision),
                marker={"color": precision_colour(precision), "size": 10},
                hovertext=[
                    f"{esc(c)}<br>measured {m:.2f}% / stated {s:.2f}%"
                    for c, m, s in zip(sub["case_id"], sub["measured"], sub["stated"], strict=True)
                ],
                hovertemplate="%{hovertext}<extra></extra>",
                meta={
                    "fk": {"precision": str(precision)},
                    "pk": {"model": sub["model"].tolist(), "mode": sub["mode"].tolist()},
                },
            )
        )
    lo = min(rows["stated"].min(), rows["measured"].min()) - 1
    hi = max(rows["stated"].max(), rows["measured"].max()) + 1
    traces.append(
        go.Scatter(
            x=[lo, hi], y=[lo, hi], mode="lines", name="measured = stated", line={"color": "#9aa5b1", "dash": "dot"}
        )
    )
    return go.Figure(
        data=traces,
        layout=layout(
            "Measured against stated acc@1",
            "stated acc@1 (%)",
            "measured acc@1 (%)",
            legend=[t.name for t in traces],
            legend_side="right",
        ),
    )
