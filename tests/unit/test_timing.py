"""Warm-up and statistics: the logic that decides what a throughput number means."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.timing import (
    WarmupResult,
    flat,
    stall_reason,
    stalls,
    steady_steps,
    summarise,
    time_steps,
    warm_up,
)
from harness.store.stats import bootstrap_medians, throughput_interval


class FakeClockStep:
    """A step whose duration follows a given schedule (ms), driven through a patched perf_counter."""

    def __init__(self, schedule_ms, monkeypatch):
        self.schedule = list(schedule_ms)
        self.now = 0.0
        self.calls = 0
        monkeypatch.setattr("harness.measure.timing.time.perf_counter", lambda: self.now)

    def __call__(self):
        ms = self.schedule[min(self.calls, len(self.schedule) - 1)]
        self.calls += 1
        self.now += ms / 1000.0


def test_warmup_runs_until_step_times_stop_falling(monkeypatch):
    # Steps get faster for 30 iterations (200 ms -> 100 ms), then stay flat: a fixed 5-step warm-up would stop
    # while the model is still twice as slow as it will be.
    schedule = [200 - (100 * i / 30) for i in range(30)] + [100.0] * 100
    step = FakeClockStep(schedule, monkeypatch)
    result = warm_up(step, lambda: None, min_iters=5, max_iters=500, max_seconds=1e9, window=5, tolerance=0.02)
    assert result.reason == "stable"
    assert 30 <= result.iters <= 45
    assert result.step_ms[-1] == pytest.approx(100.0)


def test_warmup_respects_its_bounds(monkeypatch):
    step = FakeClockStep([1000 - i for i in range(1000)], monkeypatch)  # never settles
    result = warm_up(step, lambda: None, min_iters=5, max_iters=50, max_seconds=1e9, window=5, tolerance=0.0001)
    assert (result.reason, result.iters) == ("max_iters", 50)
    step = FakeClockStep([1000 - i for i in range(1000)], monkeypatch)
    result = warm_up(step, lambda: None, min_iters=5, max_iters=500, max_seconds=3.0, window=5, tolerance=0.0001)
    assert result.reason == "max_seconds" and result.seconds >= 3.0


def test_timed_window_needs_both_iterations_and_seconds(monkeypatch):
    step = FakeClockStep([10.0] * 1000, monkeypatch)
    timed = time_steps(step, lambda: None, min_iters=20, min_seconds=1.0, max_iters=10_000)
    assert len(timed.step_ms) == 100  # 1 s of 10 ms steps: seconds bind, not iterations
    step = FakeClockStep([100.0] * 1000, monkeypatch)
    timed = time_steps(step, lambda: None, min_iters=20, min_seconds=0.5, max_iters=10_000)
    assert len(timed.step_ms) == 20


def test_timeout_inside_the_timed_window(monkeypatch):
    step = FakeClockStep([100.0] * 1000, monkeypatch)
    with pytest.raises(TimeoutError):
        time_steps(step, lambda: None, min_iters=1000, min_seconds=0, deadline=1.0)


def test_summary_is_the_median_step_with_percentiles_and_interval():
    rng = np.random.default_rng(1)
    samples = list(100 + rng.normal(0, 5, size=200))
    s = summarise(samples, batch_size=32)
    assert s.throughput_img_s == pytest.approx(32 * 1000 / np.median(samples))
    assert s.throughput_total_img_s == pytest.approx(32 * 200 / (sum(samples) / 1000))
    assert s.step_ms_p10 < s.step_ms_median < s.step_ms_p90 < s.step_ms_p99
    lo, hi = s.throughput_ci95
    assert lo < s.throughput_img_s < hi
    # The interval of the median of 200 steps with 5% noise is about +-0.6% wide: not a min/max band.
    assert (hi - lo) / s.throughput_img_s < 0.02


@pytest.mark.parametrize("n", [2, 8, 31, 40])
def test_the_interval_is_the_bootstrap_of_the_median(n):
    # Drawn through the resamples' middle order statistics, the medians are those of resampling the steps: the
    # same percentiles as a brute-force bootstrap of many resamples, for odd and even lengths.
    steps = 100 + np.random.default_rng(n).lognormal(0, 1, size=n) * 10
    drawn = bootstrap_medians(steps, 40_000, seed=1)
    brute = np.median(steps[np.random.default_rng(2).integers(0, n, size=(40_000, n))], axis=1)
    assert np.percentile(drawn, [2.5, 50, 97.5]) == pytest.approx(np.percentile(brute, [2.5, 50, 97.5]))
    assert np.std(drawn) == pytest.approx(np.std(brute), rel=0.03)
    lo, hi = throughput_interval(list(steps), 4, resamples=40_000, seed=1)
    assert (lo, hi) == pytest.approx((4000 / np.percentile(drawn, 97.5), 4000 / np.percentile(drawn, 2.5)), rel=1e-3)


def test_one_stall_barely_moves_the_throughput_and_is_named():
    # Samples of one case on a busy 2-core machine: one step of 10.9 s among steps of about 330 ms.
    samples = [325.0, 300.0, 364.0, 603.0, 10878.0] + [330.0] * 15
    s = summarise(samples, batch_size=2)
    assert s.throughput_img_s == pytest.approx(2 * 1000 / 330.0)  # 6.1 img/s, what the steps run at
    assert s.throughput_total_img_s < s.throughput_img_s / 2  # images over total time: halved by one stall
    assert stalls(samples) == [4]  # 603 ms is slow but not 3x the median
    assert stall_reason(samples, stalls(samples)) == "1 stalled step (> 3x the median 330 ms): 10878 ms"


def test_jitter_on_micro_steps_is_not_a_stall():
    # 0.4 ms steps on a fast GPU: a 2 ms step is 5x the median but only 1.6 ms more.
    assert stalls([0.4] * 20 + [2.0]) == []
    assert stalls([0.4] * 20 + [6.0]) == [20]
    assert stall_reason([1.0], []) is None


def test_the_window_runs_on_to_replace_stalls(monkeypatch):
    step = FakeClockStep([100.0, 100.0, 10_000.0] + [100.0] * 100, monkeypatch)
    timed = time_steps(step, lambda: None, min_iters=5, min_seconds=0.0, max_iters=1000)
    # five steps that are not stalls, and the stall kept in the samples where it happened
    assert len(timed.step_ms) == 6 and timed.stalled == [2] and timed.extended == 1
    assert timed.step_ms[2] == pytest.approx(10_000.0)


def test_the_extension_stays_within_the_window_bounds(monkeypatch):
    # A machine that stalls on every step after the first few: the window met its minimums after 10.4 s, so it
    # begins no step after 20.8 s instead of waiting for five good steps.
    schedule = [10_000.0, 100.0, 100.0, 100.0, 100.0] + [10_000.0] * 100
    step = FakeClockStep(schedule, monkeypatch)
    timed = time_steps(step, lambda: None, min_iters=5, min_seconds=0.0, max_iters=1000)
    assert timed.stalled == [0, 5, 6] and timed.extended == 2
    assert sum(timed.step_ms[:-1]) <= 2 * 10_400.0
    # max_iters bounds it too
    step = FakeClockStep([10_000.0] + [100.0] * 100, monkeypatch)
    assert len(time_steps(step, lambda: None, min_iters=5, min_seconds=0.0, max_iters=5).step_ms) == 5
    # and a window whose step count is fixed (DDP: min_iters == max_iters) never extends, but counts its stalls
    step = FakeClockStep([10_000.0] + [100.0] * 100, monkeypatch)
    fixed = time_steps(step, lambda: None, min_iters=5, min_seconds=0.0, max_iters=5)
    assert fixed.stalled == [0] and fixed.extended == 0


def test_the_extension_never_turns_a_case_into_a_timeout(monkeypatch):
    step = FakeClockStep([100.0, 10_000.0] + [100.0] * 100, monkeypatch)
    # the deadline falls just after the fifth step: replacing the stall would cross it, so the window ends
    timed = time_steps(step, lambda: None, min_iters=5, min_seconds=0.0, deadline=10.45)
    assert len(timed.step_ms) == 5 and timed.stalled == [1]


def test_summary_interval_narrows_with_more_samples():
    rng = np.random.default_rng(2)
    few = summarise(list(100 + rng.normal(0, 10, size=10)), 8)
    many = summarise(list(100 + rng.normal(0, 10, size=1000)), 8)
    width = lambda s: (s.throughput_ci95[1] - s.throughput_ci95[0]) / s.throughput_img_s  # noqa: E731
    assert width(many) < width(few) / 3


def test_warmup_budget_starts_after_the_first_step(monkeypatch):
    # A compiled model's first step takes 20 s; a 3 s budget counted from the start would end warm-up right there.
    step = FakeClockStep([20_000.0] + [100.0] * 200, monkeypatch)
    result = warm_up(step, lambda: None, min_iters=5, max_iters=500, max_seconds=3.0, window=5, tolerance=0.02)
    assert result.reason == "stable" and result.iters >= 10


def test_a_carried_case_stops_at_its_first_flat_window(monkeypatch):
    # A warm case: one slower first step (new kernels), then flat. Carried, three flat steps end the warm-up; not
    # carried, it needs two windows.
    schedule = [130.0, 100.0, 101.0, 100.5, 100.0, 100.2, 100.1, 100.0]
    limits = dict(min_iters=2, max_iters=50, max_seconds=1e9, window=3, tolerance=0.05)
    carried = warm_up(FakeClockStep(schedule, monkeypatch), lambda: None, carried=True, **limits)
    assert (carried.reason, carried.iters) == ("stable_carried", 4)
    cold = warm_up(FakeClockStep(schedule, monkeypatch), lambda: None, **limits)
    assert (cold.reason, cold.iters) == ("stable", 6)


def test_a_carried_case_whose_steps_still_fall_is_not_timed_early(monkeypatch):
    # Falling 4% a step: no window of three is flat within 5%, and the two-window test waits until the fall ends.
    schedule = [100.0 * 0.96**i for i in range(20)] + [100.0 * 0.96**20] * 20
    limits = dict(min_iters=2, max_iters=100, max_seconds=1e9, window=3, tolerance=0.05)
    result = warm_up(FakeClockStep(schedule, monkeypatch), lambda: None, carried=True, **limits)
    assert result.iters >= 20
    assert max(result.step_ms[-3:]) - min(result.step_ms[-3:]) <= 0.05 * np.median(result.step_ms[-3:])


def test_flat_is_a_spread_within_the_tolerance_of_the_median():
    assert flat([500.0, 100.0, 104.0, 100.0], min_iters=2, window=3, tolerance=0.05)
    assert not flat([100.0, 106.0, 100.0], min_iters=2, window=3, tolerance=0.05)
    assert not flat([100.0, 100.0], min_iters=2, window=3, tolerance=0.05)  # not a whole window yet
    assert not flat([100.0, 100.0, 100.0], min_iters=5, window=3, tolerance=0.05)  # min_iters binds


def test_the_steady_window_of_the_warm_up_opens_the_timed_window(monkeypatch):
    # Warm-up falls, then holds at 100 ms: the window of 3 that proved it steady is timed, not run again.
    step = FakeClockStep([300.0, 200.0, 150.0] + [100.0] * 100, monkeypatch)
    warm = warm_up(step, lambda: None, min_iters=2, max_iters=50, max_seconds=1e9, window=3, tolerance=0.05)
    assert warm.reason == "stable"
    warm.steady = steady_steps(warm, 3)
    assert warm.steady_ms() == pytest.approx([100.0, 100.0, 100.0])
    before = step.calls
    timed = time_steps(step, lambda: None, min_iters=5, min_seconds=0.0, prior_ms=warm.steady_ms())
    assert step.calls - before == 2, "three steady steps count toward the five"
    assert timed.step_ms == pytest.approx([100.0] * 5) and timed.total_s == pytest.approx(0.5)
    # They count toward min_seconds too: 0.45 s of steady steps, 0.6 s asked, two more 100 ms steps.
    before = step.calls
    timed = time_steps(step, lambda: None, min_iters=1, min_seconds=0.6, prior_ms=[150.0, 150.0, 150.0])
    assert step.calls - before == 2 and len(timed.step_ms) == 5
    # A stall among them is replaced like any other.
    before = step.calls
    timed = time_steps(step, lambda: None, min_iters=5, min_seconds=0.0, prior_ms=[100.0, 2000.0, 100.0])
    assert step.calls - before == 3 and timed.stalled == [1]


def test_only_a_warm_up_that_passed_its_test_gives_steady_steps():
    assert steady_steps(WarmupResult(8, 1.0, "stable", [1.0] * 8), 3) == 3
    assert steady_steps(WarmupResult(4, 1.0, "stable_carried", [1.0] * 4), 3) == 3
    assert steady_steps(WarmupResult(50, 9.0, "max_iters", [1.0] * 50), 3) == 0
    assert steady_steps(WarmupResult(7, 3.0, "max_seconds", [1.0] * 7), 3) == 0
    with pytest.raises(ValueError, match="device events"):
        time_steps(lambda: None, lambda: None, min_iters=1, min_seconds=0, prior_ms=[1.0], events=lambda: (0, 0))
