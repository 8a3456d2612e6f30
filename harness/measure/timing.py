"""Timing: a warm-up that runs until step times stop falling, timed samples, and their statistics.

Every clock read is preceded by a device sync (``sync``), so a step's time is the time the device took, not the
time Python took to queue it. On CUDA each step is also bracketed by CUDA events, recorded per step and read
after the window so the events themselves add no sync inside the loop beyond the wall clock's. Every sample is
kept: the record stores them, and the comparison runs its statistical tests on them.

A stall is a step far above its window's median (``stalls``: more than 3x the median and at least 5 ms more). A
window that holds stalls runs on, within its bounds, until it has its minimum of steps that are not stalls
(``time_steps``); the statistics use the median step (``summarise``), which the stalls left in the samples barely
move.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.store import stats


@dataclass
class WarmupResult:
    """What the warm-up did: iterations, seconds, and why it stopped (``stable``, ``stable_carried``, ``max_iters``,
    ``max_seconds``)."""

    iters: int
    seconds: float
    reason: str
    step_ms: list[float] = field(default_factory=list)
    #: How many of the last steps open the timed window (``steady_steps``); 0 when none do.
    steady: int = 0

    def steady_ms(self) -> list[float]:
        """The step times that open the timed window: the last ``steady`` warm-up steps."""
        return self.step_ms[len(self.step_ms) - self.steady :] if self.steady else []


def steady_steps(warm: WarmupResult, window: int) -> int:
    """How many of the warm-up's last steps the stability test found steady, and so may open the timed window:
    the last ``window`` steps when the warm-up ended ``stable`` (that window's median did not fall below the one
    before by more than the tolerance) or ``stable_carried`` (their spread is within the tolerance), none when it
    ended at a bound (its steps may still have been falling). Such steps ran in the state the timed window measures,
    so running ``window`` more steps only to discard these would measure nothing new."""
    if warm.reason not in ("stable", "stable_carried"):
        return 0
    return min(window, warm.iters)


def settled(times_ms: list[float], min_iters: int, window: int, tolerance: float) -> bool:
    """Whether step times have stopped falling: after at least ``min_iters`` and ``2 * window`` steps, the median
    of the last ``window`` is no more than ``tolerance`` (relative) below the median of the ``window`` before."""
    if len(times_ms) < max(min_iters, 2 * window):
        return False
    recent = statistics.median(times_ms[-window:])
    before = statistics.median(times_ms[-2 * window : -window])
    return recent >= before * (1.0 - tolerance)


def flat(times_ms: list[float], min_iters: int, window: int, tolerance: float) -> bool:
    """Whether the last ``window`` step times (after at least ``min_iters`` steps) span no more than ``tolerance``
    of their median: ``max - min <= tolerance * median``. Within such a window the time fell by at most
    ``tolerance``, the most ``settled`` lets one window fall below the one before. It is the test of a case that
    carries a warm state (``warm_up``'s ``carried``), which has no cold start to wait out."""
    if len(times_ms) < max(min_iters, window):
        return False
    recent = times_ms[-window:]
    return max(recent) - min(recent) <= tolerance * statistics.median(recent)


def warm_up(
    step: Callable[[], object],
    sync: Callable[[], None],
    *,
    min_iters: int = 5,
    max_iters: int = 200,
    max_seconds: float = 30.0,
    window: int = 5,
    tolerance: float = 0.02,
    deadline: float | None = None,
    carried: bool = False,
) -> WarmupResult:
    """Run ``step`` until the step time has stopped falling, then return.

    After at least ``min_iters`` and ``2 * window`` steps, the median of the last ``window`` step times is compared
    with the median of the ``window`` before it: once the newer median is no more than ``tolerance`` (relative)
    below the older one, times have stopped falling and the warm-up ends. A fixed count is not enough: allocator
    growth, cache warming and the CPU's own frequency ramp make the first model of a sweep slow for many steps.
    ``max_iters`` and ``max_seconds`` bound the phase on a device that never settles. The seconds are counted from
    the end of the first step, which pays for compilation, cuDNN autotuning and allocator growth, so a compiled
    case is not cut off after one step.

    ``carried``: the case follows one of the same model and memory format that ended its warm-up stable, in the
    same process, so the model already sits in its layout and the allocator and kernel caches hold its tensors.
    Such a case may also end its warm-up as soon as its last ``window`` steps are flat (``flat``: their spread
    is within ``tolerance`` of their median), without waiting for two windows; reason ``stable_carried``. A
    carried case whose steps still fall meets neither test and warms up like any other.
    """
    times: list[float] = []
    sync()
    start = budget_start = time.perf_counter()
    reason = "max_iters"
    while len(times) < max_iters:
        t0 = time.perf_counter()
        step()
        sync()
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1000.0)
        if deadline is not None and t1 > deadline:
            raise TimeoutError("the case's timeout passed during warm-up")
        if settled(times, min_iters, window, tolerance):
            reason = "stable"
            break
        if carried and flat(times, min_iters, window, tolerance):
            reason = "stable_carried"
            break
        if len(times) == 1:
            budget_start = t1
        if t1 - budget_start >= max_seconds:
            reason = "max_seconds"
            break
    return WarmupResult(len(times), time.perf_counter() - start, reason, times)


#: A step is a stall when it takes more than ``STALL_FACTOR`` times the median step of its window ...
STALL_FACTOR = 3.0
#: ... and at least ``STALL_MIN_EXTRA_MS`` more than that median, so jitter on micro-steps is not a stall.
STALL_MIN_EXTRA_MS = 5.0


def stalls(step_ms: list[float]) -> list[int]:
    """The indices of the stalled steps of one timed window: steps longer than ``STALL_FACTOR`` x the window's
    median step and at least ``STALL_MIN_EXTRA_MS`` longer than it (samples of 325, 300, 364, 603 and 10878 ms:
    the 10878 ms step, over 3 x 364)."""
    if not step_ms:
        return []
    median = float(np.median(step_ms))
    limit = max(STALL_FACTOR * median, median + STALL_MIN_EXTRA_MS)
    return [i for i, ms in enumerate(step_ms) if ms > limit]


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def stall_reason(step_ms: list[float], stalled: list[int], shown: int = 5) -> str | None:
    """The record's words for the stalled steps ``stalled`` (indices into ``step_ms``), e.g. "2 stalled steps
    (> 3x the median 300 ms): 603 ms, 10878 ms"; None without stalls. The median named is that of all the steps."""
    if not stalled:
        return None
    times = ", ".join(f"{_ms(step_ms[i])} ms" for i in stalled[:shown])
    more = f" and {len(stalled) - shown} more" if len(stalled) > shown else ""
    median = float(np.median(step_ms))
    steps = "stalled step" if len(stalled) == 1 else "stalled steps"
    return f"{len(stalled)} {steps} (> {STALL_FACTOR:g}x the median {_ms(median)} ms): {times}{more}"


@dataclass
class TimedSamples:
    """Per-step times of the timed window: device time (CUDA events, or the wall clock on CPU) and wall time.

    ``stalled`` are the indices of the stalled steps in ``step_ms`` (the stall rule, ``stalls``); ``extended`` is
    how many steps the window ran beyond the point where it first had its ``min_iters`` and ``min_seconds``, to
    replace stalls."""

    step_ms: list[float]
    wall_ms: list[float]
    total_s: float
    stalled: list[int] = field(default_factory=list)
    extended: int = 0


def time_steps(
    step: Callable[[], object],
    sync: Callable[[], None],
    *,
    min_iters: int = 20,
    min_seconds: float = 2.0,
    max_iters: int = 10_000,
    events: Callable[[], tuple] | None = None,
    deadline: float | None = None,
    after_step: Callable[[int, float], None] | None = None,
    prior_ms: list[float] | None = None,
) -> TimedSamples:
    """Time steps until both ``min_iters`` non-stalled steps and ``min_seconds`` have passed (at most ``max_iters``).

    On CPU each sample is the synced wall time of one step (``perf_counter``). With ``events`` (a factory of a
    (begin, end) pair of device timers, ``Device.step_events`` on CUDA) each step is also bracketed by them, and
    their times become ``step_ms`` (the GPU's own clock), with the synced wall times kept beside them in
    ``wall_ms``. ``after_step(n, t)`` is called after each step, outside its timing, with the step count and the
    clock; DDP ranks use it to agree on stopping (it may raise).

    Stalls are replaced: once the window has its ``min_iters`` steps and ``min_seconds``, the stalled steps among
    them (``stalls`` of the wall times so far) are counted, and the window runs one more step for each, until it
    holds ``min_iters`` steps that are not stalls. The extension stays within the window's bounds: ``max_iters``
    steps, and no step is begun that a median step would end after the case's ``deadline`` or after twice the
    time the window had run when it first met its minimums (a machine that stalls on every other step does not
    keep the case running, and a stall does not turn a measured case into a timeout). A window with ``max_iters``
    equal to ``min_iters`` (a DDP window, whose ranks agreed on one count) never extends. Every step, stalls
    included, is in the samples.

    ``prior_ms``: wall-clock step times (ms) of steps already run in the measured state, which open the window (the
    warm-up's steady steps, ``steady_steps``): they count toward ``min_iters`` and ``min_seconds`` like the window's
    own steps and are in its samples. Only without ``events``: those steps have no device timers.
    """
    if prior_ms and events is not None:
        raise ValueError("steps timed by the wall clock cannot open a window timed by device events")
    wall: list[float] = list(prior_ms or [])
    pairs = []
    met_s: float | None = None  # seconds into the window when it first had its min_iters and min_seconds
    met_n = 0
    sync()
    start = time.perf_counter() - sum(wall) / 1000.0
    while True:
        if events is not None:
            begin, end = events()
            begin.record()
        t0 = time.perf_counter()
        step()
        if events is not None:
            end.record()
            pairs.append((begin, end))
        sync()
        t1 = time.perf_counter()
        wall.append((t1 - t0) * 1000.0)
        n = len(wall)
        if after_step is not None:
            after_step(n, t1)
        elif deadline is not None and t1 > deadline:
            raise TimeoutError("the case's timeout passed during the timed window")
        if n >= max_iters:
            break
        if n < min_iters or t1 - start < min_seconds:
            continue
        if met_s is None:
            met_s, met_n = t1 - start, n
        if n - len(stalls(wall)) >= min_iters:
            break
        # One more step to replace a stall, if a typical step still ends within the budget and the deadline.
        typical_s = float(np.median(wall)) / 1000.0
        if t1 - start + typical_s > 2 * met_s or (deadline is not None and t1 + typical_s > deadline):
            break
    total = time.perf_counter() - start
    step_ms = [b.elapsed_time(e) for b, e in pairs] if events is not None else list(wall)
    return TimedSamples(step_ms, wall, total, stalls(step_ms), n - met_n if met_s is not None else 0)


@dataclass(frozen=True)
class Summary:
    """Statistics of one case's timed samples (see ``harness.store.stats``): throughput from the median step,
    its bootstrap interval, the step-time percentiles, and images over the total time kept beside them."""

    throughput_img_s: float
    step_ms_median: float
    step_ms_p10: float
    step_ms_p90: float
    step_ms_p99: float
    throughput_ci95: tuple[float, float]
    throughput_total_img_s: float


def summarise(step_ms: list[float], batch_size: int, *, resamples: int = 2000, seed: int = 0) -> Summary:
    """Throughput from the median step (img/s), step-time percentiles (ms), a bootstrap 95% interval of that
    throughput, and images over the total time of the steps (img/s).

    The median is the one estimator of a case (``harness.store.stats``): a stall moves it by at most one rank,
    where it would halve a total-time figure. The interval resamples the steps with replacement ``resamples``
    times and reads the 2.5th and 97.5th percentiles of the resampled medians' throughputs.
    """
    samples = np.asarray(step_ms, dtype=np.float64)
    n = samples.size
    if n == 0:
        raise ValueError("no timed samples")
    p10, p50, p90, p99 = np.percentile(samples, [10, 50, 90, 99])
    total = batch_size * n / (samples.sum() / 1000.0)
    ci = stats.throughput_interval(samples, batch_size, resamples=resamples, seed=seed)
    return Summary(
        float(stats.throughput_img_s(batch_size, p50)), float(p50), float(p10), float(p90), float(p99), ci, float(total)
    )
