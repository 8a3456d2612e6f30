"""The statistics under every verdict: the U test against scipy, bootstrap intervals, and step detection."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest

from harness.regress import bootstrap_interval, detect_steps, mann_whitney_u
from harness.regress.stats import beyond, intervals_overlap, mad_sd
from tests.conftest import ROOT

scipy_stats = pytest.importorskip("scipy.stats")

U_CASES = {
    "shifted normals": (np.random.default_rng(0).normal(100, 1, 30), np.random.default_rng(1).normal(101, 1, 30)),
    "identical distributions": (np.random.default_rng(2).normal(5, 2, 40), np.random.default_rng(3).normal(5, 2, 25)),
    "ties (rounded timings)": (
        np.round(np.random.default_rng(4).normal(10, 1, 50)),
        np.round(np.random.default_rng(5).normal(10.5, 1, 35)),
    ),
    "small and skewed": ([1.0, 2.0, 2.0, 3.0, 50.0], [2.0, 4.0, 4.0, 6.0, 7.0, 9.0]),
    "complete separation": (list(range(1, 11)), list(range(11, 21))),
}


@pytest.mark.parametrize("name", U_CASES)
def test_mann_whitney_u_matches_scipy(name):
    a, b = U_CASES[name]
    ours = mann_whitney_u(a, b)
    ref = scipy_stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert ours.u == pytest.approx(ref.statistic)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_mann_whitney_u_of_constant_samples_is_p_one():
    assert mann_whitney_u([5.0] * 10, [5.0] * 12).p == 1.0
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])


def test_bootstrap_interval_is_deterministic_and_brackets_the_median():
    x = np.random.default_rng(7).normal(100, 5, 6)
    lo, hi = bootstrap_interval(x)
    assert (lo, hi) == bootstrap_interval(x)
    assert lo <= np.median(x) <= hi
    assert intervals_overlap((lo, hi), (hi, hi + 1)) and not intervals_overlap((lo, hi), (hi + 1, hi + 2))


def test_mad_sd_estimates_the_standard_deviation_robustly():
    x = np.random.default_rng(8).normal(0, 2, 5000)
    assert mad_sd(x) == pytest.approx(2, rel=0.05)
    assert mad_sd(np.append(x[:99], 1e9)) < 3  # one wild value does not move it
    assert mad_sd([1.0]) == 0.0


def _level(mean: float, n: int, rng: random.Random, noise: float = 0.01) -> list[float]:
    return [mean * (1 + rng.gauss(0, noise)) for _ in range(n)]


def test_a_change_is_beyond_the_threshold_by_the_same_factor_either_way():
    assert beyond(1.26, 0.25) and beyond(1 / 1.26, 0.25)
    assert not beyond(1.24, 0.25) and not beyond(1 / 1.24, 0.25)
    # 20% lower is 1.25x apart, as 25% higher is: on the line, neither counts
    assert not beyond(0.8 + 1e-9, 0.25) and beyond(0.79, 0.25)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        assert not beyond(bad, 0.05)


def test_a_step_down_counts_like_a_step_up_of_the_same_factor():
    up = [100.0] * 6 + [127.0] * 6
    down = [100.0] * 6 + [100 / 1.27] * 6  # 21% lower: beyond 25% as a factor, under it as a percentage
    assert [round(s.change, 2) for s in detect_steps(up, 0.25)] == [0.27]
    assert [round(s.change, 2) for s in detect_steps(down, 0.25)] == [-0.21]


def test_a_step_and_its_recovery_are_found():
    rng = random.Random(1)
    series = _level(100, 10, rng) + _level(80, 5, rng) + _level(100, 8, rng)
    steps = detect_steps(series, 0.05)
    assert [s.index for s in steps] == [10, 15]
    assert steps[0].change == pytest.approx(-0.20, abs=0.02)
    assert steps[0].recovered_at == 15
    assert steps[1].recovered_at is None and steps[1].change > 0


def test_a_lasting_step_has_not_recovered():
    rng = random.Random(2)
    steps = detect_steps(_level(100, 10, rng) + _level(90, 10, rng), 0.05)
    assert len(steps) == 1 and steps[0].index == 10 and steps[0].recovered_at is None
    assert steps[0].before == pytest.approx(100, rel=0.02) and steps[0].after == pytest.approx(90, rel=0.02)


def test_one_odd_night_and_plain_noise_are_not_steps():
    assert detect_steps([100.0] * 10 + [130.0] + [100.0] * 6, 0.05) == []
    for seed in range(10):
        # 8% night-to-night noise: a 5% threshold alone would see steps everywhere; the noise rule does not.
        assert detect_steps(_level(100, 30, random.Random(seed), noise=0.08), 0.05) == [], seed


def test_a_step_below_the_threshold_is_not_reported():
    rng = random.Random(3)
    assert detect_steps(_level(100, 10, rng, 0.002) + _level(97, 10, rng, 0.002), 0.05) == []


def test_steps_skip_missing_nights_and_short_series():
    assert detect_steps([], 0.05) == [] and detect_steps([100.0, 80.0], 0.05) == []
    steps = detect_steps([None, 100, 0, 100, 100, float("nan"), 80, 80, 80], 0.05)
    assert len(steps) == 1 and steps[0].index == 6


def test_regress_and_compare_command_import_no_torch():
    code = (
        "import sys, harness.regress, harness.regress.render, harness.regress.render_hardware, "
        "harness.commands.compare; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _numpy_mad_sd(values) -> float:
    x = np.asarray(values, dtype=np.float64)
    return 0.0 if x.size < 2 else float(1.4826 * np.median(np.abs(x - np.median(x))))


def test_mad_sd_of_a_short_history_is_numpys_to_the_bit():
    """Short finite histories take a pure-Python median: the same float as numpy's, odd and even sizes, ties."""
    rng = random.Random(7)
    for n in [*range(2, 70), 200]:
        for _ in range(20):
            values = [rng.choice([rng.uniform(-1e6, 1e6), rng.lognormvariate(0, 3), 1.0, 0.1 + 0.2]) for _ in range(n)]
            assert mad_sd(values) == _numpy_mad_sd(values)
            assert mad_sd(np.asarray(values)) == _numpy_mad_sd(values)
    for odd in ([1.0, float("nan"), 3.0], [1.0, float("inf"), 2.0, 5.0]):
        assert repr(mad_sd(odd)) == repr(_numpy_mad_sd(odd))  # numpy's reading of NaN and infinities, unchanged
