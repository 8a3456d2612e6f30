"""``compare(baseline, candidate, thresholds) -> Comparison``: which cases got slower, faster, or broke, and which
cannot be told.

A metric's change counts only when it passes both the relative threshold (default 5%; the same both ways: one side
more than 1.05x the other, so throughput and step time, each the other's reciprocal, always agree) and a
statistical test on the raw per-step samples: Mann-Whitney U at a strict p (default 0.001) when both sides have at
least 8 samples, else non-overlapping 95% bootstrap intervals. The p is strict because a nightly comparison runs
hundreds of tests (cases x metrics); at p < 0.05 one unchanged case in twenty would look changed every night.
Metrics without samples (memory, energy, and every metric of an imported run that published one number per case)
are judged on the threshold alone, and the result says so.

With a history (several baseline runs), the baseline value is the median of the per-run values, the baseline
samples are pooled across runs for the test, and when at least three runs hold a value the change must also lie
outside ``history_k`` times their run-to-run noise (1.4826 x MAD of the per-run values): a case that is known to
move by 8% between nights is not flagged for moving by 6%. The change must also pass the threshold against every
baseline run, not just their median (``history_edge``): a case that read 28% fast on one night with nothing changed
is not called improved for reading 30% fast tonight. The latest runs are passed over when they already show the
candidate's change (a lasting change keeps being flagged), and with ten runs or more so is the most extreme tenth
on each side.

A third verdict, **inconclusive**, is for numbers that cannot carry one. It concerns the timed metrics (throughput,
step time, energy); memory is judged as usual, so a memory regression still counts.

- When the 95% interval of either side's throughput (``throughput_ci95``) is wider, relative to its throughput,
  than ``Thresholds.interval`` (default twice the throughput threshold: 10%), the case is inconclusive.
- When either side's record is marked noisy (``noisy: true``; ``noise`` says why), its verdict is held against
  what the noise can explain (``contention_slack``). Other processes and steal that took a share ``s`` of the
  cores the case ran on can make its steps at most ``1 / (1 - s)`` times slower (the case got at least ``1 - s`` of
  the CPU time it would have had; shares from the record's ``contention`` group, capped at 95%); contention on a
  GPU (another process on it, a thermal or power-brake clock event) and a noisy mark without numbers cannot be
  bounded. Contention only ever slows a side down, so a regression stands when the candidate, given the most
  speed its contention could have cost it, is still worse beyond the threshold; an improvement stands when the
  baseline, given the same, is still beaten. Otherwise (and for an "unchanged" reading, which contention can hide
  either way) the case is inconclusive, unless the slack is below half the threshold (stalled steps alone: the
  median step does not move with them). The result says which side was busy and by how much.

With a history, noisy baseline runs are left out of the timed metrics while a quiet one is left. At run level
(``harness.regress.health``) the comparison is inconclusive when the two runs' machine probes differ beyond their
own spread; that names the run that looks busy and leaves the per-case verdicts as they are.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.regress.health import BusyRun, busy_runs
from harness.regress.inputs import Side, as_side, case_fields
from harness.regress.metrics import METRIC_NAMES, METRICS, Metric, joined_samples, number
from harness.regress.metrics import field as record_field
from harness.regress.stats import beyond, bootstrap_interval, intervals_overlap, mad_sd, mann_whitney_u
from harness.regress.steps import detect_steps
from harness.store.record import Status

BUCKETS = (
    "regressed",
    "newly_failing",
    "improved",
    "inconclusive",
    "fixed",
    "still_failing",
    "missing",
    "new",
    "unchanged",
)
#: What ``--fail-on`` may be: fail on regressions (and new failures), also on anything inconclusive, or never.
FAIL_ON = ("regression", "inconclusive", "never")


@dataclass(frozen=True)
class Thresholds:
    """What counts as a change: ``relative`` (0.05 = 5%, per metric overridable in ``per_metric``), the test's
    ``p``, ``min_samples`` per side for Mann-Whitney (fewer: bootstrap intervals), ``history_k``, and
    ``interval``: the widest relative 95% interval ((hi - lo) / throughput) a side's throughput may have for its
    timed metrics to be judged (None: twice the throughput threshold)."""

    relative: float = 0.05
    p: float = 0.001
    per_metric: Mapping[str, float] = field(default_factory=dict)
    min_samples: int = 8
    history_k: float = 3.0
    interval: float | None = None

    def __post_init__(self) -> None:
        for name, value in {"threshold": self.relative, **self.per_metric}.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise HarnessError(f"{name} {value!r} is not a relative change; give a fraction such as 0.05 (5%)")
        if self.interval is not None and (
            isinstance(self.interval, bool) or not isinstance(self.interval, (int, float)) or not self.interval > 0
        ):
            raise HarnessError(f"interval {self.interval!r} is not a relative width; give a fraction such as 0.10")
        unknown = [m for m in self.per_metric if m not in METRIC_NAMES]
        if unknown:
            raise HarnessError(f"unknown metric {unknown[0]!r} in a threshold; metrics: {', '.join(METRIC_NAMES)}")
        if not 0 < self.p < 1:
            raise HarnessError(f"p {self.p!r} must lie between 0 and 1 (default 0.001)")

    def for_metric(self, name: str) -> float:
        return float(self.per_metric.get(name, self.relative))

    def max_interval(self) -> float:
        """The widest relative throughput interval that still allows a verdict on the timed metrics."""
        return float(self.interval) if self.interval is not None else 2.0 * self.for_metric("throughput_img_s")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_metric": dict(self.per_metric), "interval": self.max_interval()}


@dataclass
class MetricChange:
    """One metric of one case: values (the metric's unit), relative change (candidate / baseline - 1), the
    verdict (``regressed``, ``improved``, ``unchanged``, or ``inconclusive`` for a timed metric of a noisy case,
    whose ``note`` then says what the numbers alone would read as), and what decided it: ``test`` is
    ``mann-whitney`` (with ``p``), ``bootstrap-intervals`` (with both intervals) or ``threshold-only`` (with
    ``note`` saying why there was no test)."""

    metric: str
    unit: str
    higher_is_better: bool
    baseline: float
    candidate: float
    change: float
    threshold: float
    verdict: str
    test: str
    p: float | None = None
    baseline_interval: tuple[float, float] | None = None
    candidate_interval: tuple[float, float] | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    baseline_runs: int = 1
    note: str | None = None


@dataclass
class CaseResult:
    """One case (one rank of a DDP case): its bucket, both statuses, its metric changes, and ``noise``: why its
    timed metrics are inconclusive (``baseline: ...`` or ``candidate: ...``, one line per reason; empty when they
    are not)."""

    key: str
    bucket: str
    case: dict[str, Any]
    baseline_status: str | None
    candidate_status: str | None
    message: str | None = None
    metrics: list[MetricChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (built by hand: ``dataclasses.asdict`` deep-copies, 10x slower on 5,000 cases);
        ``noise`` only when there is some."""
        out = {
            **{k: v for k, v in vars(self).items() if k not in ("metrics", "notes", "noise")},
            "case": dict(self.case),
            "metrics": [dict(vars(m)) for m in self.metrics],
            "notes": list(self.notes),
        }
        if self.noise:
            out["noise"] = list(self.noise)
        return out

    def changed(self) -> list[MetricChange]:
        """The metrics that regressed or improved."""
        return [m for m in self.metrics if m.verdict in ("regressed", "improved")]

    def metric(self, name: str) -> MetricChange | None:
        """The change of metric ``name``, or None when it was not compared."""
        return next((m for m in self.metrics if m.metric == name), None)


@dataclass
class Comparison:
    """The result: one list of cases per bucket, the thresholds used, notes, (with a history) steps, and
    ``busy``: the runs that look busy next to another (run-level inconclusive; empty when the probes agree)."""

    thresholds: Thresholds
    baseline_runs: list[str]
    candidate_run: str
    buckets: dict[str, list[CaseResult]]
    notes: list[str] = field(default_factory=list)
    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    busy: list[BusyRun] = field(default_factory=list)

    def __getattr__(self, name: str) -> list[CaseResult]:
        if name in BUCKETS:
            return self.buckets[name]
        raise AttributeError(name)

    @property
    def compared_nothing(self) -> bool:
        """Whether no case is on both sides (every baseline case missing, every candidate case new)."""
        return not any(self.buckets[b] for b in BUCKETS if b not in ("missing", "new"))

    @property
    def failed(self) -> bool:
        """What ``--fail-on regression`` exits 1 on: a case regressed or newly failed, or no case could be compared
        at all (a nightly check that compared nothing must not pass as "no regression")."""
        return bool(self.buckets["regressed"] or self.buckets["newly_failing"] or self.compared_nothing)

    @property
    def run_inconclusive(self) -> bool:
        """Whether the two runs' machine probes differ beyond their spread (a run looks busy)."""
        return bool(self.busy)

    @property
    def inconclusive_anywhere(self) -> bool:
        """Whether a case is inconclusive or the comparison is at run level."""
        return bool(self.buckets["inconclusive"]) or self.run_inconclusive

    def fails(self, fail_on: str) -> bool:
        """Whether ``--fail-on fail_on`` exits 1: ``regression`` on ``failed``; ``inconclusive`` also on anything
        inconclusive (a case, or the run level); ``never`` never."""
        if fail_on not in FAIL_ON:
            raise HarnessError(f"--fail-on {fail_on!r}: choose one of {', '.join(FAIL_ON)}")
        if fail_on == "never":
            return False
        return self.failed or (fail_on == "inconclusive" and self.inconclusive_anywhere)

    def counts(self) -> dict[str, int]:
        return {b: len(self.buckets[b]) for b in BUCKETS}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the content of ``regressions.json``); ``run_inconclusive`` (the busy runs) only when
        the comparison is inconclusive at run level."""
        out = {
            "baseline_runs": self.baseline_runs,
            "candidate_run": self.candidate_run,
            "thresholds": self.thresholds.to_dict(),
            "failed": self.failed,
            "compared_nothing": self.compared_nothing,
            "counts": self.counts(),
            "notes": self.notes,
            "buckets": {b: [c.to_dict() for c in self.buckets[b]] for b in BUCKETS},
            "steps": self.steps,
        }
        if self.busy:
            out["run_inconclusive"] = [b.to_dict() for b in self.busy]
        return out


def _test(metric: Metric, base: list[dict], cand: dict, th: Thresholds) -> tuple[bool, dict[str, Any]]:
    """Whether the samples differ significantly, and what the test was (name, p or intervals, sizes, note)."""
    if metric.samples is None:
        return True, {"test": "threshold-only", "note": "no per-step samples for this metric: threshold only"}
    a, b = joined_samples(metric, base), joined_samples(metric, [cand])
    if a is None or b is None:
        side = "on either side" if a is None and b is None else "in the baseline" if a is None else "in the candidate"
        return True, {"test": "threshold-only", "note": f"no samples {side}: threshold only"}
    sizes = {"n_baseline": int(a.size), "n_candidate": int(b.size)}
    if min(a.size, b.size) >= th.min_samples:
        p = mann_whitney_u(a, b).p
        return p < th.p, {"test": "mann-whitney", "p": p, **sizes}
    if min(a.size, b.size) >= 2:
        ia, ib = bootstrap_interval(a, metric.statistic), bootstrap_interval(b, metric.statistic)
        info = {"test": "bootstrap-intervals", "baseline_interval": ia, "candidate_interval": ib, **sizes}
        return not intervals_overlap(ia, ib), info
    return True, {"test": "threshold-only", "note": "a single sample: threshold only", **sizes}


def compare_metric(metric: Metric, base: list[dict], cand: dict, th: Thresholds) -> MetricChange | str | None:
    """One metric of one case: a MetricChange, a note (str) when it cannot be compared, or None when absent."""
    values = [v for v in (metric.value(r) for r in base) if v is not None]
    value = metric.value(cand)
    if not values and value is None:
        return None
    if not values or value is None:
        side = "candidate" if values else "baseline"
        missing = [cand] if values else base
        if metric.name == "step_ms_median" and any(number(r.get("step_ms_mean")) is not None for r in missing):
            return f"{metric.name}: the {side} has only a mean step time (published figures); not compared"
        return f"{metric.name}: no value in the {side}; not compared"
    reference = float(statistics.median(values))
    if reference <= 0:
        return f"{metric.name}: baseline value is {reference:g}; no relative change can be taken"
    change = value / reference - 1.0
    threshold = th.for_metric(metric.name)
    significant, info = _test(metric, base, cand, th)
    if significant and len(values) >= 3:
        band = th.history_k * mad_sd(values)
        if abs(value - reference) <= band:
            significant = False
            noise = f"within the history's run-to-run noise ({th.history_k:g} x MAD: +-{band:.4g})"
            info["note"] = _joined(info.get("note"), noise)
    verdict = "unchanged"
    if significant and beyond(value / reference, threshold):
        edge = history_edge(values, value, reference, threshold)
        if beyond(value / edge, threshold) and (value > edge) == (value > reference):
            verdict = "improved" if (change > 0) == metric.higher_is_better else "regressed"
        else:
            known = (
                f"not beyond the threshold against every baseline run: one read {edge:.4g} "
                f"(the history's runs read {min(values):.4g} to {max(values):.4g})"
            )
            info["note"] = _joined(info.get("note"), known)
    return MetricChange(
        metric.name,
        metric.unit,
        metric.higher_is_better,
        reference,
        value,
        change,
        threshold,
        verdict,
        baseline_runs=len(values),
        **info,
    )


def history_edge(values: list[float], value: float, reference: float, threshold: float) -> float:
    """The baseline run a change is held against: of the history's per-run ``values`` (oldest first), the one
    nearest ``value`` on its side of the median ``reference`` (the highest for a rise, the lowest for a fall), so a
    change counts only when it is beyond the threshold against every baseline run, not just their median. A case
    that read as high (or as low) on an earlier night, with nothing changed, has shown that it can; on a shared
    machine one case can sit 30% off for a whole process. Two kinds of runs are passed over:

    - the latest runs, when they already read beyond the threshold the way ``value`` does: a lasting change that
      began there and that the candidate continues, which keeps being flagged until it is most of the history;
    - with ten runs or more, the most extreme tenth on each side, so one wild night does not hide every change
      after it.

    With one run, that run is the edge (the median itself)."""
    kept = list(values)
    up = value > reference
    while len(kept) > 1 and beyond(kept[-1] / reference, threshold) and (kept[-1] > reference) == up:
        kept.pop()
    kept.sort()
    trim = len(kept) // 10
    kept = kept[trim : len(kept) - trim]
    return kept[-1] if up else kept[0]


def throughput_interval(record: dict[str, Any]) -> tuple[float, float, float] | None:
    """The record's throughput 95% interval and its width relative to the throughput: (lo, hi, width), or None
    when the record has no interval (a published figure) or no throughput."""
    ci, tput = record_field(record, "throughput_ci95"), number(record_field(record, "throughput_img_s"))
    if tput is None or tput <= 0 or isinstance(ci, (str, bytes)) or not hasattr(ci, "__len__") or len(ci) != 2:
        return None
    lo, hi = number(ci[0]), number(ci[1])
    return (lo, hi, (hi - lo) / tput) if lo is not None and hi is not None else None


def record_noise(record: dict[str, Any], th: Thresholds) -> list[str]:
    """What may keep a record's timed numbers from a verdict, one reason per line (empty: nothing): the record is
    marked ``noisy`` (its ``noise`` reasons; ``contention_slack`` says how far they can move it), or its throughput
    interval is wider than ``th.max_interval()``. A record without the marking (written before it existed) reads as
    not noisy."""
    return _noise(record, th)[0]


def _noise(record: dict[str, Any], th: Thresholds) -> tuple[list[str], bool]:
    """``record_noise`` of one record, and whether its interval is too wide (one of those reasons)."""
    reasons: list[str] = []
    noisy = record_field(record, "noisy")
    if isinstance(noisy, (bool, np.bool_)) and noisy:
        given = record_field(record, "noise")
        given = [str(r) for r in given if r] if isinstance(given, (list, tuple, np.ndarray)) else []
        reasons += given or ["marked noisy (no reason recorded)"]
    interval = throughput_interval(record)
    wide = interval is not None and interval[2] > th.max_interval()
    if wide:
        lo, hi, width = interval
        reasons.append(
            f"throughput 95% interval {lo:.4g} to {hi:.4g} img/s is {width:.0%} wide (over {th.max_interval():.0%})"
        )
    return reasons, wide


def _inconclusive(m: MetricChange, why: str | None = None) -> None:
    said = f"the numbers alone read as {m.verdict}" if m.verdict != "unchanged" else None
    for text in (said, why):
        if text:
            m.note = f"{m.note}; {text}" if m.note else text
    m.verdict = "inconclusive"


#: The most of its cores' time that contention is taken to have cost a side (a share of 1 would bound nothing).
MAX_SHARE = 0.95


def contention_slack(record: dict[str, Any]) -> float:
    """How many times slower a record's timed numbers can be because of what it was measured beside (>= 1; inf
    when that cannot be bounded); 1.0 for a record that is not marked noisy. See the module docstring."""
    noisy = record_field(record, "noisy")
    if not (isinstance(noisy, (bool, np.bool_)) and noisy):
        return 1.0
    group = record_field(record, "contention")
    group = group if isinstance(group, dict) else {}
    if number(group.get("gpu_other_processes")) or group.get("gpu_clock_events"):
        return float("inf")
    if _stalls_only(record, group):
        return 1.0  # stalls alone: the median step does not move with them
    if number(record_field(record, "num_threads")) != 1:
        # Several threads wait for each other at every parallel region: one descheduled thread holds them all, so
        # a share taken by others can cost far more than its size (measured here: 20-60x slower at half the cores).
        return float("inf")
    shares = [number(group.get(key)) for key in ("other_cpu_pct", "steal_pct")]
    if all(v is None for v in shares):
        return float("inf")
    share = min(sum(v for v in shares if v is not None) / 100.0, MAX_SHARE)
    return 1.0 / (1.0 - max(share, 0.0))


#: The contention rule's limits, as the measurement applies them (``harness.measure.contention``): below both, a
#: noisy record is noisy for its stalled steps.
STEAL_PCT, OTHER_CPU_PCT = 5.0, 20.0


def _stalls_only(record: dict[str, Any], group: dict[str, Any]) -> bool:
    """Whether the record is noisy for its stalled steps alone (no contention share over the rule's limits)."""
    other, steal = number(group.get("other_cpu_pct")), number(group.get("steal_pct"))
    quiet = (other is None or other < OTHER_CPU_PCT) and (steal is None or steal < STEAL_PCT)
    return quiet and bool(number(record_field(record, "stalled_steps")))


def _hold_against_contention(m: MetricChange, slack_base: float, slack_cand: float) -> None:
    """Keep ``m``'s verdict when it survives the contention of either side (module docstring), else make it
    inconclusive, saying why."""
    worst = max(slack_base, slack_cand)
    if worst <= 1.0 + m.threshold / 2:
        return  # too little contention to move a verdict
    up = m.higher_is_better
    # the candidate given back what its contention could have cost it, and the baseline likewise
    best_cand = m.candidate * slack_cand if up else m.candidate / slack_cand
    best_base = m.baseline * slack_base if up else m.baseline / slack_base
    # the verdict stands when the ratio, with the contention given back, is still beyond the threshold the same way
    if m.verdict == "regressed" and m.baseline:
        left = best_cand / m.baseline
        if beyond(left, m.threshold) and (left < 1) == up:
            m.note = _joined(m.note, f"beyond what the contention can explain ({_times(slack_cand)} slower at most)")
            return
    if m.verdict == "improved" and best_base:
        left = m.candidate / best_base
        if beyond(left, m.threshold) and (left > 1) == up:
            m.note = _joined(m.note, f"beyond what the contention can explain ({_times(slack_base)} slower at most)")
            return
    _inconclusive(m, None if worst == float("inf") else f"contention can explain up to {_times(worst)}")


def _times(factor: float) -> str:
    return "an unbounded slowdown" if factor == float("inf") else f"{factor:.2f}x"


def _joined(note: str | None, text: str) -> str:
    return f"{note}; {text}" if note else text


def _judge(key: str, base: list[dict], cand: dict, th: Thresholds) -> CaseResult:
    latest = base[-1]
    b_status, c_status = latest.get("status"), cand.get("status")
    result = CaseResult(key, "unchanged", case_fields(cand), b_status, c_status, cand.get("message"))
    if b_status == Status.OK and c_status != Status.OK:
        result.bucket = "newly_failing"
        return result
    if b_status != Status.OK:
        result.bucket = "fixed" if c_status == Status.OK else "still_failing"
        return result
    ok = [r for r in base if r.get("status") == Status.OK]
    # Timed metrics: against the quiet baseline runs while there is one; inconclusive when either side is noisy.
    base_noise = [_noise(r, th) for r in ok]
    quiet = [r for r, (reasons, _) in zip(ok, base_noise, strict=True) if not reasons]
    cand_noise, wide = _noise(cand, th)
    result.noise = [f"candidate: {reason}" for reason in cand_noise]
    if not quiet:
        side = "baseline" if len(ok) == 1 else f"baseline (every one of its {len(ok)} runs; the latest)"
        result.noise += [f"{side}: {reason}" for reason in base_noise[-1][0]]
        wide = wide or any(too_wide for _, too_wide in base_noise)
    elif len(quiet) < len(ok):
        result.notes.append(f"{len(ok) - len(quiet)} noisy baseline run(s) left out of the timed metrics")
    # (a quiet record is never too wide: a too-wide interval is one of its noise reasons)
    slack_base = max(contention_slack(r) for r in (quiet or ok))
    slack_cand = contention_slack(cand)
    for metric in METRICS:
        outcome = compare_metric(metric, (quiet or ok) if metric.timed else ok, cand, th)
        if isinstance(outcome, str):
            result.notes.append(outcome)
        elif outcome is not None:
            if metric.timed and wide:
                _inconclusive(outcome)
            elif metric.timed and result.noise:
                _hold_against_contention(outcome, slack_base, slack_cand)
            result.metrics.append(outcome)
    verdicts = {m.verdict for m in result.metrics}
    result.bucket = next(
        (v for v in ("regressed", "inconclusive", "improved") if v in verdicts),
        "unchanged",
    )
    return result


def _steps(key: str, baseline: Side, candidate: Side, th: Thresholds) -> list[dict[str, Any]]:
    runs = [*baseline.runs, *candidate.runs]
    series, labels = [], []
    for run in runs:
        record = run.index.get(key)
        value = METRICS[0].value(record) if record and record.get("status") == Status.OK else None
        if value is not None:
            series.append(value)
            labels.append(run.label)
    out = []
    for step in detect_steps(series, th.for_metric(METRICS[0].name)):
        out.append(
            {
                **step.to_dict(),
                "run": labels[step.index],
                "recovered_run": labels[step.recovered_at] if step.recovered_at is not None else None,
                "metric": METRICS[0].name,
            }
        )
    return out


def compare(baseline: Any, candidate: Any, thresholds: Thresholds | None = None, *, steps: bool = True) -> Comparison:
    """Compare ``candidate`` (one run) against ``baseline`` (one run, or several runs: a history, oldest first).

    Either may be a ``harness.store.Run``, a list of record dicts, or a DataFrame from ``harness.store.load``
    (split into runs by ``run_dir``); ``baseline`` may also be a list of those. Cases match on ``case_id`` (plus
    rank and world size for DDP records). Returns a Comparison whose buckets are regressed, newly_failing (ok in
    the latest baseline run that has the case, not ok now), improved, fixed, still_failing, missing (baseline
    only), new (candidate only), inconclusive (either side noisy; see the module docstring) and unchanged. With
    ``steps`` and at least three baseline runs, throughput step detection runs over each case's history plus the
    candidate. The runs' machine probes (from their manifests, when given runs) are held against each other too:
    ``Comparison.busy`` lists the runs that look busy.
    """
    th = thresholds or Thresholds()
    base, cand = as_side(baseline, "baseline"), as_side(candidate, "candidate")
    if len(cand.runs) != 1:
        raise HarnessError(f"the candidate must be one run; got {len(cand.runs)} runs")
    if not base.runs:
        raise HarnessError("the baseline holds no runs to compare against")
    candidate_index = cand.runs[0].index
    buckets: dict[str, list[CaseResult]] = {b: [] for b in BUCKETS}
    history: dict[str, list[dict]] = {}
    for run in base.runs:
        for key, record in run.index.items():
            history.setdefault(key, []).append(record)
    for key, record in candidate_index.items():
        if key not in history:
            buckets["new"].append(CaseResult(key, "new", case_fields(record), None, record.get("status")))
            continue
        buckets_entry = _judge(key, history[key], record, th)
        buckets[buckets_entry.bucket].append(buckets_entry)
    for key, records in history.items():
        if key not in candidate_index:
            last = records[-1]
            buckets["missing"].append(CaseResult(key, "missing", case_fields(last), last.get("status"), None))
    notes = [*base.notes, *cand.notes]
    if history and candidate_index and not set(history) & set(candidate_index):
        notes.insert(0, "no case in common: every baseline case is missing and every candidate case is new")
    notes.extend(_summarise_notes(buckets))
    busy, health_notes = busy_runs(base.runs, cand.runs[0])
    notes.extend(health_notes)
    comparison = Comparison(th, [r.label for r in base.runs], cand.runs[0].label, buckets, notes, busy=busy)
    if steps and len(base.runs) >= 3:
        for key in sorted(candidate_index):
            found = _steps(key, base, cand, th)
            if found:
                comparison.steps[key] = found
    return comparison


def _summarise_notes(buckets: dict[str, list[CaseResult]]) -> list[str]:
    """Per-case notes folded into one line per distinct note, naming up to five cases."""
    by_note: dict[str, list[str]] = {}
    for cases in buckets.values():
        for case in cases:
            for note in case.notes:
                by_note.setdefault(note, []).append(case.key)
            for m in case.metrics:
                if m.test == "threshold-only" and m.note and m.note.startswith("no samples"):
                    by_note.setdefault(f"{m.metric}: {m.note}", []).append(case.key)
    out = []
    for note, keys in by_note.items():
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        out.append(f"{note} ({len(keys)} case{'s' if len(keys) != 1 else ''}: {shown})")
    return out
