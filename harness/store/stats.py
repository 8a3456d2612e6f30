"""The one statistic of a case's timed steps: the median step, the throughput it gives, and its bootstrap interval.

A case's throughput is ``batch_size * 1000 / median step ms`` (images per second). The median is the estimator
because a stall (one step of 10 s among steps of 300 ms, on a machine that something else woke up on) moves a
total-time figure by half and the median by at most one rank. Its 95% interval resamples the steps with
replacement, takes the median of each resample, converts each to images per second, and reads the 2.5th and
97.5th percentiles of those throughputs: how far the throughput could move on a rerun of as many steps, if the
steps behave like these.

The measurement (``harness.measure.timing.summarise``) and the loader's migration of older records use these
functions, so a record written now and one migrated from schema 1 carry the same figure. Only numpy is imported.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Elements of one block of resampled indices: bounds the memory of a bootstrap over a long case (10,000 steps).
_BLOCK = 2_000_000


def throughput_img_s(batch_size: int, step_ms_median: float) -> float:
    """Images per second of a case whose median step takes ``step_ms_median`` ms at ``batch_size`` images."""
    return batch_size * 1000.0 / step_ms_median


@lru_cache(maxsize=64)
def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """The resample indices of ``resamples`` resamples of ``n`` steps (one block), kept: with a fixed seed they
    depend on ``n`` alone, so a store of records of a few lengths draws them a few times, not once a record."""
    out = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    out.setflags(write=False)
    return out


def _median_rows(samples: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The median of each row of ``samples[index]``."""
    return np.median(samples[index], axis=1)


def bootstrap_medians(samples: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """The medians (ms) of ``resamples`` resamples with replacement of ``samples`` (a 1-d array of step times).

    Deterministic for a given ``seed``, length and resample count. Resamples are drawn in blocks of at most
    ``_BLOCK`` elements; a bootstrap that fits one block (every migrated record of a usual length) reuses its
    indices across calls.
    """
    n = samples.size
    if n * resamples <= _BLOCK:
        return _median_rows(samples, _indices(n, resamples, seed))
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    rows = max(1, _BLOCK // n)
    for i in range(0, resamples, rows):
        k = min(rows, resamples - i)
        out[i : i + k] = _median_rows(samples, rng.integers(0, n, size=(k, n)))
    return out


def throughput_interval(samples, batch_size: int, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The bootstrap 95% interval (img/s) of the median-step throughput of ``samples`` (step times in ms)."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no timed samples")
    rates = batch_size * 1000.0 / bootstrap_medians(values, resamples, seed)
    lo, hi = np.percentile(rates, [2.5, 97.5])
    return float(lo), float(hi)
