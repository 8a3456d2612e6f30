"""Step detection over a nightly history: when did a case's throughput move, by how much, and did it come back?

The rule is meant to be explained in a paragraph to whoever reads the alert. Take one value per run (oldest
first). At each run, compare the median of the ``window`` runs before it with the median of the ``window`` runs
from it on. The level moved there when the two medians differ by more than the relative threshold (either way: one
is more than ``1 + threshold`` times the other) *and* by more than ``k`` times the night-to-night noise (1.4826 x
MAD of the differences between consecutive runs, over sqrt 2: a step is one large difference among many small
ones, so it barely moves this estimate). Neighbouring runs that
all pass belong to one move; it is placed where splitting that stretch into two flat levels leaves the least
total absolute distance from each level's median. The size of a move is the change between the medians of the
whole stretches on either side of it, and a move is kept only while that change still passes both tests. It has
*recovered* when a later move brings the level back within the threshold of where it was before.

Medians of three runs make a single odd night unable to fake a step (it never holds two of three places), while a
dip of two nights or more shows as a move and its recovery. The noise rule keeps a naturally jumpy case from
raising moves that are only its usual scatter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.regress.stats import beyond, mad_sd


@dataclass(frozen=True)
class Step:
    """A level shift in a series: the first run at the new level (``index``), the medians before and after it,
    their relative change (after / before - 1), and the index of the run where the level came back within the
    threshold of ``before`` (None when it has not)."""

    index: int
    before: float
    after: float
    change: float
    recovered_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def night_noise(x: np.ndarray) -> float:
    """Night-to-night noise of a series (its unit): 1.4826 x MAD of consecutive differences, over sqrt 2."""
    if x.size < 3:
        return 0.0
    return mad_sd(np.diff(x)) / np.sqrt(2.0)


def _best_split(x: np.ndarray) -> int:
    best: tuple[float, int] | None = None
    for i in range(1, x.size):
        a, b = x[:i], x[i:]
        cost = float(np.abs(a - np.median(a)).sum() + np.abs(b - np.median(b)).sum())
        if best is None or cost < best[0]:
            best = (cost, i)
    return best[1] if best else 0


def _passes(before: float, after: float, noise: float, threshold: float, k: float) -> bool:
    if before <= 0:
        return False
    return beyond(after / before, threshold) and abs(after - before) > k * noise


def _candidate_cuts(x: np.ndarray, window: int, noise: float, threshold: float, k: float) -> list[int]:
    medians = np.median(np.lib.stride_tricks.sliding_window_view(x, window), axis=1)
    # medians[j] is the median of x[j : j + window]; a move at run i compares medians[i - window] with medians[i].
    flagged = [
        i
        for i in range(window, x.size - window + 1)
        if _passes(float(medians[i - window]), float(medians[i]), noise, threshold, k)
    ]
    cuts: list[int] = []
    start = 0
    while start < len(flagged):
        end = start
        while end + 1 < len(flagged) and flagged[end + 1] == flagged[end] + 1:
            end += 1
        lo, hi = flagged[start] - window, flagged[end] + window
        cuts.append(lo + _best_split(x[lo:hi]))
        start = end + 1
    return cuts


def detect_steps(series: list[float], threshold: float = 0.05, *, k: float = 3.0, window: int = 3) -> list[Step]:
    """Level shifts in ``series`` (per-run values, oldest first, any positive unit such as img/s).

    Returns the accepted steps in order (see the module docstring for the rule). ``threshold`` is relative
    (0.05 = 5%); ``k`` scales the noise rule; ``window`` is how many runs on each side a move is judged on, so
    the newest ``window - 1`` runs cannot start a step yet (the candidate-against-history comparison judges the
    newest run). None, non-finite and non-positive values are dropped first; indices refer to the original series.
    """
    raw = np.asarray([np.nan if v is None else v for v in series], dtype=np.float64)
    keep = np.flatnonzero(np.isfinite(raw) & (raw > 0))
    x = raw[keep]
    if x.size < 2 * window:
        return []
    noise = night_noise(x)
    cuts = _candidate_cuts(x, window, noise, threshold, k)
    # Judge each move on the whole stretches either side; drop the weakest failing one and judge again.
    while cuts:
        bounds = [0, *cuts, x.size]
        levels = [float(np.median(x[bounds[j] : bounds[j + 1]])) for j in range(len(bounds) - 1)]
        failing = [j for j in range(len(cuts)) if not _passes(levels[j], levels[j + 1], noise, threshold, k)]
        if not failing:
            break
        cuts.pop(min(failing, key=lambda j: abs(levels[j + 1] - levels[j])))
    bounds = [0, *cuts, x.size]
    levels = [float(np.median(x[bounds[j] : bounds[j + 1]])) for j in range(len(bounds) - 1)]
    steps: list[Step] = []
    for j, cut in enumerate(cuts):
        before, after = levels[j], levels[j + 1]
        recovered = None
        for later in range(j + 1, len(cuts)):
            if not beyond(levels[later + 1] / before, threshold):
                recovered = int(keep[cuts[later]])
                break
        steps.append(Step(int(keep[cut]), before, after, after / before - 1, recovered))
    return steps
