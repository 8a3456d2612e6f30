"""Reading results back: run folders, records files or whole results trees, into one pandas DataFrame.

``load(paths)`` accepts run folders, ``records*.jsonl`` files, or folders that hold runs at any depth. Each row is
one record with every field of ``harness.store.record.Record`` (nested groups flattened as ``telemetry.power_avg_w``,
``numerics.top1_agreement``, ``profile.trace_dir``, ...), plus run-level columns: ``run_dir``,
``run_started_at`` and ``env.<field>`` from the manifest's environment fingerprint. Records of an older schema
version are migrated; records of a newer one are skipped with a warning. Nothing here imports torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import StoreError
from harness.store.record import SCHEMA_VERSION, normalise
from harness.store.rundir import MANIFEST, MERGED, read_jsonl, read_manifest

#: version -> function turning a record of that version into one of version + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # Version 0 records (before the schema was versioned) named the throughput interval ``ci95``.
    0: lambda r: {**{k: v for k, v in r.items() if k != "ci95"}, "throughput_ci95": r.get("ci95"), "schema_version": 1},
}

GROUPS = ("telemetry", "numerics", "profile")


@dataclass
class Run:
    """One run folder: its manifest, its records (normalised to the current schema) and what was skipped."""

    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]
    skipped: list[str] = field(default_factory=list)


def migrate(record: dict[str, Any], skipped: list[str] | None = None, where: str = "") -> dict[str, Any] | None:
    """Bring ``record`` to the current schema version; None (and a note) when it is from a newer version."""
    version = record.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        note = (
            f"{where}: record of schema version {version!r} is newer than {SCHEMA_VERSION}; upgrade harness to read it"
        )
        warnings.warn(note, stacklevel=3)
        if skipped is not None:
            skipped.append(note)
        return None
    while version < SCHEMA_VERSION:
        record = MIGRATIONS[version](record)
        version = record["schema_version"]
    return normalise(record)


def read_run(path: Path) -> Run:
    """Read one run folder: the merged ``records.jsonl`` if present, else every ``records-rank*.jsonl``."""
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"{path} does not exist or is not a folder")
    manifest = read_manifest(path)
    skipped: list[str] = []
    # The rank files are what the workers append to; the merged file is a copy made at the end of a run, and is
    # stale when a rank file changed after it (a resumed run that died before merging again).
    files = sorted(path.glob("records-rank*.jsonl"), key=lambda p: int("".join(filter(str.isdigit, p.stem)) or 0))
    merged = path / MERGED
    if merged.is_file() and all(f.stat().st_mtime <= merged.stat().st_mtime for f in files):
        files = [merged]
    raw: list[dict[str, Any]] = []
    for f in files:
        raw.extend(read_jsonl(f, skipped))
    records = [r for r in (migrate(x, skipped, str(path)) for x in raw) if r is not None]
    recorded = {r.get("case_id") for r in records}
    unrecorded = [cid for cid in manifest.get("case_ids") or [] if cid not in recorded]
    if unrecorded:
        head = ", ".join(unrecorded[:5]) + (f" and {len(unrecorded) - 5} more" if len(unrecorded) > 5 else "")
        skipped.append(f"{path}: {len(unrecorded)} case(s) of the run have no record ({head})")
    return Run(path, manifest, records, skipped)


def find_runs(root: Path) -> list[Path]:
    """Every run folder (a folder with a manifest) at or below ``root``, oldest first by start time."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return [root]
    runs = [p.parent for p in root.rglob(MANIFEST)]
    return sorted(runs, key=lambda p: (read_manifest(p).get("started_at") or "", str(p)))


def read_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Read every run named by ``paths`` (run folders, records files, or trees of runs)."""
    runs: list[Run] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise StoreError(f"{p} does not exist; pass a run folder, a records .jsonl file, or a results folder")
        if p.is_file():
            skipped: list[str] = []
            records = [r for r in (migrate(x, skipped, str(p)) for x in read_jsonl(p, skipped)) if r is not None]
            manifest = read_manifest(p.parent) if (p.parent / MANIFEST).is_file() else {}
            runs.append(Run(p.parent, manifest, records, skipped))
            continue
        found = find_runs(p)
        if not found:
            raise StoreError(f"{p} holds no run folders (no {MANIFEST} at or below it)")
        runs.extend(read_run(r) for r in found)
    return runs


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """A record with its nested groups spread into ``group.field`` keys."""
    flat = {k: v for k, v in record.items() if k not in GROUPS}
    for group in GROUPS:
        for key, value in (record.get(group) or {}).items():
            flat[f"{group}.{key}"] = value
    return flat


def runs_to_frame(runs: list[Run]):
    """One DataFrame of all records of ``runs``, with run-level columns (``run_dir``, ``env.*``)."""
    import pandas as pd

    from harness.store.record import RECORD_FIELDS

    rows = []
    for run in runs:
        env = run.manifest.get("environment") or {}
        extra = {
            "run_dir": str(run.path),
            "run_started_at": run.manifest.get("started_at"),
            "source": (run.manifest.get("source") or "harness"),
            **{f"env.{k}": v for k, v in env.items() if not isinstance(v, (dict, list))},
        }
        rows.extend({**flatten(r), **extra} for r in run.records)
    if not rows:
        columns = [c for c in RECORD_FIELDS if c not in GROUPS] + ["run_dir", "run_started_at", "source"]
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(rows)


def load(paths: str | Path | Iterable[str | Path]):
    """Load records from run folders, records files or results trees into a pandas DataFrame (see module doc)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return runs_to_frame(read_runs(paths))
