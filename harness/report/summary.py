"""The sections about the runs themselves: the summary (runs, environment, counts, headline numbers), the
failures (every non-ok case, and cases a run never recorded) and the input that was skipped."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from harness.report import figures as figs
from harness.report.blocks import Cards, Cell, Heading, Note, Row, Section, Table, keys_of, noisy_cell, num, text
from harness.report.builder import Builder
from harness.report.data import MODE_ORDER, PRECISION_ORDER, ReportData, run_label
from harness.store.record import Status


def summary(b: Builder) -> Section:
    """The runs table, the environment fingerprint(s), counts by status and the headline numbers."""
    s = Section("summary", "Summary")
    data = b.data
    rows = []
    for run in data.runs:
        m = run.manifest
        counts = m.get("counts") or {}
        suite = m.get("suite")
        name = suite.get("name") if isinstance(suite, dict) else suite
        rows.append(
            Row(
                [
                    Cell(run_label(run.path)),
                    Cell(text(name)),
                    Cell(text(m.get("started_at")), text(m.get("started_at"))),
                    _duration(m.get("started_at"), m.get("finished_at")),
                    Cell(text(m.get("status"))),
                    num(len(run.records)),
                    Cell(", ".join(f"{k} {v}" for k, v in sorted(counts.items()))),
                    Cell(text(m.get("source") or "harness")),
                ]
            )
        )
    s.add(
        Table(
            ["run", "suite", "started (UTC)", "duration", "status", "records", "counts", "source"],
            rows,
            numeric=(5,),
        )
    )
    snap = data.snapshot
    statuses = snap["status"].value_counts().to_dict() if not snap.empty else {}
    cards = [("cases", str(len(snap)))] + [(str(k), str(v)) for k, v in sorted(statuses.items())]
    s.add(Cards(cards))
    if snap.empty:
        s.add(Note("No records: these runs measured nothing yet.", "nodata"))
    s.add(Heading("Environment"))
    s.add(_environment_table(data))
    s.add(Heading("Headline numbers"))
    if b.ok.empty:
        s.add(Note("No successful cases, so no throughput to report.", "nodata"))
        return s
    best = b.ok.sort_values("tput", ascending=False).drop_duplicates(["model", "mode", "precision"])
    best = figs.case_order(best.assign(batch_size=0, fmt="", variant=""))
    s.add(
        Table(
            ["model", "mode", "precision", "best img/s", "case"],
            [
                Row(
                    [
                        Cell(r["model"]),
                        Cell(r["mode"]),
                        Cell(r["precision"]),
                        noisy_cell(num(r["tput"]), r),
                        Cell(r["case_id"]),
                    ],
                    keys_of(r),
                )
                for _, r in best.iterrows()
            ],
            caption="Best throughput per model (per mode and precision, over batch sizes and memory formats)",
            numeric=(3,),
        )
    )
    geo = []
    for (mode, precision), sub in b.ok.groupby(["mode", "precision"]):
        values = [v for v in sub["tput"] if v > 0]
        if values:
            g = math.exp(sum(math.log(v) for v in values) / len(values))
            geo.append(
                (
                    (MODE_ORDER + (mode,)).index(mode),
                    _prec_rank(precision),
                    mode,
                    precision,
                    len(values),
                    sub["model"].nunique(),
                    g,
                )
            )
    s.add(
        Table(
            ["mode", "precision", "cases", "models", "geometric mean img/s"],
            [
                Row([Cell(m), Cell(p), num(n), num(k), num(g)], {"mode": m, "precision": p})
                for *_, m, p, n, k, g in sorted(geo)
            ],
            caption="Geometric mean throughput per mode and precision (over every successful case)",
            numeric=(2, 3, 4),
        )
    )
    return s


def failures(b: Builder) -> Section:
    """Every case whose latest record is not ok, with its status and message, and cases never recorded."""
    s = Section("failures", "Failures")
    snap = b.data.snapshot
    bad = snap[snap["status"] != Status.OK] if not snap.empty else snap
    rows = (
        [
            Row(
                [
                    Cell(r["case_id"]),
                    Cell(r["status"], r["status"], "bad"),
                    Cell(text(r.get("message"))),
                    Cell(run_label(r["run_dir"])),
                ],
                keys_of(r),
            )
            for _, r in figs.case_order(bad).iterrows()
        ]
        if not bad.empty
        else []
    )
    for run in b.data.runs:
        for case in run.manifest.get("missing") or []:
            rows.append(
                Row(
                    [
                        Cell(text(case)),
                        Cell("missing", "missing", "bad"),
                        Cell("no record: the run stopped before this case finished"),
                        Cell(run_label(run.path)),
                    ],
                    _keys_from_id(case),
                )
            )
    if not rows:
        s.add(Note("No failures: every case has status ok.", "nodata"))
        return s
    s.add(Table(["case", "status", "message", "run"], rows))
    return s


def skipped(b: Builder) -> Section:
    """What the loader skipped (truncated lines, records of a newer schema, folders that are not runs)."""
    s = Section("skipped", "Skipped input")
    if not b.data.skipped:
        s.add(Note("Nothing was skipped: every line of every records file was read.", "nodata"))
        return s
    s.add(Table(["what was skipped and why"], [Row([Cell(n)]) for n in b.data.skipped]))
    return s


def _prec_rank(precision: str) -> int:
    return PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER)


def _keys_from_id(case_id: Any) -> dict[str, str]:
    parts = str(case_id).split("/")
    return {"model": parts[0], "mode": parts[1], "precision": parts[3]} if len(parts) >= 4 else {}


def _duration(start: Any, end: Any) -> Cell:
    try:
        a = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return Cell("", None)
    seconds = (b - a).total_seconds()
    h, rem = divmod(int(seconds), 3600)
    return Cell(f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}", seconds)


def _environment_table(data: ReportData) -> Table | Note:
    prints: list[dict[str, Any]] = []
    for run in data.runs:
        env = run.manifest.get("environment") or {}
        if env and env not in prints:
            prints.append(env)
    if not prints:
        return Note("The runs carry no environment fingerprint.", "nodata")
    fields = list(dict.fromkeys(k for env in prints for k in env))
    columns = ["field"] + ([f"environment {i + 1}" for i in range(len(prints))] if len(prints) > 1 else ["value"])
    rows = []
    for key in fields:
        values = [env.get(key) for env in prints]
        cells = [Cell(text(v) if not isinstance(v, (dict, list)) else json.dumps(v, default=str)) for v in values]
        rows.append(Row([Cell(key), *cells]))
    return Table(columns, rows)
