"""Export records to CSV or Parquet. List and dict cells become JSON text in CSV; Parquet keeps lists."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from harness.errors import StoreError
from harness.store.rundir import file_mode


def export(frame, out: Path, fmt: str | None = None) -> Path:
    """Write ``frame`` to ``out`` as CSV or Parquet (from ``fmt`` or the file's suffix); returns the path. The file
    is written through a temporary file and a rename, so a failed export leaves no half file; a path that cannot
    be written is a StoreError."""
    out = Path(out)
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
