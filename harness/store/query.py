"""SQL over a results store: every record of every run, with its run's manifest, as one DuckDB view ``records``.

``connect(root)`` reads the store through its index (``harness.store.index``: the records tables of runs that did
not change are not read again) and returns a DuckDB connection with the view ``records``: one row per valid record
(what ``harness.store.load`` reads), with

- the record's fields by name (``case_id``, ``model``, ``mode``, ``batch_size``, ``precision``, ``channels_last``,
  ``throughput_img_s``, ``samples_ms`` (a list), ``status``, ``noisy``, ``run_id``, ``suite``, ``started_at`` (the
  case's start, text), ...), the nested groups as ``group_field`` (``telemetry_power_avg_w``,
  ``numerics_top1_agreement``, ``contention_steal_pct``, ...);
- its run's manifest, flattened: ``run_dir`` (the run folder), ``run_started_at`` and ``run_finished_at``
  (TIMESTAMP, UTC), ``run_status``, ``run_suite`` (the suite's name), ``run_source`` (``harness``, or the
  importer of published results), ``fingerprint`` (a 12-digit digest of the fingerprint fields that must match for
  runs to be compared: the same value means the same device, torch, CUDA, driver, ... ) and every field of the
  environment fingerprint as ``env_<field>`` (``env_device_name``, ``env_torch``, ``env_cuda``, ``env_driver``,
  ``env_host``, ``env_cpu_model``, ``env_gpu_power_limit_w``, ...).

DuckDB is an optional dependency (``pip install 'harness[query]'``); pyarrow is needed too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, StoreError
from harness.store.export import Part, gather
from harness.store.fingerprint import comparable_key
from harness.store.index import INDEX_DIR
from harness.store.skips import Skip

INSTALL = "pip install 'harness[query]'"


def fingerprint_digest(environment: dict[str, Any]) -> str | None:
    """12 hex digits naming the comparable part of a fingerprint (``comparable_key``); None without one."""
    if not environment:
        return None
    key = json.dumps(comparable_key(environment), sort_keys=True, default=str)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.astimezone(timezone.utc).replace(tzinfo=None) if stamp.tzinfo is not None else stamp


def run_row(part: Part, file: str) -> dict[str, Any]:
    """The run-level columns of one run of the view."""
    manifest = part.manifest
    env = manifest.get("environment") or {}
    suite = manifest.get("suite")
    return {
        "_file": file,
        "run_dir": str(part.path),
        "run_started_at": _timestamp(manifest.get("started_at")),
        "run_finished_at": _timestamp(manifest.get("finished_at")),
        "run_status": manifest.get("status"),
        "run_suite": suite.get("name") if isinstance(suite, dict) else suite,
        "run_source": manifest.get("source") or "harness",
        "fingerprint": fingerprint_digest(env),
        **{f"env_{k}": v for k, v in env.items() if not isinstance(v, (dict, list))},
    }


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextlib.contextmanager
def connect(root: str | Path, skips: list[Skip] | None = None):
    """A DuckDB connection over the store at ``root`` with the view ``records`` (see the module docstring), for
    the ``with`` block. ``skips`` gets what the loader left out. A HarnessError when DuckDB is missing, the folder
    does not exist or holds no run."""
    try:
        import duckdb
    except ImportError:
        raise HarnessError(f"harness query needs DuckDB, which is not installed: {INSTALL}") from None
    root = Path(root)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        raise StoreError(f"{root} {what}; pass a results folder (or a run folder) to query")
    parts, found, indexes = gather([root])
    if skips is not None:
        skips.extend(found)
    if not parts:
        raise StoreError(f"{root} holds no readable run: " + "; ".join(str(s) for s in found))
    for index in indexes:
        index.save()
    with tempfile.TemporaryDirectory(prefix="harness-query-") as scratch:
        con = _view(duckdb, parts, Path(scratch))
        try:
            yield con
        finally:
            con.close()


def _view(duckdb, parts: list[Part], scratch: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.store.index import column

    files, rows, columns = [], [], {}
    for i, part in enumerate(parts):
        if part.file is not None:
            file = str(part.file.resolve())
        else:  # a run read without an index (a run folder, or a tree that cannot be written): a scratch file
            file = str(scratch / f"{i}.parquet")
            pq.write_table(part.read(), file)
        files.append(file)
        rows.append(run_row(part, file))
        schema = part.schema if part.schema is not None else pq.read_schema(file)
        columns.update(dict.fromkeys(schema.names))
    names = list(dict.fromkeys(k for r in rows for k in r))
    runs = pa.table({n: column(n, [r.get(n) for r in rows], {}) for n in names})
    con = duckdb.connect()
    con.register("harness_runs", runs)
    select = ", ".join(f"r.{_quote(c)} AS {_quote(c.replace('.', '_'))}" for c in columns)
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    try:
        con.execute(
            f"CREATE VIEW records AS SELECT {select}, u.* EXCLUDE (_file) FROM read_parquet([{listed}], "
            "union_by_name = true, filename = true) r JOIN harness_runs u ON r.filename = u._file"
        )
    except duckdb.Error as exc:  # a table of the index damaged since it was checked
        con.close()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(
            f"the store's index cannot be read ({first}); delete its {INDEX_DIR} folder (it is made again) and "
            "run the query again"
        ) from None
    return con
