"""The metrics a comparison looks at, their directions, and how each is read from a record.

A record may be a nested dict (as ``harness.store.read_runs`` gives) or a flattened row of
``harness.store.load`` (``telemetry.img_per_j``); NaN, None, missing keys and non-numbers all read as "no value",
so nothing downstream divides by a null.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.regress.stats import median_rows


def number(value: Any, text: bool = False) -> float | None:
    """``value`` as a finite float, or None: the one rule by which the harness reads a number from a record.

    A number is an int or a float (numpy's included) that is finite; a boolean is not a number, and None, NaN,
    infinities and other types read as None. With ``text=True`` a string that spells a finite number is read too:
    the report shows what a hand-edited record holds in its untyped nested groups (telemetry, accuracy, profile
    operators), while a comparison never judges on text (the loader types every top-level field, so only those
    groups can hold text at all).
    """
    if type(value) is float:  # the common case, first: a record's numbers are floats (the rest of the rule below)
        return value if math.isfinite(value) else None
    if isinstance(value, str) and text:
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer beyond float range is no measurement
        return None
    return value if math.isfinite(value) else None


def field(record: dict[str, Any], name: str) -> Any:
    """A field of a nested or flattened record: ``telemetry.img_per_j`` works on both."""
    if name in record:
        return record[name]
    group, _, key = name.partition(".")
    if key and isinstance(record.get(group), dict):
        return record[group].get(key)
    return None


def step_samples(record: dict[str, Any]) -> np.ndarray | None:
    """The record's step times (ms per step) as an array of positive finite values, or None when it has none."""
    raw = field(record, "samples_ms")
    if raw is None or isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__") or len(raw) == 0:
        return None
    try:
        values = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    values = values[np.isfinite(values) & (values > 0)]
    return values if values.size else None


def _batch_size(record: dict[str, Any]) -> float | None:
    bs = number(field(record, "batch_size"))
    return bs if bs and bs > 0 else None


def _throughput_samples(record: dict[str, Any]) -> np.ndarray | None:
    samples, bs = step_samples(record), _batch_size(record)
    if samples is None or bs is None:
        return None
    return bs * 1000.0 / samples


def _energy_per_img(record: dict[str, Any]) -> float | None:
    img_per_j = number(field(record, "telemetry.img_per_j"))
    return 1.0 / img_per_j if img_per_j and img_per_j > 0 else None


def _plain(name: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda record: number(field(record, name))


@dataclass(frozen=True)
class Metric:
    """One compared quantity: how to read it, which way is better, and (when it has any) its per-step samples.

    ``statistic`` turns resampled per-step samples (one resample per row) into the metric's value, for the
    bootstrap intervals used when a side has few samples. ``timed`` marks a metric measured against the clock
    (throughput, step time, energy per image): other processes on the machine and stalled steps move it, so a
    case measured under noise leaves it inconclusive, while memory is judged as usual.
    """

    name: str
    unit: str
    higher_is_better: bool
    value: Callable[[dict[str, Any]], float | None]
    samples: Callable[[dict[str, Any]], np.ndarray | None] | None = None
    statistic: Callable[[np.ndarray], np.ndarray] | None = None
    timed: bool = False


METRICS: tuple[Metric, ...] = (
    # Per-step throughput (batch_size x 1000 / step ms). The record's throughput_img_s is that of the median step,
    # so the median of the per-step throughputs is its statistic: the figure the summary and the report show.
    Metric("throughput_img_s", "img/s", True, _plain("throughput_img_s"), _throughput_samples, median_rows, True),
    Metric("step_ms_median", "ms", False, _plain("step_ms_median"), step_samples, median_rows, True),
    Metric("peak_allocated_mib", "MiB", False, _plain("peak_allocated_mib")),
    Metric("rss_peak_mib", "MiB", False, _plain("rss_peak_mib")),
    Metric("energy_j_per_img", "J/img", False, _energy_per_img, timed=True),
)

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)


def joined_samples(metric: Metric, records: list[dict[str, Any]]) -> np.ndarray | None:
    """The per-step samples of ``metric`` over ``records``, end to end (each record's ``metric.samples``, of those
    that have any), or None when none has any. The step-time metrics' are made from the records' step lists joined
    first and read as one array, which gives the same values as reading each list on its own (a history of 30
    runs: one conversion, not 30; the judge reads two such metrics for every case)."""
    if metric.samples is None:
        return None
    if metric.samples is step_samples or metric.samples is _throughput_samples:
        joined = _joined_steps(records, per_image=metric.samples is _throughput_samples)
        if joined is not _UNJOINED:
            return joined
    parts = [s for s in (metric.samples(r) for r in records) if s is not None]
    return np.concatenate(parts) if parts else None


_UNJOINED = object()


def _joined_steps(records: list[dict[str, Any]], per_image: bool) -> Any:
    """``step_samples`` (or, ``per_image``, ``_throughput_samples``) of each record, joined; ``_UNJOINED`` when a
    record's steps are not a plain list of values numpy reads as numbers (then each record is read on its own)."""
    raws = [field(r, "samples_ms") for r in records]
    if not all(type(raw) is list for raw in raws):
        return _UNJOINED
    try:
        steps = np.array([x for raw in raws for x in raw], dtype=np.float64)
    except (TypeError, ValueError):
        return _UNJOINED
    if steps.ndim != 1:
        return _UNJOINED
    keep = np.isfinite(steps) & (steps > 0)
    if per_image:
        sizes = [_batch_size(r) for r in records]
        per_step = np.repeat([np.nan if b is None else b for b in sizes], [len(raw) for raw in raws])
        keep &= ~np.isnan(per_step)
        values = per_step[keep] * 1000.0 / steps[keep]
    else:
        values = steps[keep]
    return values if values.size else None


def metric(name: str) -> Metric:
    """The metric called ``name``; a KeyError listing the valid names otherwise."""
    for m in METRICS:
        if m.name == name:
            return m
    raise KeyError(f"unknown metric {name!r}; metrics: {', '.join(METRIC_NAMES)}")
