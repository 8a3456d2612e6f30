"""Changes against the baseline, and what differs between the runs of one report.

The verdicts are ``harness compare``'s own: ``comparisons`` calls ``harness.regress.compare`` with the thresholds
the command uses by default (the suite's ``regression.threshold``, else 5%; p 0.001), so the page and the command
agree case by case. The baseline of each suite and environment is its oldest run in the report and the candidate
its newest, unless the report names a baseline run (``harness report --baseline RUN``).

``run_flags`` lists what differs between runs beside the numbers: environment fields, measured machine peaks
(the same commit measured 3x apart), and runs whose start and end probes disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.regress.metrics import number
from harness.report.anchors import case_anchor
from harness.report.blocks import Cards, Cell, Heading, Note, Row, Section, Table, num, pct, text
from harness.report.builder import Builder
from harness.report.data import ReportData, run_label, shown_id
from harness.store.loader import Run

#: Buckets in the order the changes table lists them (worst first), with the CSS class of their verdict cell.
BUCKET_ORDER = (
    ("regressed", "bad"),
    ("newly_failing", "bad"),
    ("inconclusive", "warn"),
    ("improved", "good"),
    ("fixed", "good"),
    ("still_failing", "bad"),
    ("missing", "warn"),
    ("new", ""),
    ("unchanged", ""),
)
#: Peaks of two runs of one commit further apart than this ratio are flagged.
PEAK_RATIO = 1.5
#: Start and end probes of one run further apart than this fraction are flagged.
PROBE_SPREAD = 0.10


@dataclass
class Changes:
    """One comparison of the report: the baseline and candidate runs and ``harness compare``'s result."""

    baseline: Run
    candidate: Run
    result: Any  # harness.regress.Comparison
    notes: list[str] = field(default_factory=list)

    def row_id(self, key: str, index: int) -> str:
        """The anchor of a case's row in the changes table (unique on the page)."""
        return ("change-" if index == 0 else f"change{index + 1}-") + case_anchor(key).removeprefix("case-")


def _suite(run: Run) -> str:
    from harness.regress.baseline import suite_name

    return str(suite_name(run.manifest, run.records) or "?")


def _same_env(a: Run, b: Run) -> bool:
    from harness.store.fingerprint import differences

    return not differences(a.manifest.get("environment") or {}, b.manifest.get("environment") or {})


def groups(runs: list[Run]) -> list[list[Run]]:
    """The runs by suite and comparable environment (``harness.store.fingerprint``), each group oldest first."""
    out: list[list[Run]] = []
    for run in runs:
        for group in out:
            if _suite(group[0]) == _suite(run) and _same_env(group[0], run):
                group.append(run)
                break
        else:
            out.append([run])
    return out


def _thresholds(candidate: Run):
    from harness.regress import Thresholds
    from harness.regress.baseline import regression_settings

    threshold = regression_settings(candidate.manifest).get("threshold", 0.05)
    return Thresholds(relative=float(threshold), p=0.001)


def _pairs(data: ReportData) -> tuple[list[tuple[Run, Run]], list[str]]:
    """(baseline, candidate) pairs to compare and notes on what could not be compared."""
    runs = data.runs
    if data.baseline is not None:
        want = data.baseline.resolve()
        chosen = [r for r in runs if r.path.resolve() == want]
        if not chosen:
            return [], [f"the baseline {data.baseline} is not among the runs of this report"]
        base = chosen[0]
        others = [r for r in runs if r is not base and _suite(r) == _suite(base)]
        if not others:
            return [], [f"no other run of suite {_suite(base)!r} to compare with the baseline {run_label(base.path)}"]
        return [(base, others[-1])], []
    pairs, notes = [], []
    for group in groups(runs):
        if len(group) >= 2:
            pairs.append((group[0], group[-1]))
    if not pairs and len(runs) > 1:
        notes.append(
            "No two runs of one suite on one environment, so no changes to judge: harness compare compares like with"
            " like (name a baseline with harness report --baseline RUN to compare across environments)."
        )
    return pairs, notes


def comparisons(data: ReportData) -> tuple[list[Changes], list[str]]:
    """``harness compare``'s verdicts for each baseline and candidate of the report, and notes on what could not
    be compared (kept on the page, never raised: a report shows what it can)."""
    from harness.errors import HarnessError
    from harness.regress import compare
    from harness.regress.baseline import check_compatible

    pairs, notes = _pairs(data)
    out = []
    for base, cand in pairs:
        try:
            extra = check_compatible([base], cand, allow_mismatch=True)
            result = compare([base], cand, _thresholds(cand))
        except (HarnessError, ValueError, TypeError, KeyError) as exc:
            # Records harness compare cannot judge cost the page its changes section, not the whole report.
            notes.append(f"{run_label(cand.path)} against {run_label(base.path)}: not compared: {exc}")
            continue
        out.append(Changes(base, cand, result, extra))
    return out, notes


def _metric_cells(case: Any, name: str) -> list[Cell]:
    m = case.metric(name)
    if m is None:
        return [Cell(""), Cell(""), Cell("")]
    change = pct(m.change, 1)
    if m.verdict in ("regressed", "improved"):
        change.cls = "bad" if m.verdict == "regressed" else "good"
    return [num(m.baseline), num(m.candidate), change]


def _detail(case: Any) -> str:
    parts = list(case.noise)
    parts += [f"{m.metric}: {m.note}" for m in case.metrics if m.note and m.verdict == "inconclusive"]
    parts += [f"{m.metric} {m.verdict}" for m in case.metrics if m.verdict in ("regressed", "improved")]
    if case.message and case.bucket in ("newly_failing", "still_failing"):
        parts.append(str(case.message))
    return "; ".join(dict.fromkeys(parts))


def changes_section(b: Builder, found: list[Changes], notes: list[str]) -> Section:
    """One table per comparison, one row per case: its verdict, throughput and median step time on both sides."""
    s = Section("changes", "Changes against the baseline")
    for note in notes:
        s.add(Note(note, "nodata"))
    if not found:
        if not notes:
            s.add(
                Note(
                    "One run: no baseline to compare against. Report two or more runs of one suite (the oldest is the"
                    " baseline), or name one with harness report --baseline RUN.",
                    "nodata",
                )
            )
        return s
    frame = b.data.frame
    device_of = dict(zip(map(str, frame["run_dir"]), frame["device_key"], strict=True)) if len(frame) else {}
    for index, ch in enumerate(found):
        r = ch.result
        s.add(Heading(f"{_suite(ch.candidate)}: {run_label(ch.candidate.path)} against {run_label(ch.baseline.path)}"))
        s.add(
            Note(
                "Verdicts of harness compare (the same rule and thresholds: relative threshold"
                f" {r.thresholds.relative:.0%}, U test at p {r.thresholds.p:g}); the command prints the same on these"
                f" two runs: harness compare {ch.baseline.path} {ch.candidate.path}"
            )
        )
        s.add(Cards([(bucket.replace("_", " "), str(n)) for bucket, n in r.counts().items() if n]))
        for note in [*ch.notes, *r.notes]:
            s.add(Note(note, "warn" if "busy" in note or "mismatch" in note else "info"))
        device = device_of.get(str(ch.candidate.path), "")
        rows = []
        for bucket, cls in BUCKET_ORDER:
            for case in sorted(r.buckets[bucket], key=lambda c: c.key):
                fields = case.case
                keys = {k: text(fields.get(k)) for k in ("model", "mode", "precision")}
                rows.append(
                    Row(
                        [
                            Cell(
                                shown_id(case.key, fields.get("resolution")),
                                case.key,
                                "id",
                                f"#{case_anchor(case.key)}",
                            ),
                            Cell(device, device, "nowrap"),
                            Cell(bucket.replace("_", " "), bucket, cls),
                            *_metric_cells(case, "throughput_img_s"),
                            *_metric_cells(case, "step_ms_median"),
                            Cell(_detail(case), _detail(case), "prose"),
                        ],
                        keys,
                        id=ch.row_id(case.key, index),
                    )
                )
        s.add(
            Table(
                [
                    "case",
                    "device",
                    "verdict",
                    "baseline img/s",
                    "candidate img/s",
                    "img/s change",
                    "baseline median ms",
                    "candidate median ms",
                    "step change",
                    "why",
                ],
                rows,
                caption=f"Candidate {run_label(ch.candidate.path)}, baseline {run_label(ch.baseline.path)}",
                numeric=(3, 4, 5, 6, 7, 8),
            )
        )
    return s


def _peaks(run: Run) -> dict[str, float]:
    peak = run.manifest.get("peak")
    flops = peak.get("matmul_tflops") if isinstance(peak, dict) else None
    if not isinstance(flops, dict):
        return {}
    return {str(k): v for k, v in ((k, number(v)) for k, v in flops.items()) if v}


def run_flags(runs: list[Run]) -> list[str]:
    """What differs between the runs beside their numbers, one line each: consecutive runs of one suite measured
    in different environments, runs of one commit whose measured peaks are ``PEAK_RATIO`` or more apart, and runs
    whose start and end probes differ by more than ``PROBE_SPREAD``."""
    from harness.store.fingerprint import differences

    out = []
    by_suite: dict[str, list[Run]] = {}
    for run in runs:
        by_suite.setdefault(_suite(run), []).append(run)
    for suite, members in by_suite.items():
        for a, b in zip(members, members[1:], strict=False):
            env_a, env_b = a.manifest.get("environment") or {}, b.manifest.get("environment") or {}
            diff = differences(env_a, env_b)
            if diff:
                what = "; ".join(f"{k} {text(x) or '?'} vs {text(y) or '?'}" for k, (x, y) in diff.items())
                out.append(f"{suite}: {run_label(a.path)} and {run_label(b.path)} differ in environment: {what}")
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            rev_a = (a.manifest.get("environment") or {}).get("git_revision")
            rev_b = (b.manifest.get("environment") or {}).get("git_revision")
            if not rev_a or rev_a != rev_b:
                continue
            pa, pb = _peaks(a), _peaks(b)
            ratios = {k: max(pa[k], pb[k]) / min(pa[k], pb[k]) for k in pa.keys() & pb.keys()}
            worst = max(ratios, key=ratios.get, default=None)
            if worst is not None and ratios[worst] >= PEAK_RATIO:
                out.append(
                    f"{run_label(a.path)} and {run_label(b.path)} are the same commit ({rev_a}) but their measured"
                    f" {worst} matmul peaks are {ratios[worst]:.1f}× apart ({pa[worst]:.4g} vs {pb[worst]:.4g}"
                    " TFLOP/s): a busy or different machine; their numbers do not compare"
                )
    for run in runs:
        health = run.manifest.get("health")
        spread = health.get("spread") if isinstance(health, dict) else None
        moved = {k: v for k, v in (spread or {}).items() if isinstance(v, (int, float)) and v > PROBE_SPREAD}
        if moved:
            worst = max(moved, key=moved.get)
            out.append(
                f"{run_label(run.path)}: its start and end probes differ by {moved[worst]:.0%} ({worst}): the"
                " machine changed during the run"
            )
    return out
