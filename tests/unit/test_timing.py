"""Warm-up and statistics: the logic that decides what a throughput number means."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.timing import summarise, time_steps, warm_up


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


def test_summary_is_images_over_total_time_with_percentiles_and_interval():
    rng = np.random.default_rng(1)
    samples = list(100 + rng.normal(0, 5, size=200))
    s = summarise(samples, batch_size=32)
    assert s.throughput_img_s == pytest.approx(32 * 200 / (sum(samples) / 1000))
    assert s.step_ms_p10 < s.step_ms_median < s.step_ms_p90 < s.step_ms_p99
    lo, hi = s.throughput_ci95
    assert lo < s.throughput_img_s < hi
    # The interval of the mean of 200 steps with 5% noise is about +-0.7% wide: not a min/max band.
    assert (hi - lo) / s.throughput_img_s < 0.02


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
