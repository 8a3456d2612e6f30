"""The sections about the runs themselves: the verdict panel (failures, regressions, noise, fastest cases; then
runs, environment, counts and headline numbers), the failures (every non-ok case, and cases a run never recorded)
and the input that was skipped."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from harness.report import changes as changes_mod
from harness.report import figures as figs
from harness.report.anchors import case_anchor
from harness.report.blocks import (
    NOISY_MARK,
    Cards,
    Cell,
    Details,
    Heading,
    Note,
    Row,
    Section,
    Table,
    Verdict,
    keys_of,
    noisy_cell,
    num,
    text,
)
from harness.report.builder import Builder
from harness.report.data import MODE_ORDER, PRECISION_ORDER, ReportData, run_label, shown_id
from harness.store.record import Status


def summary(b: Builder) -> Section:
    """The verdict panel (failures, regressions, noisy cases, fastest cases: each a link to its detail), the
    counts, the runs, the environment (collapsed) and the headline numbers."""
    s = Section("summary", "Verdict")
    data = b.data
    snap = data.snapshot
    statuses = snap["status"].value_counts().to_dict() if not snap.empty else {}
    cards = [
        ("runs", str(len(data.runs))),
        ("records", str(len(data.frame))),
        ("cases", str(snap["case_id"].nunique() if not snap.empty else 0)),
    ]
    if data.many_devices:
        cards.append(("devices", str(len(data.devices))))
    cards += [(str(k), str(v)) for k, v in sorted(statuses.items())]
    s.add(Cards(cards))
    if len(data.runs) > 1 or data.many_devices:
        s.add(
            Note(
                f"{len(data.frame)} records of {len(data.runs)} runs. The per-case tables show the latest record of"
                " each case on each device; their run and device columns say which. Cases and statuses above count"
                " those latest records."
            )
        )
    if snap.empty:
        s.add(Note("No records: these runs measured nothing yet.", "nodata"))
    for item in verdicts(b):
        s.add(item)
    s.add(Heading("Runs"))
    s.add(_runs_table(b))
    s.add(Details("Environment (fields no run recorded are left out)", [_environment_table(data)]))
    s.add(Heading("Headline numbers"))
    if b.ok.empty:
        s.add(Note("No successful cases, so no throughput to report.", "nodata"))
        return s
    keys = ["model", "mode", "precision", "device_key"]
    best = b.ok.sort_values("tput", ascending=False).drop_duplicates(keys)
    best = figs.case_order(best.assign(batch_size=0, fmt="", variant=""))
    s.add(
        Table(
            ["model", "mode", "precision", "device", "best img/s", "case"],
            [
                Row(
                    [
                        Cell(r["model"]),
                        Cell(r["mode"]),
                        Cell(r["precision"]),
                        Cell(r["device_key"], r["device_key"], "nowrap"),
                        noisy_cell(num(r["tput"]), r),
                        Cell(r["case"], r["case"], "id", f"#{case_anchor(r['case_id'])}"),
                    ],
                    keys_of(r),
                    colour=b.row_colour(r),
                )
                for _, r in best.iterrows()
            ],
            caption="Best throughput per model and device (per mode and precision, over batch sizes and memory"
            " formats)",
            numeric=(4,),
        )
    )
    geo = []
    for (mode, precision, device), sub in b.ok.groupby(["mode", "precision", "device_key"]):
        values = [v for v in sub["tput"] if v > 0]
        if values:
            g = math.exp(sum(math.log(v) for v in values) / len(values))
            rank = ((MODE_ORDER + (mode,)).index(mode), _prec_rank(precision), device)
            geo.append((rank, mode, precision, device, len(values), sub["model"].nunique(), g))
    s.add(
        Table(
            ["mode", "precision", "device", "cases", "models", "geometric mean img/s"],
            [
                Row(
                    [Cell(m), Cell(p), Cell(d, d, "nowrap"), num(n), num(k), num(g)],
                    {"mode": m, "precision": p},
                    colour=b.colours.get(d, ""),
                )
                for _, m, p, d, n, k, g in sorted(geo)
            ],
            caption="Geometric mean throughput per mode, precision and device (over every successful case)",
            numeric=(3, 4, 5),
        )
    )
    return s


def failure_rows(b: Builder) -> list[tuple[Any, str]]:
    """(snapshot row, anchor) of each case whose latest record is not ok: the case's own anchor
    (``case_anchor``) when the throughput table has no row of it, else ``fail-`` and the anchor."""
    snap = b.data.snapshot
    bad = snap[snap["status"] != Status.OK] if not snap.empty else snap
    if bad.empty:
        return []
    ok_ids = set(b.ok["case_id"]) if not b.ok.empty else set()
    used: set[str] = set()
    out = []
    for _, r in figs.case_order(bad).iterrows():
        anchor = case_anchor(r["case_id"])
        if r["case_id"] in ok_ids or anchor in used:
            anchor = "fail-" + anchor.removeprefix("case-")
            while anchor in used:
                anchor += "_"
        used.add(anchor)
        out.append((r, anchor))
    return out


def verdicts(b: Builder) -> list[Verdict]:
    """The verdict panel: failures, regressions against the baseline, noisy or contended cases and runs, and the
    fastest case per mode and precision (and device), each item a link to its row further down."""
    out = []
    data = b.data
    failed = [
        (r["case"], f"#{anchor}", f"{r['status']}{' on ' + r['device_key'] if data.many_devices else ''}")
        for r, anchor in failure_rows(b)
    ]
    failed += [
        (text(c), "#failures", "missing: the run stopped before it")
        for run in data.runs
        for c in run.manifest.get("missing") or []
    ]
    if failed:
        out.append(Verdict(f"{len(failed)} failed case(s)", "bad", failed))
    else:
        out.append(Verdict("No failures: every case's latest record is ok", "good"))
    if not b.changes:
        why = b.change_notes[0] if b.change_notes else "a single run has no baseline to compare against"
        out.append(Verdict("Regressions: not judged", "info", [(why, "", "")]))
    for index, ch in enumerate(b.changes):
        r = ch.result
        where = f"{run_label(ch.candidate.path)} against {run_label(ch.baseline.path)}"
        worse = [
            (shown_id(c.key, c.case.get("resolution")), f"#{ch.row_id(c.key, index)}", _change_text(c))
            for bucket in ("regressed", "newly_failing")
            for c in r.buckets[bucket]
        ]
        if worse:
            out.append(Verdict(f"{len(worse)} regression(s) against the baseline: {where}", "bad", worse))
        else:
            out.append(Verdict(f"No regressions against the baseline: {where}", "good"))
        unsure = [
            (
                shown_id(c.key, c.case.get("resolution")),
                f"#{ch.row_id(c.key, index)}",
                "; ".join(c.noise) or "inconclusive",
            )
            for c in r.inconclusive
        ]
        if unsure:
            out.append(Verdict(f"{len(unsure)} inconclusive case(s): {where}", "warn", unsure))
        if r.busy:
            out.append(
                Verdict(
                    f"The comparison is inconclusive at run level: {where}",
                    "warn",
                    [(f"{busy.run}: {busy.reason}", "", busy.hint) for busy in r.busy],
                )
            )
    ok = b.ok
    noisy = ok[ok["noisy"].astype(bool)] if not ok.empty else ok
    if not noisy.empty:
        items = [
            (r["case"], f"#{case_anchor(r['case_id'])}", r["noise_text"]) for _, r in figs.case_order(noisy).iterrows()
        ]
        out.append(Verdict(f"{len(items)} case(s) measured under noise (contention or stalled steps)", "warn", items))
    flags = changes_mod.run_flags(data.runs)
    if flags:
        out.append(
            Verdict(
                f"{len(flags)} difference(s) between runs beside their numbers", "warn", [(f, "", "") for f in flags]
            )
        )
    if not ok.empty:
        keys = ["mode", "precision", "device_key"]
        best = ok.sort_values("tput", ascending=False).drop_duplicates(keys)
        best = best.assign(
            _m=[(MODE_ORDER + (m,)).index(m) for m in best["mode"]], _p=[_prec_rank(p) for p in best["precision"]]
        ).sort_values(["_m", "_p", "device_key"])
        items = [
            (
                r["case"],
                f"#{case_anchor(r['case_id'])}",
                f"{r['mode']} {r['precision']}{' on ' + r['device_key'] if data.many_devices else ''}:"
                f" {num(r['tput']).text} img/s{' ' + NOISY_MARK if r['noisy'] else ''}",
            )
            for _, r in best.iterrows()
        ]
        out.append(
            Verdict("Fastest case per mode and precision" + (" and device" if data.many_devices else ""), "info", items)
        )
    return out


def _change_text(case: Any) -> str:
    if case.bucket == "newly_failing":
        return f"newly failing: {case.candidate_status}"
    m = case.metric("throughput_img_s")
    if m is not None:
        return f"throughput {m.change:+.1%} ({num(m.baseline).text} → {num(m.candidate).text} img/s)"
    changed = case.changed()
    return ", ".join(f"{c.metric} {c.change:+.1%}" for c in changed) or case.bucket


def _runs_table(b: Builder) -> Table:
    rows = []
    for run in b.data.runs:
        m = run.manifest
        counts = m.get("counts") or {}
        suite = m.get("suite")
        name = suite.get("name") if isinstance(suite, dict) else suite
        env = m.get("environment") or {}
        device = text(env.get("device_name")) or text(env.get("device_type"))
        when, sort = run_date(m)
        source = text(m.get("source") or "harness")
        if m.get("source_file"):
            source += f" ({m['source_file']})"
        rows.append(
            Row(
                [
                    Cell(run_label(run.path), run_label(run.path), "id"),
                    Cell(text(name), text(name), "nowrap"),
                    Cell(device, device),  # wraps between words where the page is narrow
                    Cell(when, sort, "stamp"),
                    _duration(m.get("started_at"), m.get("finished_at")),
                    Cell(text(m.get("status"))),
                    num(len(run.records)),
                    Cell(", ".join(f"{k} {v}" for k, v in sorted(counts.items()))),
                    Cell(source, source, "prose"),
                ],
                colour=b.colours.get(device, ""),
            )
        )
    columns = ["run", "suite", "device", "date (UTC)", "duration", "status", "records", "counts", "source"]
    duration = columns.index("duration")
    if all(not row.cells[duration].text for row in rows):  # imported runs have none: no empty column to widen it
        del columns[duration]
        for row in rows:
            del row.cells[duration]
    return Table(columns, rows, numeric=(columns.index("records"),))


def run_date(manifest: dict[str, Any]) -> tuple[str, str]:
    """(what the page shows as a run's date, its sort key): the start time of a measured run; the import time,
    said as such, of an imported run that records no start."""
    started = text(manifest.get("started_at"))
    if started:
        return started, started
    imported = text(manifest.get("imported_at"))
    if imported:
        return f"{imported} (imported)", imported
    return "", ""


def failures(b: Builder) -> Section:
    """Every case whose latest record is not ok, with its status and message, and cases never recorded."""
    s = Section("failures", "Failures")
    rows = [
        Row(
            [
                Cell(r["case"], r["case"], "id"),
                Cell(r["device_key"], r["device_key"], "nowrap"),
                Cell(r["status"], r["status"], "bad"),
                Cell(text(r.get("message")), text(r.get("message")), "prose"),
                Cell(run_label(r["run_dir"]), run_label(r["run_dir"]), "id"),
            ],
            keys_of(r),
            id=anchor,
            colour=b.row_colour(r),
        )
        for r, anchor in failure_rows(b)
    ]
    for run in b.data.runs:
        for case in run.manifest.get("missing") or []:
            rows.append(
                Row(
                    [
                        Cell(text(case), text(case), "id"),
                        Cell(text((run.manifest.get("environment") or {}).get("device_name"))),
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
    s.add(Table(["case", "device", "status", "message", "run"], rows))
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
        if all(v is None or v == "" or v == [] or v == {} for v in values):
            continue
        cells = [Cell(text(v) if not isinstance(v, (dict, list)) else json.dumps(v, default=str)) for v in values]
        rows.append(Row([Cell(key), *cells]))
    return Table(columns, rows)
