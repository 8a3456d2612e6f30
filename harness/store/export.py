"""Export records to CSV or Parquet. List and dict cells become JSON text in CSV; Parquet keeps lists."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import StoreError


def export(frame, out: Path, fmt: str | None = None) -> Path:
    """Write ``frame`` to ``out`` as CSV or Parquet (from ``fmt`` or the file's suffix); returns the path."""
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".") or "csv").lower()
    if fmt not in ("csv", "parquet"):
        raise StoreError(f"unknown export format {fmt!r}; valid: csv, parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (list, dict))).any():
            if fmt == "csv":
                frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
            elif frame[column].map(lambda v: isinstance(v, dict)).any():
                frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, dict) else v)
    if fmt == "csv":
        frame.to_csv(out, index=False)
    else:
        try:
            frame.to_parquet(out, index=False)
        except ImportError:
            raise StoreError(
                "Parquet export needs pyarrow: pip install 'harness[parquet]', or export to .csv"
            ) from None
    return out
