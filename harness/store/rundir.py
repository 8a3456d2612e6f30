"""The run folder: ``results/<suite>/<UTC timestamp>-<host>-<device>/`` with a manifest and JSONL records.

``RunFolder`` owns every file name of a run folder and every read and write of them; nothing outside
``harness.store`` spells one. The layout:

    manifest.json                 the run (``harness.store.manifest.Manifest``), rewritten atomically
    records-rank<N>.jsonl         rank N's records, one JSON line per case, appended and fsynced
    records-rank<N>.rescued.jsonl records rank N could not append to its own file (read with it)
    records.jsonl                 every rank's records merged, written when the run closes
    progress-rank<N>.jsonl        rank N's ``started``/``interrupted`` events (with its pid), for restarts
    checksums-rank<N>.jsonl       parameter digests after DDP timed windows, when a check asks for them
    profiles/<case id>/           torch.profiler traces of the profiled cases
    report.html                   the run's report
    logs/                         the elastic agent's per-worker logs (distributed runs started by harness run)
    .lock                         held while a process measures the run

Records are appended one JSON line per case and fsynced, so nothing measured is lost when a case, a worker or
the whole run dies; a truncated last line (a write cut by a crash) is skipped with a warning on reading. A record
that cannot be appended to its records file is not lost either: ``save_record`` writes it to
``records-rank<N>.rescued.jsonl`` beside that file (or, when that fails too, to the temp dir), says where, and
raises ``RecordNotSavedError`` so the run stops; the loader reads rescued files with the rank files. The manifest
is rewritten atomically (write to a temporary file, fsync, rename) whenever the run's state changes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import StoreError
from harness.store.jsontext import loads, paused_gc
from harness.store.manifest import Manifest
from harness.store.manifest import utc_now as utc_now  # the time stamp of records and events too
from harness.store.record import SCHEMA_VERSION, kind_of
from harness.store.skips import Skip, note

MANIFEST = "manifest.json"
MERGED = "records.jsonl"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "unknown"


def new_run_dir(out_root: Path, suite: str, device: str) -> Path:
    """Create and return a fresh run folder under ``out_root``; a clear error when it cannot be written."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(out_root) / _slug(suite) / f"{stamp}-{_slug(socket.gethostname())}-{_slug(device)}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    try:
        path.mkdir(parents=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StoreError(
            f"cannot write results under {out_root}: {exc.strerror or exc}. Choose a writable folder with --out DIR"
        ) from None
    return path


def check_writable(out_root: Path) -> None:
    """Raise a StoreError before anything runs if ``out_root`` cannot be created or written."""
    out_root = Path(out_root)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_root, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise StoreError(
            f"output folder {str(out_root)!r} cannot be written ({exc.strerror or exc}); choose another with --out DIR"
        ) from None


def _rescued(path: Path) -> Path:
    """Where a record goes when ``path`` (``records-rank<N>.jsonl``) cannot be written: beside it, and still
    matched by ``records-rank*.jsonl``, so the loader reads it with the rank files."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rescued.jsonl")


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has no such numbers; a record uses null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _line(record: dict[str, Any]) -> str:
    try:
        text = json.dumps(record, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:  # a NaN or infinity: null is how a record says "no value"
        text = json.dumps(_finite(record), separators=(",", ":"), allow_nan=False, default=str)
    return text + "\n"


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line and fsync it, so a crash right after loses nothing already measured."""
    line = _line(record)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A crash cut the last line short: end it, so this record does not glue onto it and get lost with it.
            line = "\n" + line
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class RecordNotSavedError(StoreError):
    """A measured record could not be appended to its records file; it was saved elsewhere (``saved_to``, or
    printed on stderr when nowhere could take it) and the run must stop: the message says how to put it back."""

    def __init__(self, message: str, target: Path, saved_to: Path | None) -> None:
        super().__init__(message)
        self.target = target
        self.saved_to = saved_to


def save_record(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to ``path``; when that fails, save it to the rescue file beside it, else to the temp dir,
    else print it on stderr, say where on stderr, and raise ``RecordNotSavedError``. Never loses the record."""
    path = Path(path)
    try:
        append_record(path, record)
        return
    except OSError as exc:
        reason = exc.strerror or str(exc)
    run_dir = path.parent
    places = [_rescued(path), Path(tempfile.gettempdir()) / f"harness-{run_dir.name}-{_rescued(path).name}"]
    saved_to = None
    for place in places:
        try:
            append_record(place, record)
        except OSError:
            continue
        saved_to = place
        break
    case = record.get("case_id") if isinstance(record, dict) else None
    what = f"the record of case {case}" if case else "a record"
    if saved_to is None:
        print(f"harness: {what}, which could be written nowhere, follows:\n{_line(record)}", end="", file=sys.stderr)
        where, fix = "stderr (above)", f"add that line to {path}"
    else:
        where = str(saved_to)
        fix = f"append it and remove it (cat {saved_to} >> {path} && rm {saved_to})"
    message = (
        f"cannot append to {path} ({reason}); {what} was saved to {where} instead and the run stopped. "
        f"Make {path} writable (chmod u+w {path}), {fix}, then finish the run: harness run --resume {run_dir}"
    )
    # Said here as well as by whoever catches the error: where the record is must reach the user in any case.
    print(f"harness: {what} was saved to {where}: {path} cannot be written ({reason})", file=sys.stderr)
    raise RecordNotSavedError(message, path, saved_to)


def read_values(path: Path, skips: list[Skip] | None = None, data: bytes | None = None) -> list[tuple[int, Any]]:
    """Every JSON value of a JSONL file with its line number. Lines that are not JSON (a corrupt line, or a last
    line cut short by a crash) are left out with a warning and noted in ``skips``. A missing file has no values;
    one that cannot be read is a StoreError. ``data``: the file's bytes, when the caller has read them already."""
    path = Path(path)
    try:
        data = path.read_bytes() if data is None else data
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(
            f"{path} cannot be read ({exc.strerror or exc}); make it readable (chmod u+r {path})"
        ) from None
    lines = data.split(b"\n")
    out: list[tuple[int, Any]] = []
    with paused_gc():  # many small objects, no cycles (harness.store.jsontext)
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                value = loads(raw)
            except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, too deep or a number too long
                if number >= len(lines) - 1 and isinstance(exc, json.JSONDecodeError):
                    kind, message = "truncated line", "truncated last line skipped (a write cut short by a crash)"
                else:
                    kind = "corrupt line"
                    message = f"corrupt line skipped: {_why_not_json(exc)}; records are JSON objects, one per line"
                note(skips, Skip(f"{path}:{number}", kind, message))
                continue
            out.append((number, value))
    return out


def _why_not_json(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg}: line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return f"not readable JSON ({str(exc)[:80]})"


def not_a_record(where: str, value: Any) -> Skip:
    """The skip of a JSONL line that is JSON but no object (``[1, 2, 3]``, ``null``, ``5``)."""
    return Skip(where, "not a record", f"line skipped: it is {kind_of(value)}, not a record (records are JSON objects)")


def read_jsonl(path: Path, skipped: list[Skip] | None = None) -> list[dict[str, Any]]:
    """The JSON objects of one JSONL file. Other lines are skipped with a warning (and noted in ``skipped``)."""
    out: list[dict[str, Any]] = []
    for number, value in read_values(path, skipped):
        if isinstance(value, dict):
            out.append(value)
        else:
            note(skipped, not_a_record(f"{path}:{number}", value))
    return out


def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask); mkstemp's own is 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _all_strings(values: list[Any]) -> bool:
    """True when every value is a string; a list of plain ``str`` (what JSON gives) without a call per value."""
    return set(map(type, values)) <= {str} or all(isinstance(x, str) for x in values)


#: Manifest fields the readers rely on -> (test, what it must be). Absent or null is always allowed.
_MANIFEST_FIELDS = {
    "environment": (lambda v: isinstance(v, dict), "an object"),
    "suite": (lambda v: isinstance(v, (dict, str)), "an object or a string"),
    "started_at": (lambda v: isinstance(v, str), "a string"),
    "case_ids": (lambda v: isinstance(v, list) and _all_strings(v), "a list of strings"),
    "cases": (lambda v: isinstance(v, list), "a list"),
}


def manifest_problem(manifest: Any) -> tuple[str, str] | None:
    """(kind, what is wrong) when ``manifest`` cannot be read as a run's manifest; None when it can. A manifest
    of a newer schema version is refused like a record of one: this harness cannot know what it means."""
    if not isinstance(manifest, dict):
        return "unreadable manifest", f"it is {kind_of(manifest)}, not an object"
    version = manifest.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        return "unreadable manifest", f"its schema_version {version!r} is not a schema version (0, 1, ...)"
    if version > SCHEMA_VERSION:
        return (
            "newer schema",
            f"it is of schema version {version}, newer than {SCHEMA_VERSION}; upgrade harness to read it",
        )
    for name, (test, words) in _MANIFEST_FIELDS.items():
        value = manifest.get(name)
        if value is not None and not test(value):
            return "unreadable manifest", f"its {name} is {kind_of(value)}; it must be {words}"
    return None


class ManifestError(StoreError):
    """A run folder whose manifest is missing, not JSON, or not a manifest this harness can read."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def read_manifest(run_dir: Path, shared: bool = False) -> dict[str, Any]:
    """The run's manifest; a ``ManifestError`` (a StoreError) when the folder is not a run or its manifest cannot
    be read: missing, unreadable, not JSON, not an object, of a newer schema version, or a field of a wrong type.

    With ``shared``, the manifest's case lists (``SHARED_LISTS``) that are, byte for byte, lists this process has
    read before are not parsed again: the one list read then is given (the same object), so the caller must not
    change them. The manifest is otherwise the same, and so is every error: anything the shortcut cannot vouch for
    is read the plain way."""
    path = Path(run_dir) / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{run_dir} is not a run folder: it has no {MANIFEST}", "no manifest") from None
    except OSError as exc:
        raise ManifestError(
            f"{path} cannot be read ({exc.strerror or exc}); make it readable (chmod u+r {path})",
            "unreadable manifest",
        ) from None
    manifest = _shared_lists.parse(data) if shared else None
    if manifest is None:
        try:
            manifest = loads(data)
        except (ValueError, RecursionError) as exc:
            raise ManifestError(
                f"{path} is {_why_not_json(exc)}; restore it from a backup, or read the run's records without it by "
                "passing its records .jsonl file",
                "unreadable manifest",
            ) from None
    problem = manifest_problem(manifest)
    if problem:
        kind, what = problem
        raise ManifestError(f"{path} cannot be read as a run's manifest: {what}", kind)
    return manifest


#: The keys of a manifest whose values are its case lists: the resolved suite's ``cases`` (in ``suite`` and at the
#: top) and ``case_ids``. They are nearly all of a manifest's bytes (a 500-case suite: 750 kB, 99%), and the same
#: bytes in every run of one suite; a reader of many manifests (``harness.store.index``) parses each once.
SHARED_LISTS = ("cases", "case_ids")


class _SharedLists:
    """Case lists already read, by their JSON text, and the reading of a manifest that takes them from here.

    ``parse(data)`` is ``json.loads(data)``, or None (then the caller reads ``data`` the plain way). It finds the
    lists of ``SHARED_LISTS`` as ``json.dump(indent=2)`` writes them (``write_json_atomic``): ``"cases": [`` at the
    start of a line, then the list up to the first line that closes it at the key's indent. A list whose text is
    one read before is that list; a new one is parsed on its own, as JSON, and kept. The rest of the text, each
    list replaced by a mark (a string that begins with a NUL, which the rest must not hold), is then parsed by
    ``json``, and each mark replaced by its list. This is ``json.loads(data)``: a list's text that parses on its own
    as one JSON array is, at that place, the whole value (an array ends at its own closing bracket), so the text is
    JSON if and only if the text with the marks is, and means the same. Where the rest is not JSON, a list's text is
    not one array, or a mark could be confused, the answer is None, and ``json`` reads the whole text (and gives its
    own error message)."""

    PATTERN = re.compile(rb'\n( *)"(?:cases|case_ids)": \[\n')
    MARK = "\x00harness-shared-list:"
    NUL = b"\\u0000"  # how JSON text writes a NUL, the first character of a mark (it has no other way)
    KEEP = 16  # lists kept (the most recently read), enough for the suites of a store
    KEEP_BYTES = 16 * 2**20  # and at most this much of their text (their objects take a few times as much)

    def __init__(self) -> None:
        self.known: dict[bytes, list[Any]] = {}
        self.lock = threading.Lock()

    def parse(self, data: bytes) -> Any:
        pieces: list[bytes] = []
        lists: list[list[Any]] = []
        pos = 0
        while True:
            match = self.PATTERN.search(data, pos)
            if match is None:
                break
            start = match.end() - 2  # the list's opening bracket
            value, end = self._list_at(data, start, match.group(1))
            if value is None:
                return None
            pieces.append(data[pos:start])
            pieces.append(f'"\\u0000harness-shared-list:{len(lists)}"'.encode())
            lists.append(value)
            pos = end
        if not lists:
            return None  # nothing to gain
        pieces.append(data[pos:])
        if any(self.NUL in piece for piece in pieces[::2]):
            return None  # a string that could be a mark
        try:
            out = loads(b"".join(pieces))
        except (ValueError, RecursionError):
            return None
        found = self._put_back(out, lists)
        return out if found is not None else None

    def _list_at(self, data: bytes, start: int, indent: bytes) -> tuple[list[Any] | None, int]:
        """The list whose JSON text begins at ``data[start]`` and where it ends, or (None, 0) when the text there
        is not one JSON array as ``json.dump(indent=2)`` writes it."""
        for text, value in reversed(list(self.known.items())):
            if data.startswith(text, start):
                return value, start + len(text)
        close = data.find(b"\n" + indent + b"]", start)
        if close < 0:
            return None, 0
        end = close + len(indent) + 2
        text = data[start:end]
        try:
            value = loads(text)
        except (ValueError, RecursionError):
            return None, 0
        if not isinstance(value, list):
            return None, 0
        with self.lock:
            self.known[text] = value
            while len(self.known) > self.KEEP or sum(map(len, self.known)) > self.KEEP_BYTES:
                del self.known[next(iter(self.known))]
        return value, end

    def _put_back(self, value: Any, lists: list[list[Any]]) -> Any:
        """Replace each mark in ``value`` (a parsed manifest) by its list, in place; None when a mark is not where a
        list's key left it (a value of an object)."""
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            return value
        for key, item in list(items):
            if isinstance(item, str) and item.startswith(self.MARK):
                if not isinstance(value, dict):
                    return None
                value[key] = lists[int(item[len(self.MARK) :])]
            elif isinstance(item, (dict, list)) and self._put_back(item, lists) is None:
                return None
        return value


_shared_lists = _SharedLists()


def new_manifest(run_id: str, suite: dict[str, Any], fingerprint: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The JSON of a starting run's manifest (``Manifest.new``), for writers of run folders that are no live run:
    importers and synthetic stores."""
    return Manifest.new(run_id, suite, fingerprint, **extra).to_dict()


def status_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """How many records have each status."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.get("status", "unknown")] = counts.get(r.get("status", "unknown"), 0) + 1
    return counts


class RunFolder:
    """One run folder: every file name in it (see the module docstring) and every read and write of them."""

    MANIFEST = MANIFEST
    MERGED = MERGED
    REPORT = "report.html"
    LOCK = ".lock"
    LOGS = "logs"
    PROFILES = "profiles"

    def __init__(self, path: Path | str | RunFolder) -> None:
        self.path = path.path if isinstance(path, RunFolder) else Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    @classmethod
    def create(cls, out_root: Path, suite: str, device: str) -> RunFolder:
        """A fresh run folder under ``out_root`` (see ``new_run_dir``)."""
        return cls(new_run_dir(out_root, suite, device))

    # -- names ---------------------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / self.MANIFEST

    @property
    def merged_path(self) -> Path:
        return self.path / self.MERGED

    @property
    def report_path(self) -> Path:
        return self.path / self.REPORT

    @property
    def logs_dir(self) -> Path:
        return self.path / self.LOGS

    @property
    def lock_path(self) -> Path:
        return self.path / self.LOCK

    @property
    def profiles_dir(self) -> Path:
        return self.path / self.PROFILES

    def records_path(self, rank: int) -> Path:
        """Where rank ``rank`` appends its records."""
        return self.path / f"records-rank{rank}.jsonl"

    def progress_path(self, rank: int) -> Path:
        """Where rank ``rank`` notes the cases it starts."""
        return self.path / f"progress-rank{rank}.jsonl"

    def checksums_path(self, rank: int) -> Path:
        """Where rank ``rank`` appends parameter digests after DDP timed windows."""
        return self.path / f"checksums-rank{rank}.jsonl"

    def profile_dir(self, case_id: str) -> Path:
        """The trace folder of one profiled case (its id made safe as a path)."""
        return self.profiles_dir / re.sub(r"[^A-Za-z0-9_./-]", "_", case_id)

    def record_files(self) -> list[Path]:
        """Every rank's records file with its rescued file, by rank, each rescued file after its rank's own."""
        return sorted(self.path.glob("records-rank*.jsonl"), key=_rank_file_order)

    @staticmethod
    def holds_records(folder: Path) -> list[str]:
        """Names of the records files directly in ``folder`` (merged, rank or imported), sorted."""
        return sorted(p.name for p in Path(folder).glob("records*.jsonl"))

    # -- manifest ------------------------------------------------------------------------------------------
    def is_run(self) -> bool:
        """True when the folder holds a manifest."""
        return self.manifest_path.is_file()

    def read_manifest_dict(self) -> dict[str, Any]:
        """The manifest as JSON (see ``read_manifest`` for the errors)."""
        return read_manifest(self.path)

    def read_manifest(self) -> Manifest:
        """The typed manifest; a ``ManifestError`` when it cannot be read."""
        return Manifest.from_dict(read_manifest(self.path))

    def write_manifest(self, manifest: Manifest | dict[str, Any]) -> None:
        """Rewrite the manifest atomically (readers never see half a file)."""
        write_json_atomic(self.manifest_path, manifest.to_dict() if isinstance(manifest, Manifest) else manifest)

    # -- records -------------------------------------------------------------------------------------------
    def save_record(self, rank: int, record: dict[str, Any]) -> None:
        """Append rank ``rank``'s record, fsynced; rescued elsewhere and ``RecordNotSavedError`` when it cannot."""
        save_record(self.records_path(rank), record)

    def rank_records(self, rank: int) -> list[dict[str, Any]]:
        """Rank ``rank``'s records in its own records file (a rescued file is read by the loader, not here: its
        records are put back by the user, as the message that made it says)."""
        return read_jsonl(self.records_path(rank))

    def merge(self, hold=None) -> list[dict[str, Any]]:
        """Merge every rank's records into ``records.jsonl`` (rank order, then file order); return them. ``hold``,
        when given, turns each record into what the merged file keeps (the rank files stay as written)."""
        records: list[dict[str, Any]] = []
        for path in self.record_files():
            records.extend(read_jsonl(path))
        if hold is not None:
            records = [hold(r) for r in records]
        self.write_merged(records)
        return records

    def write_merged(self, records: list[dict[str, Any]]) -> None:
        """Write ``records.jsonl`` whole, through a temporary file and a rename (readers never see half of it)."""
        tmp = self.path / f".{MERGED}.tmp"
        with open(tmp, "w") as f:
            for record in records:
                f.write(_line(record))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.merged_path)

    def merged_records(self) -> list[dict[str, Any]]:
        """The merged records (empty before the run was closed)."""
        return read_jsonl(self.merged_path)

    def measured_units(self) -> tuple[set[tuple[str, int]], dict | None]:
        """The (case id, world size) pairs recorded by any rank so far, and the newest file's last record. Lines
        another rank is writing right now are passed over: the next look reads them whole."""
        units: set[tuple[str, int]] = set()
        last, newest = None, -1.0
        for path in self.record_files():
            mtime = path.stat().st_mtime
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and "case_id" in record:
                    units.add((record["case_id"], int(record.get("world_size") or 1)))
                    if mtime >= newest:
                        last, newest = record, mtime
        return units, last

    # -- progress events -----------------------------------------------------------------------------------
    def note_progress(self, rank: int, event: dict[str, Any]) -> None:
        """Append one progress event of rank ``rank`` (fsynced, like a record)."""
        append_record(self.progress_path(rank), event)

    def progress_events(self, rank: int) -> list[dict[str, Any]]:
        return read_jsonl(self.progress_path(rank))

    # -- checksums -----------------------------------------------------------------------------------------
    def append_checksum(self, rank: int, entry: dict[str, Any]) -> None:
        append_record(self.checksums_path(rank), entry)

    def checksums(self, rank: int) -> list[dict[str, Any]]:
        return read_jsonl(self.checksums_path(rank))

    # -- lock ----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self):
        """Hold an exclusive lock on the run folder while measuring, so a second ``--resume`` of a run that is
        still going is refused instead of measuring the same cases twice."""
        import fcntl

        from harness.errors import HarnessError

        path = self.lock_path
        try:
            f = open(path, "a+")  # closed by the with below
        except OSError as exc:
            raise StoreError(
                f"{path} cannot be opened to lock the run ({exc.strerror or exc}); make the run folder and its "
                f"{self.LOCK} writable (chmod u+w {self.path} {path}) or copy the run folder to a writable place"
            ) from None
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise HarnessError(
                    f"{self.path} is being measured by another harness process; wait for it to finish (or stop it) "
                    "before resuming"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _rank_file_order(path: Path) -> tuple[int, int, str]:
    """Sort key of ``records-rank<N>[.rescued].jsonl`` files: by rank, each rank's rescued file after its own."""
    name = Path(path).name
    match = re.match(r"records-rank(\d+)", name)
    return (int(match.group(1)) if match else 0, ".rescued." in name, name)
