"""The store index: what a results tree holds, remembered between commands so a fleet of runs reads fast.

The JSONL records and the manifests stay the written truth; the index is a cache of what the loader made of them,
kept at the root of the results tree a command reads, in ``<root>/.harness-index/`` (``INDEX_DIR``):

    index.json            per run folder (by its path under the root): the size and mtime of its manifest and
                          records files when they were read, the manifest without its case lists (``summary``) or
                          why it could not be read, what the loader skipped and noted in the run, and its records
                          table's file and Arrow schema (the schemas kept once each: runs share them)
    runs/<run>-<key>.parquet   the run's valid records, one row each, columns as ``harness.store.load`` gives
                          them (nested groups as ``group.field``), named by the run and a digest of its key

An entry is used only while every file it was made from has the size and mtime it had (``os.stat``, nanoseconds);
a run whose manifest or records changed, was added, or was removed is read again from its files, and its entry
replaced. So an edited records file is what the next command sees; the index is never trusted over the JSONL.
What the loader skipped in a run (a corrupt line, an invalid record) is kept with the entry and reported again,
the same way, each time the entry is used.

A run the index has not seen (a store read for the first time) is read as the loader reads it, sooner: its
manifest's case lists, nearly all of its bytes and the same in every run of a suite, are parsed once for all the
runs that share them (``read_manifest(shared=True)``), and its records are checked as Arrow columns
(``harness.store.columns``), with the loader's line-by-line check for any run that check does not vouch for.

Several processes may build the index of one tree at once: every file is written to a temporary file and renamed
into place, and a table's file name carries the digest of the files it was made from, so a reader never sees half
a file or a table of other records than its entry names; when two writers race, the last ``index.json`` wins and
the other's new entries are made again next time. A tree that cannot be written (a read-only share) is read
without an index. A run folder read on its own is never indexed (``RunFolder`` owns that folder's names).

Nothing here imports torch; pyarrow is needed only for the records tables (``harness export`` of a tree,
``harness query``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.store.record import _RULES, GROUPS, RECORD_FIELDS
from harness.store.rundir import MANIFEST, ManifestError, RunFolder, file_mode, read_manifest
from harness.store.skips import Skip, note

INDEX_DIR = ".harness-index"
INDEX_FILE = "index.json"
TABLES = "runs"
#: Bumped when what an entry holds changes: an index of another version is rebuilt, not read.
VERSION = 3
#: Manifest fields left out of a run's summary: the case lists, the bulk of a manifest of a large suite.
BULKY = ("cases", "case_ids")
#: Stale runs from which their tables are made by several processes (``StoreIndex.tables``): a table takes ~20 ms
#: to make (the column check, ``harness.store.columns``), a worker process ~1 s to start (its imports), so fewer
#: runs are made sooner here (64 runs of 500 records on 2 CPUs, with another job running: 2.2-3.2 s in this
#: process, 5.5 s in two workers).
POOL_MIN = 200
#: New manifests from which ``StoreIndex.runs`` reads them in ``READ_THREADS`` threads: parsing holds the GIL, but
#: reading the files does not, and a store read for the first time is mostly not in the page cache yet (1,000
#: manifests of 750 kB: 0.6-0.7 s in 4 threads against 0.9-1.0 s in one; 0.32 s against 0.28 s once cached).
THREADS_MIN, READ_THREADS = 64, 4
#: New runs from which ``StoreIndex.read_runs`` checks records as columns: loading pyarrow (~0.2 s) costs more than
#: the line-by-line check of a few runs of 500 records (~50 ms each) saves.
VOUCH_MIN = 8
#: Threads that read and column-check those runs ahead of the one whose records are being made, 2 runs ahead each (so
#: memory does not grow with the runs read): Arrow's parse lets go of the GIL, so it goes on beside the making of
#: records (``compare --history 30`` read for the first time: 1.82-1.89 s in 2 threads against 1.95-2.03 s in one;
#: one thread ahead gains nothing).
VOUCH_THREADS = 2
#: Folders inside a run folder that hold no runs (not walked).
_NOT_RUNS = {RunFolder.PROFILES, RunFolder.LOGS, INDEX_DIR}


def walk(root: Path) -> tuple[list[Path], list[Path]]:
    """The folders at or below ``root`` that hold a manifest, and those that hold ``records*.jsonl`` files, each
    sorted. One pass over the tree; the index, profiles and logs folders are not entered."""
    manifests, records = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _NOT_RUNS]
        if MANIFEST in files:
            manifests.append(Path(folder))
        if any(f.startswith("records") and f.endswith(".jsonl") for f in files):
            records.append(Path(folder))
    return sorted(manifests), sorted(records)


def orphans(runs: list[Path], held: list[Path]) -> list[Path]:
    """The folders of ``held`` (folders with records files) that are neither a run folder of ``runs`` nor inside
    one."""
    runs_set = set(runs)
    return [f for f in held if f not in runs_set and not any(p in runs_set for p in f.parents)]


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def run_key(path: Path) -> list[Any]:
    """What a run's entry is valid for: the size and mtime of its manifest and of every records file in it."""
    names = [MANIFEST, *RunFolder.holds_records(path)]
    return [[name, *(_stat(path / name) or [None, None])] for name in names]


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its case lists (``BULKY``, the resolved suite's ``cases`` and each rank's)."""
    out = {k: v for k, v in manifest.items() if k not in BULKY}
    if isinstance(out.get("suite"), dict) and "cases" in out["suite"]:
        out["suite"] = {k: v for k, v in out["suite"].items() if k != "cases"}
    if isinstance(out.get("ranks"), dict):
        out["ranks"] = {r: {k: v for k, v in i.items() if k != "cases"} if isinstance(i, dict) else i
                        for r, i in out["ranks"].items()}  # fmt: skip
    return out


def _digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


_RUN = "\x00run\x00"  # stands for the run folder's path in stored messages (the root may be spelled otherwise)


def _pack(skip: Skip, path: Path) -> list[str]:
    p = str(path)
    return [skip.where.replace(p, _RUN), skip.kind, skip.message.replace(p, _RUN)]


def _unpack(item: list[str], path: Path) -> Skip:
    p = str(path)
    return Skip(item[0].replace(_RUN, p), item[1], item[2].replace(_RUN, p))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class RunEntry:
    """One run of an indexed tree: its folder, its manifest summary (or why it could not be read) and, once made,
    its records table (``table``: the Parquet file) with what the loader skipped and noted."""

    path: Path
    summary: dict[str, Any] | None
    error: tuple[str, str] | None = None
    table: Path | None = None
    skips: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: int = 0
    schema_text: str | None = None

    @property
    def schema(self):
        """The Arrow schema of the records table (kept in the entry, so a reader need not open the file)."""
        import base64

        import pyarrow as pa

        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.schema_text))) if self.schema_text else None


class StoreIndex:
    """The index of one results tree (see the module docstring). ``runs`` reads the manifests, ``tables`` the
    records; ``save`` writes what changed. Used as a context manager, it saves on a clean exit."""

    def __init__(self, root: str | Path, persist: bool | None = None) -> None:
        self.root = Path(root)
        self.dir = self.root / INDEX_DIR
        is_run = (self.root / MANIFEST).is_file()
        self.persist = (not is_run) if persist is None else persist
        self._entries: dict[str, dict[str, Any]] = {}
        self._changed = False
        self._memory: dict[str, Any] = {}  # tables made without a place to write them
        self._schemas: dict[str, str] = {}  # digest -> Arrow schema (base64): the runs of a store share a few
        if self.persist:
            try:
                data = json.loads((self.dir / INDEX_FILE).read_bytes())
                if isinstance(data, dict) and data.get("version") == VERSION and isinstance(data.get("runs"), dict):
                    self._entries = {k: v for k, v in data["runs"].items() if isinstance(v, dict)}
                    schemas = data.get("schemas")
                    self._schemas = schemas if isinstance(schemas, dict) else {}
            except (OSError, ValueError):
                pass  # no index yet, or one that cannot be read: it is made again

    def __enter__(self) -> StoreIndex:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.save()

    def _rel(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.root)) or "."
        except ValueError:
            return str(path)

    # -- manifests ---------------------------------------------------------------------------------------------
    def runs(self, skips: list[Skip] | None = None) -> list[RunEntry]:
        """Every run folder at or below the root with its manifest summary, oldest first by start time (as
        ``harness.store.loader.scan``); a manifest that cannot be read, and a folder of records without a
        manifest, are noted in ``skips``, and left out.

        New manifests are read in this process: their case lists, nearly all of their bytes, are parsed once for
        all the runs that share them (``read_manifest(shared=True)``), so a manifest costs a millisecond or two
        (reading its 750 kB most of it), and worker processes cost more to start than they save (``compare
        --history 30`` over 1,000 new runs on 2 busy CPUs: 6.2-7.2 s reading them here, 7.8-8.6 s in two). Many
        are read in a few threads (``THREADS_MIN``), which wait for the disk together."""
        manifests, held = walk(self.root)
        stale = []
        for path in manifests:
            entry = self._entries.get(self._rel(path))
            stat = _stat(path / MANIFEST)
            if not entry or entry.get("manifest_key") != stat:
                stale.append((path, stat))
        if len(stale) >= THREADS_MIN:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(READ_THREADS) as pool:
                read = list(pool.map(read_summary, [str(p) for p, _ in stale]))
        else:
            read = [read_summary(str(p)) for p, _ in stale]
        for (path, stat), found in zip(stale, read, strict=True):
            rel = self._rel(path)
            entry = {k: v for k, v in self._entries.get(rel, {}).items() if k not in ("summary", "error")}
            self._entries[rel] = {**entry, "manifest_key": stat, **found}  # its records table is stale now too
            self._changed = True
        out: list[RunEntry] = []
        seen = set()
        for path in manifests:
            rel = self._rel(path)
            seen.add(rel)
            entry = self._entries[rel]
            if "error" in entry:
                kind, message = entry["error"]
                note(skips, Skip(str(path), kind, f"run skipped: {message.replace(_RUN, str(path))}"))
                continue
            out.append(RunEntry(path, entry["summary"]))
        for rel in [r for r in self._entries if r not in seen]:
            self._drop(rel)
        if self.root not in manifests:
            from harness.store.loader import no_manifest_skip

            for folder in orphans(manifests, held):
                note(skips, no_manifest_skip(folder))
        return sorted(out, key=lambda e: (str(e.summary.get("started_at") or ""), str(e.path)))

    def _drop(self, rel: str) -> None:
        entry = self._entries.pop(rel, None)
        self._changed = True
        if entry and entry.get("table") and self.persist:
            (self.dir / TABLES / entry["table"]).unlink(missing_ok=True)

    # -- records ---------------------------------------------------------------------------------------------------
    def read_runs(self, paths: Iterable[Path]) -> list:
        """``read_run`` of each of ``paths``; when ``VOUCH_MIN`` or more of them are new to the index (``compare
        --history`` over a store read for the first time), their records are checked as columns (``vouch``)."""
        from harness.store.jsontext import paused_gc

        paths = list(paths)
        keys = [run_key(path) for path in paths]  # taken before the files are read: a change while reading shows later
        new = [path for path, key in zip(paths, keys, strict=True) if not self._checked(self._entry(path), key)]
        vouch = len(new) >= VOUCH_MIN
        with paused_gc():  # many small objects, no cycles (harness.store.jsontext)
            if not vouch:
                return [self.read_run(path, vouch, key) for path, key in zip(paths, keys, strict=True)]
            from concurrent.futures import ThreadPoolExecutor

            from harness.store.loader import vouched_parts

            pending = iter(dict.fromkeys(new))  # a path given twice is read once; its second read is the index's
            ahead: dict[Path, Any] = {}
            runs = []
            pool = ThreadPoolExecutor(VOUCH_THREADS)
            try:
                for path, key in zip(paths, keys, strict=True):
                    # at most 2 runs a thread read ahead: each holds its files' bytes until its records are made
                    while len(ahead) < 2 * VOUCH_THREADS and (following := next(pending, None)) is not None:
                        ahead[following] = pool.submit(vouched_parts, following)
                    runs.append(self.read_run(path, vouch, key, ahead.pop(path, None)))
                return runs
            finally:
                pool.shutdown(cancel_futures=True)  # after an error, the reads not started are not made

    def _entry(self, path: Path) -> dict[str, Any]:
        return self._entries.get(self._rel(path), {})

    @staticmethod
    def _checked(entry: dict[str, Any], key: list[Any]) -> bool:
        """True when the entry knows which lines of the run's files, as ``key`` finds them, the loader refused."""
        return entry.get("records_key") == key and "skips" in entry

    def read_run(self, path: Path, vouch: bool = False, key: list[Any] | None = None, parts=None):
        """``harness.store.loader.read_run(path)``, faster for a run whose files did not change since the index
        last read them: the lines the loader refused then are refused again with the same skips, the others are
        not checked field by field again, and the run's manifest is the index's summary (without its case lists)
        with the notes the full read made. A changed run is read in full and remembered; with ``vouch``, through
        the column check (``harness.store.loader.read_run_vouched``: the same run, sooner once pyarrow is loaded).
        ``key``: the run's ``run_key``, when taken before its files were read; ``parts``: a future of its
        ``vouched_parts``, made ahead (``read_runs``)."""
        from harness.store.loader import RECORD_SKIPS, read_run, read_run_vouched

        rel = self._rel(path)
        entry = self._entries.setdefault(rel, {})
        key = run_key(path) if key is None else key
        if self._checked(entry, key):
            checked: dict[str, dict[int, Skip]] = {}
            for item in entry["skips"]:
                skip = _unpack(item, path)
                if skip.kind in RECORD_SKIPS:
                    file, _, line = skip.where.rpartition(":")
                    checked.setdefault(Path(file).name, {})[int(line)] = skip
            if "summary" in entry and "notes" in entry and entry.get("manifest_key") == key[0][1:]:
                run = read_run(path, checked, manifest=entry["summary"])
                run.notes = [n.replace(_RUN, str(path)) for n in entry["notes"]]
                return run
            return read_run(path, checked)
        if vouch:
            run = read_run_vouched(path, None if parts is None else parts.result())
        else:
            run = read_run(path)
        if entry.get("records_key") != key and entry.get("table"):
            old = entry.pop("table")  # a table of other records
            if self.persist:
                (self.dir / TABLES / old).unlink(missing_ok=True)
        entry.update(
            records_key=key,
            skips=[_pack(s, path) for s in run.skips],
            notes=[n.replace(str(path), _RUN) for n in run.notes],
        )
        if entry.get("manifest_key") != key[0][1:]:
            entry.update(manifest_key=key[0][1:], summary=summary(run.manifest))
            entry.pop("error", None)
        self._changed = True
        return run

    # -- records tables ----------------------------------------------------------------------------------------
    def tables(self, runs: Iterable[RunEntry], workers: int | None = None) -> list[RunEntry]:
        """``runs`` with their records tables, made (and written to the index) where missing or stale. Many stale
        runs (a store read for the first time) are made by ``workers`` processes (default: ``default_workers``; with
        one, the tables are made in this process)."""
        runs = list(runs)
        stale = []
        for run in runs:
            rel = self._rel(run.path)
            entry = self._entries.setdefault(rel, {})
            table = entry.get("table")
            key = run_key(run.path)  # taken before the files are read: a change while reading shows next time
            fresh = entry.get("records_key") == key and table is not None
            if fresh and self.persist and not (self.dir / TABLES / table).is_file():
                fresh = False  # removed by another writer: made again
            if fresh and not self.persist and rel not in self._memory:
                fresh = False
            if fresh:
                for item in entry.get("skips", []):
                    note(None, _unpack(item, run.path))  # warned, as the loader warns when it reads the line
            else:
                stale.append((run, key))
        workers = default_workers() if workers is None else workers
        if workers > 1 and len(stale) >= POOL_MIN:
            self._make_tables(stale, workers)
        else:
            for run, key in stale:
                self._make_table(run, key)  # the loader warns of what it skips
        for run in runs:
            entry = self._entries[self._rel(run.path)]
            run.table = (self.dir / TABLES / entry["table"]) if self.persist else None
            run.skips = [_unpack(s, run.path) for s in entry.get("skips", [])]
            run.notes = [n.replace(_RUN, str(run.path)) for n in entry.get("notes", [])]
            run.rows, run.schema_text = entry.get("rows", 0), self._schemas.get(entry.get("schema", ""))
        return runs

    def _make_table(self, run: RunEntry, key: list[Any]) -> None:
        entry = self._entries.get(self._rel(run.path), {})
        if self._checked(entry, key):
            loaded = self.read_run(run.path)  # checked before (compare): the lines it refused are known
            self._keep_table(run.path, key, records_table(loaded.records), loaded.skips, loaded.notes)
            return
        from harness.store.loader import read_run_table

        # The loader's own reading (its rule, its migrations, its skips), or the column check where it vouches
        table, skips, notes, manifest = read_run_table(run.path)
        if entry.get("manifest_key") != key[0][1:]:
            entry.update(manifest_key=key[0][1:], summary=summary(manifest))
            entry.pop("error", None)
        self._keep_table(run.path, key, table, skips, notes)

    def _make_tables(self, stale: list[tuple[RunEntry, list[Any]]], workers: int) -> None:
        """Make the tables of the ``stale`` runs in ``workers`` processes (each reads runs through the loader)."""
        import io
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import pyarrow.parquet as pq

        context = multiprocessing.get_context("spawn")  # no fork of a process that holds Arrow's threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            made = pool.map(build_table, [str(run.path) for run, _ in stale], chunksize=4)
            for (run, key), (data, skips, notes) in zip(stale, made, strict=True):
                skips = [_unpack(item, run.path) for item in skips]
                for skip in skips:
                    note(None, skip)  # the worker read quietly
                notes = [n.replace(_RUN, str(run.path)) for n in notes]
                if self.persist:
                    file = pq.ParquetFile(io.BytesIO(data))  # its rows and schema, from the footer
                    self._keep_table(run.path, key, None, skips, notes, data, file.metadata.num_rows, file.schema_arrow)
                else:
                    self._keep_table(run.path, key, pq.read_table(io.BytesIO(data)), skips, notes, data)

    def _keep_table(
        self,
        path: Path,
        key: list[Any],
        table,
        skips: list[Skip],
        notes: list[str],
        data: bytes | None = None,
        rows: int | None = None,
        schema=None,
    ) -> None:
        """Remember ``table`` as the run's records table, made from its files as ``key`` found them (written to
        the index, or kept in memory). A table to be written that is already ``data`` (its Parquet bytes) need not
        be given: its ``rows`` and ``schema`` are enough."""
        import io

        import pyarrow.parquet as pq

        rel = self._rel(path)
        entry = self._entries.setdefault(rel, {})
        name = f"{_digest(rel)}-{_digest(key)}.parquet"
        old = entry.get("table")
        entry.update(
            records_key=key,
            table=name,
            skips=[_pack(s, path) for s in skips],
            notes=[n.replace(str(path), _RUN) for n in notes],
            rows=table.num_rows if table is not None else rows,
            schema=self._keep_schema(table.schema if table is not None else schema),
        )
        self._changed = True
        if not self.persist:
            self._memory[rel] = table if table is not None else pq.read_table(io.BytesIO(data))
            return
        if data is None:
            sink = io.BytesIO()
            pq.write_table(table, sink)  # snappy: reads and writes several times faster than zstd, 5% more bytes
            data = sink.getvalue()
        try:
            (self.dir / TABLES).mkdir(parents=True, exist_ok=True)
            write_atomic(self.dir / TABLES / name, data)
        except OSError:
            self.persist = False  # a tree that cannot be written is read without an index
            self._memory[rel] = table if table is not None else pq.read_table(io.BytesIO(data))
            return
        if old and old != name:
            (self.dir / TABLES / old).unlink(missing_ok=True)

    def _keep_schema(self, schema) -> str:
        text = base64.b64encode(schema.serialize().to_pybytes()).decode()
        digest = hashlib.sha1(text.encode()).hexdigest()[:16]
        self._schemas[digest] = text
        return digest

    def read_table(self, run: RunEntry):
        """The pyarrow Table of a run's records (``tables`` made it)."""
        import pyarrow.parquet as pq

        if run.table is not None:
            import pyarrow as pa

            try:
                return pq.ParquetFile(run.table).read()
            except (OSError, pa.ArrowException):
                # Replaced by another process since, or damaged: the records themselves, read again.
                from harness.store.loader import read_run

                return records_table(read_run(run.path).records)
        return self._memory[self._rel(run.path)]

    # -- writing -----------------------------------------------------------------------------------------------
    def save(self) -> None:
        """Write ``index.json`` when anything changed (atomically); a tree that cannot be written is left as is."""
        if not (self.persist and self._changed):
            return
        used = {e.get("schema") for e in self._entries.values()}
        schemas = {k: v for k, v in self._schemas.items() if k in used}
        data = json.dumps({"version": VERSION, "runs": self._entries, "schemas": schemas}, separators=(",", ":"))
        data = data.encode()
        try:
            self.dir.mkdir(exist_ok=True)
            write_atomic(self.dir / INDEX_FILE, data)
        except OSError:
            return
        self._changed = False


def default_workers() -> int:
    """How many processes make the records tables of a store read for the first time (``StoreIndex.tables``, from
    ``POOL_MIN`` stale runs): every CPU this process may use, at most 8. A first read is a one-off that the command
    waits on; after it, only new runs are read."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, usable))


def read_summary(path: str) -> dict[str, Any]:
    """``{"summary": ...}`` of the run folder's manifest, or ``{"error": [kind, message]}`` when it cannot be
    read (the folder's path stood in for, as the index keeps it)."""
    try:
        return {"summary": summary(read_manifest(Path(path), shared=True))}  # case lists: read once, left out
    except ManifestError as exc:
        return {"error": [exc.kind, str(exc).replace(path, _RUN)]}


def build_table(path: str) -> tuple[bytes, list[list[str]], list[str]]:
    """In a worker process: the run's records table as Parquet bytes, with what the loader skipped and noted
    (paths stood in for, as the index keeps them)."""
    import io
    import warnings

    import pyarrow.parquet as pq

    from harness.store.loader import read_run_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skips go back to the caller, which warns of them
        table, skips, notes, _ = read_run_table(Path(path))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue(), [_pack(s, Path(path)) for s in skips], [n.replace(path, _RUN) for n in notes]


# -- records as columns ------------------------------------------------------------------------------------------


def _arrow_types() -> dict[str, Any]:
    """Column -> Arrow type for every declared field of a record (``Record``'s declarations)."""
    import pyarrow as pa

    by_words = {
        "an integer": pa.int64(),
        "a finite number": pa.float64(),
        "a string": pa.string(),
        "true or false": pa.bool_(),
        "a list of finite numbers": pa.list_(pa.float64()),
        "a list of strings": pa.list_(pa.string()),
    }
    return {name: by_words.get(words, pa.string()) for name, (_, words, _) in _RULES.items() if name not in GROUPS}


def _json_text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else json.dumps(value, default=str)


def column(name: str, values: list[Any], types: dict[str, Any]):
    """One column as an Arrow array: of the declared type, else inferred, else (values of mixed kinds) JSON text.
    A declared ``dict`` field (``accuracy``) is JSON text."""
    import pyarrow as pa

    kind = types.get(name)
    if kind is not None and kind != pa.string():
        return pa.array(values, type=kind)
    if kind is not None or any(isinstance(v, dict) for v in values):
        return pa.array([_json_text(v) for v in values], type=pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return pa.array([_json_text(v) for v in values], type=pa.string())


def records_table(records: list[dict[str, Any]]):
    """The Arrow table of normalised records: one row each, the nested groups as ``group.field`` columns (the
    loader's ``flatten``), declared fields in their declared types."""
    import pyarrow as pa

    from harness.store.loader import flatten

    rows = [flatten(r) for r in records]
    names = list(dict.fromkeys(k for row in rows for k in row))
    if not rows:
        names = [n for n in RECORD_FIELDS if n not in GROUPS]
    types = _arrow_types()
    return pa.table({n: column(n, [row.get(n) for row in rows], types) for n in names})
