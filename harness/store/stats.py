"""The one statistic of a case's timed steps: the median step, the throughput it gives, and its bootstrap interval.

A case's throughput is ``batch_size * 1000 / median step ms`` (images per second). The median is the estimator
because a stall (one step of 10 s among steps of 300 ms, on a machine that something else woke up on) moves a
total-time figure by half and the median by at most one rank. Its 95% interval is a bootstrap: the steps are
resampled with replacement, the median of each resample is converted to images per second, and the 2.5th and
97.5th percentiles of those throughputs are the interval: how far the throughput could move on a rerun of as many
steps, if the steps behave like these.

A resample's median is drawn without drawing the resample. Resampling ``n`` sorted steps with replacement draws
``n`` uniform indices, and the resample's middle values are the sorted steps at the middle order statistics of
those indices; the ``j``-th smallest of ``n`` uniforms on (0, 1) is Beta(``j``, ``n - j + 1``) distributed, and
the next one above it, given it, is that value plus the rest of the way to 1 times a Beta(1, ``n - j``). So each
resample costs two draws instead of ``n``, and the drawn indices depend only on ``n``, the resample count and the
seed (``_middle_ranks``, kept per length). The result is the same bootstrap, in distribution, as resampling the
steps themselves, and fast enough for the loader to recompute the interval of every record of a store of millions
when it migrates them.

The measurement (``harness.measure.timing.summarise``) and the loader's migration of older records use these
functions, so a record written now and one migrated from schema 1 carry the same figure. Only numpy is imported.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def throughput_img_s(batch_size: int, step_ms_median: float) -> float:
    """Images per second of a case whose median step takes ``step_ms_median`` ms at ``batch_size`` images."""
    return batch_size * 1000.0 / step_ms_median


@lru_cache(maxsize=4096)
def _middle_ranks(n: int, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``resamples`` resamples with replacement of ``n`` sorted steps, the positions in the sorted
    steps of the resample's two middle values (the same position twice when ``n`` is odd)."""
    rng = np.random.default_rng(seed)
    k = n // 2
    if n % 2:  # the median is the (k+1)-th smallest of n
        lower = upper = rng.beta(k + 1, n - k, size=resamples)
    else:  # the mean of the k-th and the (k+1)-th smallest
        lower = rng.beta(k, n - k + 1, size=resamples)
        upper = lower + (1.0 - lower) * rng.beta(1, n - k, size=resamples)
    lo = np.minimum((lower * n).astype(np.intp), n - 1)
    hi = np.minimum((upper * n).astype(np.intp), n - 1)
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


def bootstrap_medians(samples, resamples: int, seed: int = 0) -> np.ndarray:
    """The medians (ms) of ``resamples`` resamples with replacement of ``samples`` (step times), in no particular
    order; deterministic for a given ``seed``, length and resample count (module docstring)."""
    ordered = np.sort(np.asarray(samples, dtype=np.float64))
    lo, hi = _middle_ranks(ordered.size, resamples, seed)
    return (ordered[lo] + ordered[hi]) * 0.5


def _percentile(ordered: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of sorted ``ordered``, interpolated linearly (numpy's default method)."""
    position = q / 100.0 * (ordered.size - 1)
    i = int(position)
    j = min(i + 1, ordered.size - 1)
    return float(ordered[i] + (ordered[j] - ordered[i]) * (position - i))


def throughput_interval(samples, batch_size: int, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The bootstrap 95% interval (img/s) of the median-step throughput of ``samples`` (step times in ms)."""
    if len(samples) == 0:
        raise ValueError("no timed samples")
    rates = np.sort(batch_size * 1000.0 / bootstrap_medians(samples, resamples, seed))
    return _percentile(rates, 2.5), _percentile(rates, 97.5)
