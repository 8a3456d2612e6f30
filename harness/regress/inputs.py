"""What ``compare`` accepts, brought to one shape: a side is a list of runs, each an index from case key to record.

A run may arrive as a ``harness.store.Run``, a list of record dicts, or a DataFrame from ``harness.store.load``
(split into runs by its ``run_dir`` column, oldest first by ``run_started_at``). Records without a case id are
left out and noted; when a key appears twice in one run (a resumed run that measured a case again) the last
record wins, and that is noted too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError

#: The fields that describe a case (shown beside its key in every output).
CASE_FIELDS = (
    "case_id",
    "model",
    "mode",
    "batch_size",
    "resolution",
    "precision",
    "channels_last",
    "compile",
    "rank",
    "world_size",
)


@dataclass
class RunSide:
    """One run's records by case key, with a label for output (its folder, else its run id)."""

    label: str
    index: dict[str, dict[str, Any]]
    started_at: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class Side:
    """The baseline (one run or a history, oldest first) or the candidate (one run), and what was left out."""

    runs: list[RunSide]
    notes: list[str] = field(default_factory=list)


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _int(value: Any, default: int) -> int:
    value = _clean(value)
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def case_key(record: dict[str, Any]) -> str | None:
    """The key cases match on: the case id, with ``[rank R/W]`` appended for a record of a multi-rank DDP case."""
    case_id = _clean(record.get("case_id"))
    if not case_id:
        return None
    world = _int(record.get("world_size"), 1)
    return f"{case_id} [rank {_int(record.get('rank'), 0)}/{world}]" if world > 1 else str(case_id)


def case_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The identifying fields of a record (model, mode, batch size, ...), NaN read as None."""
    return {name: _clean(record.get(name)) for name in CASE_FIELDS}


def index_records(records: list[dict[str, Any]], label: str, notes: list[str]) -> dict[str, dict[str, Any]]:
    """Records by case key (the last one of a repeated key wins); what is left out is appended to ``notes``."""
    index: dict[str, dict[str, Any]] = {}
    unnamed = 0
    repeated: dict[str, int] = {}
    for record in records:
        key = case_key(record)
        if key is None:
            unnamed += 1
            continue
        if key in index:
            repeated[key] = repeated.get(key, 1) + 1
        index[key] = record
    if unnamed:
        notes.append(f"{label}: {unnamed} record(s) without a case_id left out")
    for key, n in repeated.items():
        notes.append(f"{label}: case {key} appears {n} times; the last record is used")
    return index


def _from_run(run: Any, notes: list[str]) -> RunSide:
    label = str(run.path)
    notes.extend(f"{label}: {note}" if label not in note else note for note in run.skipped)
    notes.extend(getattr(run, "notes", []))
    return RunSide(label, index_records(run.records, label, notes), run.manifest.get("started_at"), run.manifest)


def _from_records(records: list[dict[str, Any]], role: str, notes: list[str]) -> RunSide:
    label = str(_clean(records[0].get("run_dir")) or _clean(records[0].get("run_id")) or role) if records else role
    started = _clean(records[0].get("run_started_at")) if records else None
    return RunSide(label, index_records(records, label, notes), started)


def _from_frame(frame: Any, role: str, notes: list[str]) -> list[RunSide]:
    records = frame.to_dict("records")
    if "run_dir" not in frame.columns:
        return [_from_records(records, role, notes)]
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(str(record.get("run_dir")), []).append(record)
    runs = [_from_records(group, role, notes) for group in groups.values()]
    return sorted(runs, key=lambda r: (r.started_at or "", r.label))


def _runs(obj: Any, role: str, notes: list[str]) -> list[RunSide]:
    if isinstance(obj, Side):
        notes.extend(obj.notes)
        return list(obj.runs)
    if hasattr(obj, "records") and hasattr(obj, "manifest"):
        return [_from_run(obj, notes)]
    if hasattr(obj, "columns") and hasattr(obj, "to_dict"):
        return _from_frame(obj, role, notes)
    if isinstance(obj, (list, tuple)):
        if obj and all(isinstance(r, dict) for r in obj):
            return [_from_records(list(obj), role, notes)]
        return [run for item in obj for run in _runs(item, role, notes)]
    raise HarnessError(f"cannot compare a {type(obj).__name__} as the {role}; give runs, records or a DataFrame")


def as_side(obj: Any, role: str) -> Side:
    """Bring ``obj`` (a Run, records, a DataFrame, or a list of those) to a Side; HarnessError when it is empty."""
    if isinstance(obj, Side):
        return obj
    notes: list[str] = []
    runs = _runs(obj, role, notes)
    if not any(run.index for run in runs):
        where = ", ".join(run.label for run in runs) or "nothing was given"
        raise HarnessError(f"the {role} holds no records to compare ({where}); check the run folder and its records")
    for run in runs:
        if not run.index:
            notes.append(f"{run.label}: no records; this run adds nothing to the {role}")
    return Side(runs, notes)
