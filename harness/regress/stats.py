"""The statistics behind a verdict: Mann-Whitney U, bootstrap intervals, and robust noise (MAD).

Everything is numpy; scipy is not needed (the tests check ``mann_whitney_u`` against ``scipy.stats.mannwhitneyu``
where scipy is installed). Ranking is one ``np.unique`` over both samples, so a 30-against-30 test costs tens of
microseconds and thousands of cases compare in well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Scale that turns a median absolute deviation into a standard deviation for normal data.
MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class UTest:
    """A two-sided Mann-Whitney U test: ``u`` is the statistic of the first sample, ``p`` the two-sided p-value."""

    u: float
    p: float
    n_a: int
    n_b: int


def beyond(ratio: float, threshold: float) -> bool:
    """Whether ``ratio`` (new over old, > 0) is a change larger than the relative ``threshold``, the same in both
    directions: more than ``1 + threshold`` times up or down. A metric and its reciprocal (throughput and step
    time) then always agree: 25% means one side is over 1.25x the other, so a throughput 20% lower (1 / 0.8 =
    1.25x) is as far beyond it as a step time 25% longer. Non-finite or non-positive ratios are not beyond."""
    if not math.isfinite(ratio) or ratio <= 0:
        return False
    return abs(math.log(ratio)) > math.log1p(threshold)


def mann_whitney_u(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> UTest:
    """Two-sided Mann-Whitney U test of samples ``a`` and ``b`` (any unit, same for both).

    Uses the normal approximation with the tie correction and a continuity correction of 0.5 (as
    ``scipy.stats.mannwhitneyu(a, b, method="asymptotic")`` does). It asks whether a value drawn from ``a`` tends to
    be larger or smaller than one drawn from ``b``, with no assumption about the shape of either distribution,
    which suits step times (skewed, with a long tail of slow steps). Identical samples give p = 1.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney U needs at least one value on each side")
    both = np.concatenate([x, y])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    # Tied values share the mean of the ranks they span (1-based).
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    r1 = float(mean_rank[inverse[:n1]].sum())
    u1 = r1 - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    tie_term = float((counts.astype(np.float64) ** 3 - counts).sum())
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return UTest(u1, 1.0, n1, n2)
    u = max(u1, n1 * n2 - u1)
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    p = min(1.0, math.erfc(z / math.sqrt(2.0)))  # two-sided: 2 * sf(z) = erfc(z / sqrt 2)
    return UTest(u1, p, n1, n2)


def median_rows(values: np.ndarray) -> np.ndarray:
    """Median along the last axis."""
    return np.median(values, axis=-1)


def bootstrap_interval(
    samples: np.ndarray | list[float],
    statistic: Callable[[np.ndarray], np.ndarray] = median_rows,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``samples`` (in the samples' unit).

    ``statistic`` takes a 2-D array (one resample per row) and returns one value per row. The seed is fixed so
    the same samples always give the same interval: a verdict must not change when the comparison is rerun.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("a bootstrap interval needs at least one sample")
    rng = np.random.default_rng(seed)
    draws = statistic(x[rng.integers(0, x.size, size=(resamples, x.size))])
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(draws, [tail, 100.0 - tail])
    return float(lo), float(hi)


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether the closed intervals ``a`` and ``b`` share a point."""
    return a[0] <= b[1] and b[0] <= a[1]


def mad_sd(values: np.ndarray | list[float]) -> float:
    """Robust standard deviation: 1.4826 x the median absolute deviation from the median (0 for < 2 values)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return 0.0
    if x.size <= 64 and np.isfinite(x).all():
        # A history of nightly values: the same medians, without numpy's cost per call (10x the work on 30 values)
        v = x.tolist()
        middle = _median(v)
        return float(MAD_TO_SD * _median([abs(a - middle) for a in v]))
    return float(MAD_TO_SD * np.median(np.abs(x - np.median(x))))


def _median(values: list[float]) -> float:
    """``np.median`` of a short list of finite floats: the middle value, or the mean of the two middle ones."""
    v = sorted(values)
    half = len(v) // 2
    return v[half] if len(v) % 2 else (v[half - 1] + v[half]) / 2.0
