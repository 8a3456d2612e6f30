"""The run folder: ``results/<suite>/<UTC timestamp>-<host>-<device>/`` with a manifest and JSONL records.

Records are appended one JSON line per case and fsynced, so nothing measured is lost when a case, a worker or
the whole run dies; a truncated last line (a write cut by a crash) is skipped with a warning on reading. The
manifest is rewritten atomically (write to a temporary file, fsync, rename) whenever the run's state changes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import StoreError
from harness.store.record import SCHEMA_VERSION

MANIFEST = "manifest.json"
MERGED = "records.jsonl"


def utc_now() -> str:
    """The current UTC time as ISO 8601 with seconds and a trailing Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def rank_file(run_dir: Path, rank: int) -> Path:
    """Where rank ``rank`` appends its records."""
    return Path(run_dir) / f"records-rank{rank}.jsonl"


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line and fsync it, so a crash right after loses nothing already measured."""
    line = json.dumps(record, separators=(",", ":"), allow_nan=False, default=str) + "\n"
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


def read_jsonl(path: Path, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """Records of one JSONL file. Unparseable lines are skipped with a warning (and noted in ``skipped``)."""
    out: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return out
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            last = number >= len(lines) - 1
            what = "truncated last line" if last else "corrupt line"
            note = f"{path}:{number}: {what} skipped"
            warnings.warn(note, stacklevel=2)
            if skipped is not None:
                skipped.append(note)
            continue
        if isinstance(value, dict):
            out.append(value)
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


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest; a StoreError when the folder is not a run."""
    path = Path(run_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{run_dir} is not a run folder: it has no {MANIFEST}") from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def new_manifest(run_id: str, suite: dict[str, Any], fingerprint: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A manifest for a run that is starting: status ``running`` and no counts yet."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "suite": suite,
        "environment": fingerprint,
        "started_at": utc_now(),
        "finished_at": None,
        "status": "running",
        "counts": {},
        "peak": None,
        **extra,
    }


def merge_rank_files(run_dir: Path) -> list[dict[str, Any]]:
    """Merge every ``records-rank*.jsonl`` into ``records.jsonl`` (rank order, then file order); return records."""
    run_dir = Path(run_dir)
    records: list[dict[str, Any]] = []
    for path in sorted(run_dir.glob("records-rank*.jsonl"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0)):
        records.extend(read_jsonl(path))
    tmp = run_dir / f".{MERGED}.tmp"
    with open(tmp, "w") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, run_dir / MERGED)
    return records


def status_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """How many records have each status."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.get("status", "unknown")] = counts.get(r.get("status", "unknown"), 0) + 1
    return counts
