"""What the site says about runs: one run's summary (kept in the site's state, so a later build need not read the
run again), a suite and device's open and recovered regressions over its nights, and its latest night's verdict.

Regressions over the nights are the throughput steps ``harness.regress.detect_steps`` finds in each case's series
(one value per night, oldest first): a step down is a regression, *open* until a later step brings the level back
within the threshold (then it is *recovered*, and listed apart). The latest night's verdict is ``harness compare``'s
on the same runs: the night against the last N earlier nights of the suite measured in the same environment (N from
the suite's ``regression.baseline: last-N``, else ``DEFAULT_HISTORY``), so the index and the command agree.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.regress import Thresholds, compare, detect_steps
from harness.regress.baseline import history_size, regression_settings, suite_name
from harness.regress.metrics import number
from harness.store.loader import Run
from harness.store.record import Status

#: Earlier nights a night is compared against when its suite names no ``regression.baseline: last-N``.
DEFAULT_HISTORY = 5
DEFAULT_THRESHOLD = 0.05


def run_device(run: Run) -> str:
    """The device a run measured on: the manifest's device name, else its device type, else the records'."""
    env = run.manifest.get("environment") or {}
    for value in (env.get("device_name"), env.get("device_type"), *(r.get("device") for r in run.records[:1])):
        if value:
            return str(value)
    return "unknown device"


def run_summary(run: Run) -> dict[str, Any]:
    """What the site keeps of a run: suite, device, start, the regression settings of its suite, and per case (the
    first record of rank 0 of each case id) ``[throughput img/s or None, status, noisy]``."""
    cases: dict[str, list[Any]] = {}
    for record in run.records:
        cid = record.get("case_id")
        if not cid or cid in cases or (record.get("rank") or 0) != 0:
            continue
        ok = record.get("status") == Status.OK
        cases[str(cid)] = [
            number(record.get("throughput_img_s")) if ok else None,
            str(record.get("status")),
            bool(record.get("noisy")),
        ]
    settings = regression_settings(run.manifest)
    threshold = number(settings.get("threshold"))
    return {
        "suite": suite_name(run.manifest, run.records) or "unnamed suite",
        "device": run_device(run),
        "started_at": str(run.manifest.get("started_at") or ""),
        "threshold": threshold if threshold and 0 < threshold <= 1 else DEFAULT_THRESHOLD,
        "history": history_size(settings.get("baseline")) or DEFAULT_HISTORY,
        "cases": cases,
        "skipped_lines": len(run.skips),
    }


def night_counts(summary: dict[str, Any]) -> dict[str, int]:
    """Cases of one night: ``cases``, ``ok``, ``failed`` (any other status) and ``noisy`` (marked so)."""
    values = list(summary["cases"].values())
    ok = sum(1 for _, status, _ in values if status == Status.OK)
    return {"cases": len(values), "ok": ok, "failed": len(values) - ok, "noisy": sum(1 for v in values if v[2])}


def case_series(summaries: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Each case's throughput per night (``summaries`` oldest first; None where the night has no ok value)."""
    names = sorted({cid for s in summaries for cid in s["cases"]})
    return {cid: [(s["cases"].get(cid) or [None])[0] for s in summaries] for cid in names}


def case_marks(summaries: list[dict[str, Any]]) -> dict[str, dict[str, list[int]]]:
    """The nights (indices into ``summaries``) on which each case failed (a record of another status than ok) or
    was marked noisy; only the cases that have any."""
    out: dict[str, dict[str, list[int]]] = {}
    for i, summary in enumerate(summaries):
        for cid, (_, status, noisy) in summary["cases"].items():
            if status != Status.OK:
                out.setdefault(cid, {"failed": [], "noisy": []})["failed"].append(i)
            elif noisy:
                out.setdefault(cid, {"failed": [], "noisy": []})["noisy"].append(i)
    return out


def case_steps(series: dict[str, list[float | None]], threshold: float) -> dict[str, list[dict[str, Any]]]:
    """The steps of every case's series that has any: ``index`` (first night at the new level), ``before``,
    ``after``, ``change`` (after / before - 1) and ``recovered_at`` (the night it came back, or None)."""
    out = {}
    for cid, values in series.items():
        found = detect_steps(values, threshold)
        if found:
            out[cid] = [step.to_dict() for step in found]
    return out


def regressions(steps: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every step down, as ``{case, index, before, after, change, recovered_at}``: open ones first, then by size
    (the largest drop first)."""
    out = [{"case": cid, **step} for cid, found in steps.items() for step in found if step["change"] < 0]
    return sorted(out, key=lambda r: (r["recovered_at"] is not None, r["change"], r["case"]))


def latest_verdict(latest: Run, history: list[Run], threshold: float) -> dict[str, Any]:
    """``harness compare``'s verdict on the latest night against ``history`` (earlier nights measured in its
    environment, oldest first): the bucket counts, the regressed and newly failing cases (with the throughput change
    where there is one), how many baseline runs, and whether a run looked busy. Without a history, or when the
    comparison cannot be made, ``note`` says why and the counts are empty."""
    if not history:
        return {"against": 0, "counts": {}, "regressed": [], "busy": False, "note": "no earlier night to compare"}
    try:
        result = compare(history, latest, Thresholds(relative=threshold), steps=False)
    except HarnessError as exc:
        return {"against": len(history), "counts": {}, "regressed": [], "busy": False, "note": f"not compared: {exc}"}
    regressed = []
    for bucket in ("regressed", "newly_failing"):
        for case in result.buckets[bucket]:
            change = case.metric("throughput_img_s")
            regressed.append(
                {
                    "case": str(case.case.get("case_id") or case.key),
                    "bucket": bucket,
                    "change": change.change if change is not None else None,
                }
            )
    return {
        "against": len(history),
        "counts": result.counts(),
        "regressed": regressed,
        "busy": result.run_inconclusive,
        "note": None,
    }
