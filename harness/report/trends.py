"""Trends across runs: each case's throughput over the runs of one suite on one environment (the fingerprint's
comparable fields: device, driver, torch, ...; host and git revision may differ, as between nightly runs), with
the steps ``harness.regress.detect_steps`` finds, where that module provides it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from harness.report.blocks import fmt_number
from harness.report.data import column, precision_colour
from harness.report.figures import case_order, colours_by_device, esc, layout, numeric
from harness.store.fingerprint import COMPARABLE_FIELDS, GPU_COMPARABLE_FIELDS
from harness.store.record import Status

DEFAULT_THRESHOLD = 0.05
#: Up to this many cases, a trends chart's case chooser offers every case at once.
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
    """A line per case (and device): its throughput (img/s) in each run (x: the run's start time). Each trace
    carries its case in ``meta.case`` (the page's case chooser draws one case at a time). Steps found by
    ``detect_steps(series, threshold)`` are marked with a red ring on the first run after the step; the rings'
    trace carries the case of each point in ``meta.pk.case``. Colour: the device when the rows hold several,
    else the precision."""
    ok = rows[(rows["status"] == Status.OK) & numeric(rows, "tput").notna()] if not rows.empty else rows
    if ok.empty or ok["run_dir"].nunique() < 2:
        return None
    ok = ok.assign(_t=column(ok, "run_started_at").fillna("").astype(str)).sort_values(["_t", "rank"], kind="stable")
    ok = ok.drop_duplicates(["run_dir", "case_id", "device_key"], keep="first")
    detect = step_detector()
    by_device = colours_by_device(ok)
    traces = []
    steps: dict[str, list] = {"x": [], "y": [], "text": [], "model": [], "mode": [], "precision": [], "case": []}
    # Only the columns drawn: slicing the whole records frame once per case costs seconds on a nightly history.
    keep = ["case_id", "device_key", "case", "model", "mode", "precision", "tput", "_t", "run", "batch_size", "fmt"]
    slim = ok[[*keep, *(c for c in ("resolution", "variant") if c in ok.columns)]]
    for (_, device), sub in figs_order(slim):
        y = [float(v) for v in sub["tput"]]
        x = list(sub["_t"])
        model, mode, precision, shown = (str(sub[k].iat[0]) for k in ("model", "mode", "precision", "case"))
        case = shown + (f" @ {device}" if by_device else "")
        keys = {"model": model, "mode": mode, "precision": precision}
        hover = [f"{esc(run)}: {fmt_number(v)} img/s" for run, v in zip(sub["run"], y, strict=True)]
        # A plain dict per trace: the figure checks them all at once, far faster than one go.Scatter per case.
        traces.append(
            {
                "type": "scatter",
                "x": x,
                "y": y,
                "mode": "lines+markers",
                "name": esc(case),
                "line": {"width": 1.8, "color": by_device.get(str(device)) or precision_colour(precision)},
                "marker": {"size": 6},
                "hovertext": hover,
                # The case once per trace, the run and value per point: a nightly history has thousands of points.
                "hovertemplate": f"{esc(case)}<br>%{{hovertext}}<br>%{{x}}<extra></extra>",
                "meta": {"fk": keys, "case": case},
            }
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
                    steps["text"].append(f"step{what}: {esc(case)}<br>{x[i]}: {fmt_number(y[i])} img/s")
                    steps["case"].append(case)
                    for k in ("model", "mode", "precision"):
                        steps[k].append(keys[k])
    names = [t["name"] for t in traces]
    if steps["x"]:
        traces.append(
            go.Scatter(
                x=steps["x"],
                y=steps["y"],
                mode="markers",
                name="detected step",
                marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 2.5, "color": "#d1342f"}},
                hovertext=steps["text"],
                hovertemplate="%{hovertext}<extra></extra>",
                meta={"pk": {k: steps[k] for k in ("model", "mode", "precision", "case")}, "role": "steps"},
            )
        )
    return go.Figure(
        data=traces,
        layout=layout(
            title,
            "run start (UTC)",
            "images / s (log)",
            height=460,
            legend=[*names, "detected step"],
            legend_side="right",
            xaxis={"type": "date"},
            yaxis={"type": "log"},
        ),
    )


def figs_order(ok: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """The rows of each (case id, device), in the page's case order."""
    order = {c: i for i, c in enumerate(dict.fromkeys(case_order(ok)["case_id"]))}
    groups = list(ok.groupby(["case_id", "device_key"], sort=False))
    return sorted(groups, key=lambda g: (order[g[0][0]], str(g[0][1])))


def chooser(fig: go.Figure) -> tuple[list[tuple[str, str]], str]:
    """The case chooser of a trends chart: (value, label) per case, ``*`` (every case) first when there are at
    most ``MAX_TRACES``, and the case shown first: the first with a detected step, else the one that moved most
    between its first and last run."""
    cases = [t.meta["case"] for t in fig.data if isinstance(t.meta, dict) and "case" in t.meta]
    choices = [(c, c) for c in cases]
    if len(cases) <= MAX_TRACES:
        choices.insert(0, ("*", f"every case ({len(cases)})"))
    rings = [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("role") == "steps"]
    if rings:
        return choices, rings[0].meta["pk"]["case"][0]
    moved = {
        t.meta["case"]: abs(math.log(t.y[-1] / t.y[0]))
        for t in fig.data
        if isinstance(t.meta, dict) and "case" in t.meta and t.y and t.y[0] and t.y[-1]
    }
    return choices, max(moved, key=moved.get) if moved else (cases[0] if cases else "")
