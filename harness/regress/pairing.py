"""Pairings of the hardware comparison: which record of each run stands beside a case of the others.

A pairing is the one part of ``harness.regress.hardware_compare`` that differs between its two uses; the rows,
labels, notes and geometric means around it are the same for both.

- ``EXACT``: the same case on every run. Cases match on model, mode, batch size, resolution, precision and
  channels_last, and world size for DDP. Every case of every run is a row, so a case that some runs lack shows
  as missing there (and has no speedup when the first run lacks it).
- ``NEAREST_BATCH``: the published-matching rule (``PUBLISHED_RULE``), for measured runs held against imported
  published figures. Cases match on model, mode, resolution, precision and memory format; batch size is not
  matched, because published files use their own (timm's inference files run 256 to 2048 images per batch):
  among the matching cases of a run the one whose batch size is nearest on a log scale is taken (the larger on a
  tie). Compile is matched only when both sides record it (a record's ``compile`` is null when its source did
  not say). The cases are those of the first run; a case of another run that matches none of them is counted in
  a note, not shown. Only ``ok`` records take part in a match.

``pairing_for(runs)`` picks ``NEAREST_BATCH`` when measured and imported runs are mixed, ``EXACT`` otherwise.
Imports neither torch nor pandas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.regress.metrics import number
from harness.store.record import Status

Index = dict[tuple, dict[str, Any]]

#: The fields that name one case under ``EXACT`` (with the world size).
CASE_FIELDS = ("model", "mode", "batch_size", "resolution", "precision", "channels_last")
#: The fields that must be equal under ``NEAREST_BATCH`` (batch size is chosen, compile checked apart).
PUBLISHED_FIELDS = ("model", "mode", "resolution", "precision", "channels_last")

EXACT_RULE = (
    "cases match on model, mode, batch_size, resolution, precision and channels_last (and world size for DDP); "
    "speedup = throughput / the first run's throughput for the same case; geometric mean per mode and precision"
)
PUBLISHED_RULE = (
    "cases match on model, mode, resolution, precision and memory format (channels_last); batch size is not "
    "matched (the nearest published batch size is taken), and compile only when both sides record it"
)


def world_size(record: dict[str, Any]) -> int:
    """The record's world size (1 when it has none)."""
    return int(number(record.get("world_size")) or 1)


def is_ok(record: dict[str, Any] | None) -> bool:
    """True for a record that measured something (status ``ok``)."""
    return record is not None and record.get("status") == Status.OK


def is_published(run: Any) -> bool:
    """True for an imported run (its manifest names a ``source`` other than the harness); False for a run the
    harness measured."""
    source = (run.manifest or {}).get("source")
    return bool(source) and source != "harness"


def mixes_sources(runs: Sequence[Any]) -> bool:
    """True when ``runs`` hold both measured and imported runs, the case ``NEAREST_BATCH`` is for."""
    return {is_published(r) for r in runs} == {True, False}


@dataclass(frozen=True)
class Pair:
    """One case of a comparison: its label, and the record each run holds for it (None where a run has none),
    in run order; ``records[0]`` is the reference."""

    label: str
    records: list[dict[str, Any] | None]


class Pairing(Protocol):
    """How a hardware comparison pairs cases. ``key`` names a case within one run (records of one run with one
    key are one case: the comparison keeps one of them); ``pairs`` takes each run's cases by key, in run order,
    and returns the comparison's cases; ``notes`` says what the pairing left out. ``rule`` is stated in every
    output."""

    rule: str

    def key(self, record: dict[str, Any]) -> tuple: ...

    def pairs(self, indexes: list[Index]) -> list[Pair]: ...

    def notes(self, indexes: list[Index], pairs: list[Pair], labels: list[str]) -> list[str]: ...


class ExactPairing:
    """The same case on every run (see the module docstring)."""

    rule = EXACT_RULE

    def key(self, record: dict[str, Any]) -> tuple:
        return (*(record.get(f) for f in CASE_FIELDS), world_size(record))

    def pairs(self, indexes: list[Index]) -> list[Pair]:
        keys = dict.fromkeys(k for index in indexes for k in index)
        return [Pair(_exact_label(k), [index.get(k) for index in indexes]) for k in keys]

    def notes(self, indexes: list[Index], pairs: list[Pair], labels: list[str]) -> list[str]:
        unmatched = sum(1 for p in pairs if p.records[0] is None)
        return [f"{unmatched} case(s) are not in the first run and have no speedup"] if unmatched else []


def _exact_label(key: tuple) -> str:
    model, mode, bs, res, precision, cl, world = key
    text = f"{model}/{mode}/bs{bs}/{precision}" + ("/cl" if cl else "") + f"/r{res}"
    return text + (f"/ws{world}" if world > 1 else "")


class NearestBatchPairing:
    """The published-matching rule (see the module docstring): the cases of the first run, each beside the
    nearest-batch match of every other run."""

    rule = PUBLISHED_RULE + "; speedup = throughput / the first run's throughput for the matched case"

    def key(self, record: dict[str, Any]) -> tuple:
        return (*(record.get(f) for f in PUBLISHED_FIELDS), record.get("batch_size"), record.get("compile"),
                world_size(record))  # fmt: skip

    def pairs(self, indexes: list[Index]) -> list[Pair]:
        out = []
        candidates = [list(index.values()) for index in indexes[1:]]
        for record in indexes[0].values():
            ok = is_ok(record)
            records = [record] + [best_match(record, c) if ok else None for c in candidates]
            out.append(Pair(_published_label(record, [r["batch_size"] if r else None for r in records]), records))
        return out

    def notes(self, indexes: list[Index], pairs: list[Pair], labels: list[str]) -> list[str]:
        out = []
        for i in range(1, len(indexes)):
            used = {id(p.records[i]) for p in pairs if p.records[i] is not None}
            unused = sum(1 for r in indexes[i].values() if is_ok(r) and id(r) not in used)
            if unused:
                out.append(f"{labels[i]}: {unused} case(s) match no case of the first run and are not shown")
        return out


def _published_label(record: dict[str, Any], batches: list[Any]) -> str:
    text = f"{record['model']}/{record['mode']}/{record['precision']}" + ("/cl" if record.get("channels_last") else "")
    text += f"/r{record['resolution']}" + ("/compile" if record.get("compile") else "")
    text += f"/ws{world_size(record)}" if world_size(record) > 1 else ""
    return text + " bs " + " | ".join("-" if b is None else str(b) for b in batches)


def known(value: Any) -> bool:
    """False for a missing value: None, or NaN (a null in a DataFrame)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def best_match(record: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate that ``record`` is compared with under ``PUBLISHED_RULE``, or None. ``candidates`` are records
    (dicts with the case fields, ``batch_size`` and ``status``); only ``ok`` ones with a batch size are
    considered."""
    batch = number(record.get("batch_size"))
    if not batch or batch <= 0:
        return None
    key = tuple(record.get(f) for f in PUBLISHED_FIELDS)
    fits = [
        c
        for c in candidates
        if is_ok(c)
        and (number(c.get("batch_size")) or 0) > 0
        and tuple(c.get(f) for f in PUBLISHED_FIELDS) == key
        and (
            not (known(record.get("compile")) and known(c.get("compile")))
            or bool(record["compile"]) == bool(c["compile"])
        )
    ]
    if not fits:
        return None
    return min(fits, key=lambda c: (abs(math.log2(c["batch_size"] / batch)), -c["batch_size"]))


EXACT: Pairing = ExactPairing()
NEAREST_BATCH: Pairing = NearestBatchPairing()


def pairing_for(runs: Sequence[Any]) -> Pairing:
    """``NEAREST_BATCH`` when ``runs`` mix measured and imported runs (their batch sizes differ by design),
    ``EXACT`` otherwise."""
    return NEAREST_BATCH if mixes_sources(runs) else EXACT
