"""Reading results back: run folders, records files or whole results trees, into one pandas DataFrame.

``load(paths)`` accepts run folders, ``records*.jsonl`` files, or folders that hold runs at any depth. Each row is
one record with every field of ``harness.store.record.Record`` (nested groups flattened as ``telemetry.power_avg_w``,
``numerics.top1_agreement``, ``profile.trace_dir``, ...), plus run-level columns: ``run_dir``,
``run_started_at`` and ``env.<field>`` from the manifest's environment fingerprint. Nothing here imports torch.

This is the one reader of records: ``report``, ``compare`` and ``export`` all read through ``read_store`` (or
``read_run``/``read_runs``, built on it), and every line goes through ``accept``, the one place the validity rule
of ``harness.store.record.problems`` is applied line by line. (The store index reads a run it has not seen with
``read_run_vouched``/``read_run_table``: where ``harness.store.columns`` vouches, from the rule applied to whole
columns, that every record of the run is valid, no line is checked again; any other run is read here line by
line, so what is skipped, and its message, is the same.) What is left out is a ``harness.store.skips.Skip``, kept
with the run (``Run.skips``) or, for a whole run, with the result of ``read_store``, and warned about:

- a line that is not JSON (corrupt, or a last line cut short by a crash), or JSON but not an object;
- a record of a newer schema version ("upgrade harness"), or one that breaks the rule (an invalid record);
  records of an older version are migrated;
- a run whose ``manifest.json`` cannot be read (not JSON, not an object, a field of the wrong type) or is of a
  newer schema version: the other runs of a results folder are still read;
- a folder that holds ``records*.jsonl`` files but no manifest (pass such a file directly to read it);
- a records file that cannot be read.

A run folder's records are its rank files ``records-rank<N>.jsonl`` with any ``records-rank<N>.rescued.jsonl``
(records saved there when the rank file could not be written), or the merged ``records.jsonl`` when it is newer
than all of those.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import StoreError
from harness.store.jsontext import paused_gc
from harness.store.record import GROUPS, SCHEMA_VERSION, normalise, problems
from harness.store.rundir import MANIFEST, ManifestError, RunFolder, not_a_record, read_manifest, read_values
from harness.store.skips import Skip, note
from harness.store.stats import throughput_img_s, throughput_interval

#: Resamples of the interval a migration recomputes: enough for a 95% interval, few enough for a store of millions.
MIGRATION_RESAMPLES = 200


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


def _median_interval(samples: Any, batch_size: int) -> list[float] | None:
    """The bootstrap interval (img/s) of the median-step throughput of ``samples``, or None where they are not a
    list of positive finite step times."""
    if not isinstance(samples, list) or not samples:
        return None
    try:
        steps = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if steps.ndim != 1 or not (np.isfinite(steps).all() and (steps > 0).all()):
        return None
    lo, hi = throughput_interval(steps, batch_size, resamples=MIGRATION_RESAMPLES)
    return [round(lo, 4), round(hi, 4)]


def median_throughput(record: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: the throughput becomes the median-step figure (``harness.store.stats``).

    The old figure, images over the total time, moves to ``throughput_total_img_s``. Where ``batch_size`` and
    ``step_ms_median`` are known, ``throughput_img_s`` is ``batch_size * 1000 / step_ms_median`` and its interval
    is recomputed from ``samples_ms`` (null without them: the old interval was of the other figure). A record
    without a median (an imported published figure: a mean step only) keeps its throughput and interval, which
    are still of one figure. An ``mfu`` above 1 (an achieved rate over a peak measured low) becomes null. The
    noise fields are left to ``normalise``: null, not measured. Values of the wrong type are left as they are, for
    the validity rule to name.
    """
    out = dict(record)
    out["schema_version"] = 2
    out["throughput_total_img_s"] = record.get("throughput_img_s")
    batch, median = record.get("batch_size"), record.get("step_ms_median")
    if _positive(median) and isinstance(batch, int) and not isinstance(batch, bool) and batch > 0:
        out["throughput_img_s"] = round(throughput_img_s(batch, median), 4)
        out["throughput_ci95"] = _median_interval(record.get("samples_ms"), batch)
    mfu = record.get("mfu")
    if _positive(mfu) and mfu > 1:
        out["mfu"] = None
    return out


#: version -> function turning a record of that version into one of version + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # Version 0 records (before the schema was versioned) named the throughput interval ``ci95``.
    0: lambda r: {**{k: v for k, v in r.items() if k != "ci95"}, "throughput_ci95": r.get("ci95"), "schema_version": 1},
    1: median_throughput,
}


@dataclass
class Run:
    """One run folder: its manifest, its valid records (normalised to the current schema), what was skipped
    (``skips``) and notes that are not about skipped input (``notes``: cases of the run without a record)."""

    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]
    skips: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> list[str]:
        """What was skipped, one line each (``str`` of each ``Skip``)."""
        return [str(s) for s in self.skips]


@dataclass
class Store:
    """What ``read_store`` read: the runs (oldest first within each path) and the runs or folders it skipped.

    ``all_skips`` adds the skips inside each run: everything a command reports as skipped."""

    runs: list[Run]
    skips: list[Skip] = field(default_factory=list)

    @property
    def all_skips(self) -> list[Skip]:
        return [*self.skips, *(s for run in self.runs for s in run.skips)]


def migrate(record: dict[str, Any]) -> dict[str, Any]:
    """Bring a record of an older (or the current) schema version to the current one (not normalised)."""
    version = record.get("schema_version", 0)
    while version < SCHEMA_VERSION:
        record = MIGRATIONS[version](record)
        version = record["schema_version"]
    return record


def accept(value: Any, where: str, skips: list[Skip] | None = None) -> dict[str, Any] | None:
    """The one rule, applied: ``value`` (one JSON line) as a normalised record of the current schema, or None with
    the reason noted in ``skips`` (and warned) when it is not a record, of a newer schema, or invalid."""
    if not isinstance(value, dict):
        note(skips, not_a_record(where, value))
        return None
    version = value.get("schema_version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        message = (
            f"record of schema version {version} is newer than {SCHEMA_VERSION}, skipped; upgrade harness to read it"
        )
        note(skips, Skip(where, "newer schema", message))
        return None
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        wrong = [f"schema_version is {version!r}, not a schema version (0, 1, ...)"]
    else:
        value = migrate(value)
        wrong = problems(value)
    if wrong:
        shown = "; ".join(wrong[:3]) + (f"; and {len(wrong) - 3} more" if len(wrong) > 3 else "")
        note(skips, Skip(where, "invalid record", f"invalid record skipped: {shown}; correct or remove the line"))
        return None
    return normalise(value)


#: The kinds of skip ``accept`` makes (a line that is JSON but not a valid record of a schema this harness reads).
RECORD_SKIPS = ("not a record", "newer schema", "invalid record")


def read_records(
    path: Path, skips: list[Skip] | None = None, checked: dict[int, Skip] | None = None, data: bytes | None = None
) -> list[dict[str, Any]]:
    """The valid records of one records file (see ``accept``); what is left out is noted in ``skips``. A file
    that cannot be read is noted too, as one skip.

    ``checked``, for a file ``accept`` has already been applied to line by line and that has not changed since
    (``harness.store.index`` knows), holds the lines it refused (line number -> skip): those are noted again
    and left out, and the other lines are taken as the valid records they were found to be, without checking each
    field again. Lines that are not JSON are found and noted by reading, as always. ``data``: the file's bytes,
    when the caller has read them already."""
    try:
        values = read_values(path, skips, data)
    except StoreError as exc:
        note(skips, Skip(str(path), "unreadable file", f"records file not read: {exc}"))
        return []
    out = []
    for number, value in values:
        if checked is not None:
            if number in checked:
                note(skips, checked[number])
            else:
                out.append(normalise(migrate(value)))
            continue
        record = accept(value, f"{path}:{number}", skips)
        if record is not None:
            out.append(record)
    return out


def records_files(path: Path) -> list[Path]:
    """The records files of a run folder: every ``records-rank*.jsonl`` (rescued files after their rank's), or
    the merged ``records.jsonl`` when it is newer than all of them."""
    # The rank files are what the workers append to; the merged file is made from them when the run closes (with
    # each case's MFU held against the run's best probe), and is stale when a rank file changed after it (a resumed
    # run that died before merging again).
    folder = RunFolder(path)
    files = folder.record_files()
    merged = folder.merged_path
    try:
        if merged.is_file() and all(f.stat().st_mtime <= merged.stat().st_mtime for f in files):
            return [merged]
    except OSError:
        pass
    return files


def _run(
    path: Path,
    manifest: dict[str, Any],
    checked: dict[str, dict[int, Skip]] | None = None,
    texts: dict[Path, bytes] | None = None,
) -> Run:
    """The run read from its records files (``texts``: the files and their bytes, already read)."""
    skips: list[Skip] = []
    files = records_files(path) if texts is None else list(texts)
    with paused_gc():  # many small objects, no cycles (harness.store.jsontext)
        records = [
            r
            for f in files
            for r in read_records(
                f, skips, None if checked is None else checked.get(f.name, {}), None if texts is None else texts[f]
            )
        ]
    return Run(path, manifest, records, skips, unrecorded_notes(path, manifest, {r.get("case_id") for r in records}))


def unrecorded_notes(path: Path, manifest: dict[str, Any], recorded: set[Any]) -> list[str]:
    """The note of a run whose manifest lists cases (``case_ids``) that have no record (``recorded``: the case ids
    of its records); none when every case has one."""
    unrecorded = [cid for cid in manifest.get("case_ids") or [] if cid not in recorded]
    if not unrecorded:
        return []
    head = ", ".join(unrecorded[:5]) + (f" and {len(unrecorded) - 5} more" if len(unrecorded) > 5 else "")
    return [f"{path}: {len(unrecorded)} case(s) of the run have no record ({head})"]


def read_run(
    path: Path, checked: dict[str, dict[int, Skip]] | None = None, manifest: dict[str, Any] | None = None
) -> Run:
    """Read one run folder (see ``records_files``); a StoreError when it is not a folder or its manifest cannot be
    read. The store index (``harness.store.index``) gives, for a run whose files did not change since it read
    them, ``checked`` (records file name -> refused lines, see ``read_records``) and ``manifest`` (the manifest it
    keeps, read instead of the file)."""
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"{path} does not exist or is not a folder")
    return _run(path, read_manifest(path) if manifest is None else manifest, checked)


def vouched_parts(path: Path) -> tuple[Path, dict[str, Any], dict[Path, bytes] | None, Any]:
    """A run folder's path, its manifest (``read_manifest(shared=True)``), its records files with their bytes (None
    when one cannot be read: the loader reads and reports it) and the records table the column check made of them
    (``harness.store.columns``; None when it did not vouch for every line); errors as ``read_run``'s. It makes no
    record and notes nothing, so it may run in another thread (the Arrow parse lets go of the GIL): the run itself
    is made from its parts by ``read_run_vouched``."""
    from harness.store.columns import checked_table

    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"{path} does not exist or is not a folder")
    manifest = read_manifest(path, shared=True)
    files = records_files(path)
    try:
        texts = {f: f.read_bytes() for f in files}
    except OSError:
        return path, manifest, None, None
    return path, manifest, texts, checked_table(b"\n".join(texts.values()))


def read_run_vouched(path: Path, parts: tuple | None = None) -> Run:
    """``read_run(path)``: the same run, read sooner where the column check (``harness.store.columns``) vouches for
    every record of it, whose lines are then taken as the valid records they are, without checking each field
    again (as for a run the index checked before); any other run is read line by line, with its skips. Its
    manifest's case lists may be another run's too (``read_manifest(shared=True)``): not to be changed. ``parts``:
    what ``vouched_parts(path)`` gave, when the caller had it made ahead."""
    path, manifest, texts, table = vouched_parts(path) if parts is None else parts
    if table is None:
        return _run(path, manifest, None, texts)
    return _run(path, manifest, {f.name: {} for f in texts}, texts)


def read_run_table(path: Path) -> tuple[Any, list[Skip], list[str], dict[str, Any]]:
    """A run's records as an Arrow table, with what was skipped and noted and the manifest: ``records_table`` of
    ``read_run(path).records`` (``harness.store.index``), the run's ``skips``, ``notes`` and ``manifest`` (its
    case lists shared, as ``read_run_vouched``'s). Where the column check vouches for every record, the table is
    its own and no record is made as a dict."""
    from harness.store.index import records_table

    path, manifest, texts, table = vouched_parts(path)
    if table is None:
        run = _run(path, manifest, None, texts)
        return records_table(run.records), run.skips, run.notes, manifest
    return table, [], unrecorded_notes(path, manifest, set(table.column("case_id").to_pylist())), manifest


def _manifest_skip(path: Path, exc: ManifestError) -> Skip:
    return Skip(str(path), exc.kind, f"run skipped: {exc}")


def no_manifest_skip(folder: Path) -> Skip:
    """The skip of a folder that holds records files but no manifest (it is not a run folder)."""
    files = RunFolder.holds_records(folder)
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    message = (
        f"records skipped: the folder holds {shown} but no {MANIFEST}, so it is not a run folder; restore its "
        f"{MANIFEST}, or pass the records file itself ({folder / files[0]}) to read it"
    )
    return Skip(str(folder), "no manifest", message)


def scan(root: Path, skips: list[Skip] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every run folder at or below ``root`` with its manifest, oldest first by start time. A folder whose
    manifest cannot be read, and one that holds records files but no manifest, is noted in ``skips``."""
    from harness.store.index import orphans, walk

    root = Path(root)
    if (root / MANIFEST).is_file():
        candidates, held = [root], []
    else:
        candidates, held = walk(root)
    runs: list[tuple[Path, dict[str, Any]]] = []
    for path in candidates:
        try:
            runs.append((path, read_manifest(path)))
        except ManifestError as exc:
            note(skips, _manifest_skip(path, exc))
    for folder in orphans(candidates, held):
        note(skips, no_manifest_skip(folder))
    return sorted(runs, key=lambda pm: (str(pm[1].get("started_at") or ""), str(pm[0])))


def find_runs(root: Path) -> list[Path]:
    """Every readable run folder (a folder with a manifest) at or below ``root``, oldest first by start time;
    the others are left out with a warning (``scan`` says which)."""
    return [path for path, _ in scan(root)]


def _read_file(path: Path, skips: list[Skip]) -> Run:
    """A records file given directly: its records, with the manifest beside it when there is a readable one."""
    manifest: dict[str, Any] = {}
    if (path.parent / MANIFEST).is_file():
        try:
            manifest = read_manifest(path.parent)
        except ManifestError as exc:
            note(skips, Skip(str(path.parent), exc.kind, f"manifest not used, records read without it: {exc}"))
    run_skips: list[Skip] = []
    return Run(path.parent, manifest, read_records(path, run_skips), run_skips)


def input_path(path: str | Path) -> Path:
    """A path given to read runs from, as read: a manifest names its run folder; a StoreError when it does not
    exist."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p} does not exist; pass a run folder, a records .jsonl file, or a results folder")
    return p.parent if p.is_file() and p.name == MANIFEST else p


def read_store(paths: Iterable[str | Path]) -> Store:
    """Read every run named by ``paths`` (run folders, records files, or trees of runs), skipping what cannot be
    read (see the module docstring). A path that does not exist, and one that holds neither a run nor anything
    skipped, is a StoreError."""
    runs: list[Run] = []
    skips: list[Skip] = []
    for p in paths:
        p = input_path(p)
        if p.is_file():
            runs.append(_read_file(p, skips))
            continue
        before = len(skips)
        found = scan(p, skips)
        if not found and len(skips) == before:
            raise StoreError(f"{p} holds no run folders (no {MANIFEST} at or below it)")
        with paused_gc():
            runs.extend(_run(path, manifest) for path, manifest in found)
    return Store(runs, skips)


def read_runs(paths: Iterable[str | Path]) -> list[Run]:
    """The runs of ``read_store(paths)``; what it skipped is warned about. A StoreError when every run was skipped."""
    store = read_store(paths)
    if not store.runs and store.skips:
        raise StoreError("no run could be read: " + "; ".join(str(s) for s in store.skips))
    return store.runs


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
    """Load records from run folders, records files or results trees into a pandas DataFrame (see module doc).
    What is skipped is warned about; ``read_store`` returns it."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return runs_to_frame(read_runs(paths))
