"""Holding measured cases against published ones: which published figure a harness case is compared with.

The rule (``MATCH_RULE``) is the hardware comparison's ``NEAREST_BATCH`` pairing (``harness.regress.pairing``):
cases match on model, mode, resolution, precision and memory format; batch size is not matched, because published
files use their own (timm's inference files run 256 to 2048 images per batch): among the published cases that
match, the one whose batch size is nearest on a log scale is taken (the larger on a tie) and both batch sizes are
shown. Compile is matched only when both sides record it (a record's ``compile`` is null when its source did not
say). Only ``ok`` records take part. Published figures have no samples, so the result is a ratio per case and
their geometric mean, never a significance test. Imports pandas, not torch.

``match_published(measured, published)`` pairs two DataFrames; ``compare_with_published(runs)`` is the hardware
comparison of ``harness compare --hardware`` under this rule, used when measured and imported runs are mixed.
"""

from __future__ import annotations

from typing import Any

from harness.regress.hardware import HardwareComparison, geometric_mean, hardware_compare
from harness.regress.pairing import NEAREST_BATCH, best_match, is_published, mixes_sources
from harness.regress.pairing import PUBLISHED_FIELDS as MATCH_FIELDS
from harness.regress.pairing import PUBLISHED_RULE as MATCH_RULE
from harness.store.record import Status

__all__ = [
    "COLUMNS",
    "MATCH_FIELDS",
    "MATCH_RULE",
    "best_match",
    "compare_with_published",
    "geometric_mean",
    "is_published",
    "match_published",
    "mixes_sources",
]

COLUMNS = (
    *MATCH_FIELDS,
    "compile",
    "compile_published",
    "batch_size",
    "batch_size_published",
    "throughput_img_s",
    "throughput_published",
    "ratio",
    "device_name",
    "device_name_published",
    "run_dir",
    "run_dir_published",
)


def match_published(measured, published):
    """One row per measured ``ok`` case that has a published match: both throughputs and ``ratio`` = measured /
    published (above 1: the measured case is faster). ``measured`` and ``published`` are frames from
    ``harness.store.load``; the device name comes from ``env.device_name`` where present. Columns: ``COLUMNS``.
    """
    import pandas as pd

    def records(frame) -> list[dict[str, Any]]:
        frame = frame[frame["status"] == Status.OK].copy()
        frame["device_label"] = frame["env.device_name"] if "env.device_name" in frame else frame["device_name"]
        return frame.to_dict("records")

    candidates = records(published)
    out = []
    for row in records(measured):
        best = best_match(row, candidates)
        if best is None:
            continue
        out.append(
            {
                **{f: row[f] for f in MATCH_FIELDS},
                "compile": row["compile"],
                "compile_published": best["compile"],
                "batch_size": row["batch_size"],
                "batch_size_published": best["batch_size"],
                "throughput_img_s": row["throughput_img_s"],
                "throughput_published": best["throughput_img_s"],
                "ratio": row["throughput_img_s"] / best["throughput_img_s"],
                "device_name": row["device_label"],
                "device_name_published": best["device_label"],
                "run_dir": row.get("run_dir"),
                "run_dir_published": best.get("run_dir"),
            }
        )
    return pd.DataFrame(out, columns=list(COLUMNS))


def compare_with_published(runs: list[Any]) -> HardwareComparison:
    """Runs side by side under ``MATCH_RULE`` (the first is the reference): ``hardware_compare`` with the
    ``NEAREST_BATCH`` pairing. Each case of the first run is paired, in every other run, with the case
    ``best_match`` picks; a row keeps its own run's batch size, and the case label lists the batch size of every
    run. ``runs`` are ``harness.store`` Runs (or run folders)."""
    return hardware_compare(runs, NEAREST_BATCH)
