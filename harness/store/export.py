"""Export records to CSV or Parquet. List and dict cells become JSON text in CSV; Parquet keeps lists."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import StoreError
from harness.store.index import StoreIndex, records_table
from harness.store.rundir import MANIFEST, file_mode
from harness.store.skips import Skip


def _format(out: Path, fmt: str | None) -> str:
    """The export format from ``fmt`` or the file's suffix; a StoreError when unknown or pyarrow is missing."""
    fmt = (fmt or out.suffix.lstrip(".") or "csv").lower()
    if fmt not in ("csv", "parquet"):
        raise StoreError(f"unknown export format {fmt!r}; valid: csv, parquet")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise StoreError(
                "Parquet export needs pyarrow: pip install 'harness[parquet]', or export to .csv"
            ) from None
    return fmt


def export(frame, out: Path, fmt: str | None = None) -> Path:
    """Write ``frame`` to ``out`` as CSV or Parquet (from ``fmt`` or the file's suffix); returns the path. The file
    is written through a temporary file and a rename, so a failed export leaves no half file; a path that cannot
    be written is a StoreError."""
    out = Path(out)
    fmt = _format(out, fmt)
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (list, dict))).any():
            if fmt == "csv":
                frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
            elif frame[column].map(lambda v: isinstance(v, dict)).any():
                frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, dict) else v)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
        os.close(fd)
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.chmod(tmp, file_mode())
        os.replace(tmp, out)
        tmp = None
    except OSError as exc:
        raise StoreError(f"cannot write {out} ({exc.strerror or exc}); choose a writable path with -o FILE") from None
    except (ValueError, TypeError) as exc:  # pyarrow cannot type a column (values of mixed types)
        raise StoreError(f"cannot write {out} as Parquet ({str(exc)[:200]}); export to .csv instead") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return out


# -- a whole store, run by run ------------------------------------------------------------------------------------


#: Rows written at once (a Parquet row group): a few dozen runs' records.
BATCH_ROWS = 32_768


@dataclass
class Part:
    """One run to export: its folder, its manifest (or summary) and how to read its records table."""

    path: Path
    manifest: dict[str, Any]
    read: Callable[[], Any]
    file: Path | None = None  # the index's Parquet file of the records, when it has one
    schema: Any = None  # the records' Arrow schema, when the index knows it


def gather(paths: Iterable[str | Path]) -> tuple[list[Part], list[Skip], list[StoreIndex]]:
    """The runs named by ``paths`` as parts to export, what was skipped, and the indexes used (to save).

    A results tree is read through its index (``harness.store.index``): the records tables of runs that did not
    change since the last command are read from it, the others are made (by the loader) and kept. A run folder is
    read through the index too, in memory; a records file given directly is read by the loader. What is skipped,
    and the errors for a missing path or a folder without runs, are those of ``harness.store.loader.read_store``.
    """
    from harness.store.loader import input_path, read_store

    parts: list[Part] = []
    skips: list[Skip] = []
    indexes: list[StoreIndex] = []
    for p in paths:
        p = input_path(p)
        if p.is_file():
            store = read_store([p])
            skips += store.all_skips
            parts += [Part(run.path, run.manifest, lambda run=run: records_table(run.records)) for run in store.runs]
            continue
        index = StoreIndex(p)
        indexes.append(index)
        before = len(skips)
        runs = index.runs(skips)
        if not runs and len(skips) == before:
            raise StoreError(f"{p} holds no run folders (no {MANIFEST} at or below it)")
        for run in index.tables(runs):
            skips += run.skips
            read = lambda run=run, index=index: index.read_table(run)  # noqa: E731
            parts.append(Part(run.path, run.summary or {}, read, run.table, run.schema))
    return parts, skips, indexes


def run_columns(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The run-level columns every record of a run gets (as ``harness.store.loader.runs_to_frame``)."""
    env = manifest.get("environment") or {}
    return {
        "run_dir": str(path),
        "run_started_at": manifest.get("started_at"),
        "source": manifest.get("source") or "harness",
        **{f"env.{k}": v for k, v in env.items() if not isinstance(v, (dict, list))},
    }


def _common_type(types: list[Any]):
    """One Arrow type for a column that runs hold in ``types``: the type itself, a number for integers and
    floats, else text."""
    import pyarrow as pa

    kinds = {t for t in types if not pa.types.is_null(t)}
    if not kinds:
        return pa.null()
    if len(kinds) == 1:
        return kinds.pop()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in kinds):
        return pa.float64()
    return pa.string()


def _conform(array, kind):
    """``array`` as ``kind``: cast, or (lists and objects into text) each value as JSON text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if array.type == kind:
        return array
    if pa.types.is_string(kind) and pa.types.is_list(array.type):
        element = array.type.value_type
        if pa.types.is_integer(element) or pa.types.is_floating(element):
            return _numbers_as_json(array)
        if _all_empty(array):  # tags, noise: most often []
            return pc.if_else(pc.is_null(array), pa.scalar(None, pa.string()), pa.scalar("[]"))
    try:
        return array.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.array([_json_text(v) for v in array.to_pylist()], type=pa.string())


def _all_empty(array) -> bool:
    import pyarrow.compute as pc

    return (pc.max(pc.list_value_length(array)).as_py() or 0) == 0


def _numbers_as_json(array):
    """A list<number> array as JSON text per row (``[1.5,2.0]``), null where the list is null; in Arrow, not row
    by row in Python (step-time lists are most of a store's bytes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    joined = pc.binary_join(array.cast(pa.list_(pa.string())), ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def _json_text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else json.dumps(value, default=str)


def _for_csv(kind):
    import pyarrow as pa

    nested = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_struct(kind)
    return pa.string() if nested else kind


def export_parts(parts: list[Part], out: Path, fmt: str | None = None) -> int:
    """Write the records of ``parts`` to ``out`` as CSV or Parquet, one run at a time (memory: one run's records),
    with the run-level columns of ``run_columns``; returns how many records were written. Lists are JSON text in
    CSV and lists in Parquet. Written through a temporary file and a rename, like ``export``."""
    import pyarrow as pa

    out = Path(out)
    fmt = _format(out, fmt)
    runs = [run_columns(part.path, part.manifest) for part in parts]
    run_names = list(dict.fromkeys(k for r in runs for k in r))
    run_table = pa.table({n: _run_column([r.get(n) for r in runs]) for n in run_names}) if runs else None
    schemas = [_schema(part) for part in parts]
    names = list(dict.fromkeys(name for s in schemas for name in s.names if name not in run_names))
    fields = [pa.field(n, _common_type([s.field(n).type for s in schemas if n in s.names])) for n in names]
    fields += [run_table.schema.field(n) for n in run_names] if run_table is not None else []
    fields = [pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in fields]
    if fmt == "csv":
        fields = [pa.field(f.name, _for_csv(f.type)) for f in fields]
    schema = pa.schema(fields)
    rows = 0
    run_set = set(run_names)
    with _atomic(out) as tmp:
        writer = _writer(tmp, schema, fmt)
        pending: list[Any] = []
        try:
            for i, part in enumerate(parts):
                table = part.read()
                n = table.num_rows
                if not n:
                    continue
                constants = run_table.take(pa.array([i] * n, type=pa.int32()))
                present = set(table.column_names)  # (a new list of names each time it is asked for)
                columns = []
                for f in schema:
                    if f.name in run_set:
                        array = _array(constants.column(f.name))
                    elif f.name in present:
                        array = _array(table.column(f.name))
                    else:
                        array = pa.nulls(n, type=f.type)
                    columns.append(_conform(array, f.type))
                pending.append(pa.Table.from_arrays(columns, schema=schema))
                rows += n
                if sum(t.num_rows for t in pending) >= BATCH_ROWS:
                    writer.write_table(pa.concat_tables(pending))
                    pending = []
            if pending:
                writer.write_table(pa.concat_tables(pending))
        finally:
            writer.close()
    return rows


def _array(column):
    """A column as one array: its only chunk as it is (``combine_chunks`` would copy it), else its chunks joined."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _run_column(values: list[Any]):
    from harness.store.index import column

    return column("", values, {})


def _schema(part: Part):
    """A part's records schema: as the index keeps it, else from its Parquet file's footer, else from reading it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if part.schema is not None:
        return part.schema
    if part.file is not None:
        try:
            return pq.read_schema(part.file)
        except (OSError, pa.ArrowException):
            pass  # damaged: read (again) from the records
    return part.read().schema


def _writer(path: Path, schema, fmt: str):
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetWriter(path, schema)
    import pyarrow.csv as pcsv

    return pcsv.CSVWriter(path, schema)


@contextlib.contextmanager
def _atomic(out: Path):
    """A temporary path beside ``out`` that becomes ``out`` when the block ends without an error."""
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, out)
        tmp = None
    except OSError as exc:
        raise StoreError(f"cannot write {out} ({exc.strerror or exc}); choose a writable path with -o FILE") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
