"""The sections that relate measurements to other things: accuracy against speed (the catalog's stated acc@1),
trends across runs, and the profiler's operator tables."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from harness.report import accuracy as acc
from harness.report import efficiency as eff
from harness.report import trends as trend
from harness.report.blocks import Cell, Code, Group, Heading, Link, Note, Row, Section, Table, keys_of, num, pct, text
from harness.report.builder import Builder
from harness.report.data import MODE_ORDER, ReportData, column, ordered, shown_id


def accuracy(b: Builder) -> Section:
    """Stated acc@1 against throughput with the Pareto front, and measured against stated accuracy."""
    s = Section("accuracy", "Accuracy against speed")
    points = acc.accuracy_points(b.ok)
    if points.empty:
        s.add(Note("No successful cases of models with a stated accuracy.", "nodata"))
    else:
        notes = sorted(set(points["weights_note"]))
        s.add(
            Note(
                "Stated acc@1 per weights entry: "
                + "; ".join(notes)
                + ". Per mode, precision and batch size, each model's fastest case; the dashed line joins the models"
                " no other model beats in both speed and accuracy."
            )
        )
        for mode in ordered(points["mode"], MODE_ORDER):
            s.add(b.plot(acc.accuracy_figure(b.ok, mode, b.colours)))
        rows = [
            Row(
                [
                    Cell(r["model"]),
                    Cell(r["mode"]),
                    Cell(r["group"]),
                    num(r["tput"]),
                    num(r["acc1"]),
                    Cell(r["weights_note"]),
                    Cell("yes" if r["front"] else "", int(r["front"]), "good" if r["front"] else ""),
                ],
                keys_of(r),
            )
            for _, r in points.iterrows()
        ]
        s.add(
            Table(
                ["model", "mode", "group", "img/s", "stated acc@1 %", "weights entry", "Pareto front"],
                rows,
                numeric=(3, 4),
            )
        )
    measured = acc.measured_accuracy(b.data.snapshot)
    if not measured.empty:
        s.add(Heading("Measured accuracy"))
        s.add(b.plot(acc.measured_vs_stated_figure(b.data.snapshot)))
        rows = [
            Row(
                [
                    Cell(shown_id(r["case_id"], r["resolution"]), r["case_id"], "id"),
                    Cell(r["device"], r["device"], "nowrap"),
                    num(r["measured"]),
                    num(r["stated"]),
                    num(_diff(r["measured"], r["stated"]), signed=True),
                    Cell(r["weights_note"]),
                ],
                keys_of(r),
            )
            for _, r in measured.iterrows()
        ]
        s.add(
            Table(
                ["case", "device", "measured acc@1 %", "stated acc@1 %", "difference (points)", "stated entry"],
                rows,
                numeric=(2, 3, 4),
            )
        )
    return s


def trends(b: Builder) -> Section:
    """Each case's throughput across the runs of one suite and environment, with detected steps."""
    s = Section("trends", "Trends")
    groups = trend.trend_groups(b.data.frame)
    if not groups:
        s.add(
            Note(
                "One run per suite and environment: trends need two or more runs of the same suite on the same"
                " environment.",
                "nodata",
            )
        )
        return s
    threshold = _threshold(b.data)
    s.add(
        Note(
            "One case at a time: choose it above the chart (the chart opens on a case with a detected step, else on"
            " the case that moved most). Hover a point for its run."
        )
    )
    if trend.step_detector() is None:
        s.add(Note("Step detection is not available in this installation; lines show the raw history."))
    else:
        s.add(
            Note(
                f"Red rings: level shifts found by harness.regress.detect_steps (threshold {threshold:.0%}), on the"
                " first run at the new level. A shift needs three runs on each side, so six runs or more;"
                " between fewer runs, Changes against the baseline judges what moved."
            )
        )
    for title, rows in groups:
        fig = trend.trend_figure(rows, title, threshold)
        if fig is not None:
            choices, chosen = trend.chooser(fig)
            s.add(b.plot(fig, choices=choices, chosen=chosen))
    return s


def profile(b: Builder) -> Section:
    """Per profiled case: how to open its trace, its top operators as a chart and a table."""
    s = Section("profile", "Profile")
    snap = b.data.snapshot
    top = column(snap, "profile.top_ops")
    errors = column(snap, "profile.error")
    found = False
    for (_, r), ops, err in zip(snap.iterrows(), top, errors, strict=True):
        if err is not None and err == err:
            s.add(Note(f"{r['case_id']}: profiler failed: {err}", "warn"))
        if not isinstance(ops, list) or not ops:
            continue
        found = True
        group = Group(keys_of(r))
        where = f" on {r['device_key']}" if b.data.many_devices else ""
        group.add(Heading(f"{r['case']}{where}, run {r['run']}" if len(b.data.runs) > 1 else f"{r['case']}{where}"))
        for block in trace_links(r, b.data.base_dir):
            group.add(block)
        group.add(b.plot(eff.profile_figure(ops, str(r["case"]), keys_of(r))))
        rows = [
            Row(
                [
                    Cell(text(op.get("name"))),
                    num(op.get("calls")),
                    num(op.get("self_time_ms")),
                    num(op.get("self_cuda_time_ms")),
                    pct(op.get("share"), 1, signed=False),
                ],
                keys_of(r),
            )
            for op in ops
            if isinstance(op, dict)
        ]
        group.add(Table(["operator", "calls", "self CPU ms", "self device ms", "share"], rows, numeric=(1, 2, 3, 4)))
        s.add(group)
    if not found:
        s.add(
            Note(
                "No profiled cases (a suite names them under profile.cases, or pass --profile GLOB to harness run).",
                "nodata",
            )
        )
    return s


def trace_links(r: Any, base_dir: Path | None) -> list[Any]:
    """Links (relative to the report's folder ``base_dir``, else the current folder) to a profiled case's trace
    files, with how to open them in Perfetto and TensorBoard; a note when the traces are not on disk."""
    run_dir = Path(str(r["run_dir"]))
    trace_dir = Path(text(r.get("profile.trace_dir")) or "profiles")
    if not trace_dir.is_absolute():
        trace_dir = run_dir / trace_dir
    base = (base_dir or Path.cwd()).resolve()

    def rel(path: Path) -> str:
        return Path(os.path.relpath(path.resolve(), base)).as_posix()

    files = sorted(trace_dir.glob("*.pt.trace.json*")) if trace_dir.is_dir() else []
    out: list[Any] = [
        Link(
            "trace" if len(files) == 1 else f"trace {i + 1}",
            rel(f),
            f.name,
            "Perfetto: open ui.perfetto.dev and drag this file in (the browser reads it; nothing is uploaded).",
        )
        for i, f in enumerate(files)
    ]
    if not files:
        out.append(Note(f"The trace files are not beside this report (looked in {rel(trace_dir)}).", "nodata"))
    profiles = trace_dir.parent if trace_dir.parent.name == "profiles" else trace_dir
    out.append(
        Code("TensorBoard", f"tensorboard --logdir {shlex.quote(rel(profiles))}  (run from the report's folder)")
    )
    return out


def _diff(a: Any, b: Any) -> float | None:
    return None if a is None or b is None or b != b else float(a) - float(b)


def _threshold(data: ReportData) -> float:
    for run in reversed(data.runs):
        suite = run.manifest.get("suite")
        reg = suite.get("regression") if isinstance(suite, dict) else None
        if isinstance(reg, dict) and isinstance(reg.get("threshold"), (int, float)):
            return float(reg["threshold"])
    return trend.DEFAULT_THRESHOLD
