"""Timing: a warm-up that runs until step times stop falling, timed samples, and their statistics.

Every clock read is preceded by a device sync (``sync``), so a step's time is the time the device took, not the
time Python took to queue it. On CUDA each step is also bracketed by CUDA events, recorded per step and read
after the window so the events themselves add no sync inside the loop beyond the wall clock's. Every sample is
kept: the record stores them, and the comparison runs its statistical tests on them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class WarmupResult:
    """What the warm-up did: iterations, seconds, and why it stopped (``stable``, ``max_iters``, ``max_seconds``)."""

    iters: int
    seconds: float
    reason: str
    step_ms: list[float] = field(default_factory=list)


def settled(times_ms: list[float], min_iters: int, window: int, tolerance: float) -> bool:
    """Whether step times have stopped falling: after at least ``min_iters`` and ``2 * window`` steps, the median
    of the last ``window`` is no more than ``tolerance`` (relative) below the median of the ``window`` before."""
    if len(times_ms) < max(min_iters, 2 * window):
        return False
    recent = statistics.median(times_ms[-window:])
    before = statistics.median(times_ms[-2 * window : -window])
    return recent >= before * (1.0 - tolerance)


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
) -> WarmupResult:
    """Run ``step`` until the step time has stopped falling, then return.

    After at least ``min_iters`` and ``2 * window`` steps, the median of the last ``window`` step times is compared
    with the median of the ``window`` before it: once the newer median is no more than ``tolerance`` (relative)
    below the older one, times have stopped falling and the warm-up ends. A fixed count is not enough: allocator
    growth, cache warming and the CPU's own frequency ramp make the first model of a sweep slow for many steps.
    ``max_iters`` and ``max_seconds`` bound the phase on a device that never settles. The seconds are counted from
    the end of the first step, which pays for compilation, cuDNN autotuning and allocator growth, so a compiled
    case is not cut off after one step.
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
        if len(times) == 1:
            budget_start = t1
        if t1 - budget_start >= max_seconds:
            reason = "max_seconds"
            break
    return WarmupResult(len(times), time.perf_counter() - start, reason, times)


@dataclass
class TimedSamples:
    """Per-step times of the timed window: device time (CUDA events, or the wall clock on CPU) and wall time."""

    step_ms: list[float]
    wall_ms: list[float]
    total_s: float


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
) -> TimedSamples:
    """Time steps until both ``min_iters`` steps and ``min_seconds`` have passed (at most ``max_iters``).

    On CPU each sample is the synced wall time of one step (``perf_counter``). With ``events`` (a factory of a
    (begin, end) pair of device timers, ``Device.step_events`` on CUDA) each step is also bracketed by them, and
    their times become ``step_ms`` (the GPU's own clock), with the synced wall times kept beside them in
    ``wall_ms``. ``after_step(n, t)`` is called after each step, outside its timing, with the step count and the
    clock; DDP ranks use it to agree on stopping (it may raise).
    """
    wall: list[float] = []
    pairs = []
    sync()
    start = time.perf_counter()
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
        if n >= max_iters or (n >= min_iters and t1 - start >= min_seconds):
            break
    total = time.perf_counter() - start
    step_ms = [b.elapsed_time(e) for b, e in pairs] if events is not None else list(wall)
    return TimedSamples(step_ms, wall, total)


@dataclass(frozen=True)
class Summary:
    """Statistics of one case's timed samples. Throughput is images over total time, not a mean of rates."""

    throughput_img_s: float
    step_ms_median: float
    step_ms_p10: float
    step_ms_p90: float
    step_ms_p99: float
    throughput_ci95: tuple[float, float]


def summarise(step_ms: list[float], batch_size: int, *, resamples: int = 2000, seed: int = 0) -> Summary:
    """Throughput (images / total time, img/s), step-time percentiles (ms), and a bootstrap 95% interval.

    The interval resamples the steps with replacement ``resamples`` times and takes the 2.5th and 97.5th
    percentiles of the resampled throughputs: it says how far the throughput could move on a rerun of the same
    number of steps, if the steps behave like these.
    """
    samples = np.asarray(step_ms, dtype=np.float64)
    n = samples.size
    if n == 0:
        raise ValueError("no timed samples")
    total_s = samples.sum() / 1000.0
    throughput = batch_size * n / total_s
    p10, p50, p90, p99 = np.percentile(samples, [10, 50, 90, 99])
    rng = np.random.default_rng(seed)
    # Resample in chunks so a long case (10k steps) needs bounded memory.
    sums = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)
    for i in range(0, resamples, chunk):
        k = min(chunk, resamples - i)
        sums[i : i + k] = samples[rng.integers(0, n, size=(k, n))].sum(axis=1)
    rates = batch_size * n / (sums / 1000.0)
    lo, hi = np.percentile(rates, [2.5, 97.5])
    return Summary(float(throughput), float(p50), float(p10), float(p90), float(p99), (float(lo), float(hi)))
