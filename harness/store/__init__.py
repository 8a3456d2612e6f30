"""Results store: record schema, environment fingerprint, run folders, loading and export.

``harness.store.load(paths) -> pandas.DataFrame`` is the entry point for scripts and notebooks.
"""

from __future__ import annotations

from harness.store.loader import Run, find_runs, load, read_run, read_runs
from harness.store.record import RECORD_FIELDS, SCHEMA_VERSION, Record

__all__ = ["RECORD_FIELDS", "SCHEMA_VERSION", "Record", "Run", "find_runs", "load", "read_run", "read_runs"]
