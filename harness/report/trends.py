"""Trends across runs: each case's throughput over the runs of one suite on one environment (the fingerprint's
comparable fields: device, driver, torch, ...; host and git revision may differ, as between nightly runs), with
the steps ``harness.regress.detect_steps`` finds, where that module provides it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from harness.report.data import column, precision_colour
from harness.report.figures import esc, layout, numeric
from harness.store.fingerprint import COMPARABLE_FIELDS, GPU_COMPARABLE_FIELDS
from harness.store.record import Status

DEFAULT_THRESHOLD = 0.05
#: Above this many cases, a trends chart draws one trace per model, mode and precision instead of one per case.
MAX_TRACES = 40


def step_detector() -> Callable[..., Any] | None:
    """``harness.regress.detect_steps`` when the installed harness has it, else None (no steps are marked)."""
    try:
        from harness.regress import detect_steps
    except ImportError:
        return None
    return detect_steps


def _steps(found: Any) -> list[tuple[int, str]]:
    """(index, description) of each step ``detect_steps`` returned: ``Step`` objects (index, change,
    recovered_at), dicts with the same keys, or bare indices."""
    out = []
    for item in found or []:
        if isinstance(item, int) and not isinstance(item, bool):
            out.append((item, ""))
            continue
        get = item.get if isinstance(item, dict) else lambda k, o=item: getattr(o, k, None)
        index, change, recovered = get("index"), get("change"), get("recovered_at")
        if not isinstance(index, int) or isinstance(index, bool):
            continue
        text = f" {change:+.1%}" if isinstance(change, float) else ""
        if isinstance(recovered, int):
            text += f", recovered at run {recovered + 1}"
        out.append((index, text))
    return out


def trend_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) for each suite and environment with records from at least two runs, oldest group first."""
    if frame.empty:
        return []
    # GPU settings are compared as compare does: a run whose manifest predates them (no value) stays on the line
    # of its environment when that line has one setting; runs with different settings get lines of their own.
    base = [f"env.{k}" for k in COMPARABLE_FIELDS if k not in GPU_COMPARABLE_FIELDS]
    gpu = [f"env.{k}" for k in GPU_COMPARABLE_FIELDS]

    def joined(cols):
        return [
            "|".join("" if pd.isna(v) else str(v) for v in vals)
            for vals in zip(*(column(frame, c) for c in cols), strict=True)
        ]

    keyed = frame.assign(_suite=column(frame, "suite").fillna("?").astype(str), _base=joined(base), _gpu=joined(gpu))
    known = keyed[keyed["_gpu"].str.strip("|") != ""]
    settings = known.groupby(["_suite", "_base"])["_gpu"].nunique()
    only = known.groupby(["_suite", "_base"])["_gpu"].first()
    fill = [
        only[(s, b)] if g.strip("|") == "" and settings.get((s, b), 0) == 1 else g
        for s, b, g in zip(keyed["_suite"], keyed["_base"], keyed["_gpu"], strict=True)
    ]
    keyed = keyed.assign(_env=[f"{b}#{g}" for b, g in zip(keyed["_base"], fill, strict=True)])
    out = []
    for (suite, _), rows in keyed.groupby(["_suite", "_env"], sort=False):
        if rows["run_dir"].nunique() < 2:
            continue
        device = column(rows, "env.device_name").dropna()
        where = f" on {device.iloc[0]}" if len(device) else ""
        out.append((f"Throughput across runs: {suite}{where}", rows.drop(columns=["_suite", "_base", "_gpu", "_env"])))
    return out


def trend_figure(rows: pd.DataFrame, title: str, threshold: float = DEFAULT_THRESHOLD) -> go.Figure | None:
    """A line per case: its throughput (img/s) in each run (x: the run's start time), one trace per case up to
    ``MAX_TRACES`` cases, else one per model, mode and precision with a gap between cases. Steps found by
    ``detect_steps(series, threshold)`` are marked with a red ring on the first run after the step."""
    ok = rows[(rows["status"] == Status.OK) & numeric(rows, "tput").notna()] if not rows.empty else rows
    if ok.empty or ok["run_dir"].nunique() < 2:
        return None
    ok = ok.assign(_t=column(ok, "run_started_at").fillna("").astype(str)).sort_values(["_t", "rank"], kind="stable")
    ok = ok.drop_duplicates(["run_dir", "case_id", "device_key"], keep="first")
    detect = step_detector()
    traces = []
    steps: dict[str, list] = {"x": [], "y": [], "text": [], "model": [], "mode": [], "precision": []}
    cases = list(ok.groupby(["case_id", "device_key"], sort=True))
    # Hundreds of cases (a nightly suite) drawn as hundreds of traces take seconds to render; then the cases of
    # one model, mode and precision share a trace, each case's points followed by a gap.
    merged: dict[tuple[str, str, str], dict[str, list]] = {}
    for (case, _), sub in cases:
        y = [float(v) for v in sub["tput"]]
        x = list(sub["_t"])
        first = sub.iloc[0]
        keys = {"model": str(first["model"]), "mode": str(first["mode"]), "precision": str(first["precision"])}
        if len(cases) > MAX_TRACES:
            m = merged.setdefault((keys["model"], keys["mode"], keys["precision"]), {"x": [], "y": [], "text": []})
            m["x"] += [*x, None]
            m["y"] += [*y, None]
            m["text"] += [esc(case)] * len(x) + [""]
        else:
            traces.append(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    name=esc(case),
                    line={"width": 1.5, "color": precision_colour(first["precision"])},
                    marker={"size": 5},
                    hovertemplate=f"{esc(case)}<br>%{{x}}<br>%{{y:.4g}} img/s<extra></extra>",
                    meta={"fk": keys},
                )
            )
        if detect is not None and len(y) >= 2:
            try:
                found = _steps(detect(y, threshold))
            except Exception:  # a failing detector must not cost the user the rest of the report
                found = []
            for i, what in found:
                if 0 <= i < len(y):
                    steps["x"].append(x[i])
                    steps["y"].append(y[i])
                    steps["text"].append(f"step{what}: {esc(case)}<br>{x[i]}: {y[i]:.4g} img/s")
                    for k in ("model", "mode", "precision"):
                        steps[k].append(keys[k])
    for (model, mode, precision), m in merged.items():
        traces.append(
            go.Scatter(
                x=m["x"],
                y=m["y"],
                mode="lines",
                name=esc(f"{model} {mode} {precision}"),
                line={"width": 1.2, "color": precision_colour(precision)},
                hovertext=m["text"],
                hovertemplate="%{hovertext}<br>%{x}<br>%{y:.4g} img/s<extra></extra>",
                meta={"fk": {"model": model, "mode": mode, "precision": precision}},
            )
        )
    if steps["x"]:
        traces.append(
            go.Scatter(
                x=steps["x"],
                y=steps["y"],
                mode="markers",
                name="detected step",
                marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#d1342f"}},
                hovertext=steps["text"],
                hovertemplate="%{hovertext}<extra></extra>",
                meta={"pk": {k: steps[k] for k in ("model", "mode", "precision")}, "role": "steps"},
            )
        )
    return go.Figure(
        data=traces,
        layout=layout(
            title,
            "run start (UTC)",
            "images / s (log)",
            height=460,
            legend=[t.name for t in traces] if len(traces) <= 16 else None,
            legend_side="right",
            xaxis={"type": "date"},
            yaxis={"type": "log"},
        ),
    )
