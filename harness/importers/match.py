"""Holding measured cases against published ones: which published figure a harness case is compared with.

The rule (``MATCH_RULE``): cases match on model, mode, resolution, precision and memory format. Batch size is
not matched, because published files use their own (timm's inference files run 256 to 2048 images per batch);
among the published cases that match, the one whose batch size is nearest on a log scale is taken (the larger on a
tie) and both batch sizes are shown. Compile is matched only when both sides record it (a record's ``compile`` is
null when its source did not say). Only ``ok`` records take part. Published figures have no samples, so the
result is a ratio per case and their geometric mean, never a significance test. Imports pandas, not torch.
"""

from __future__ import annotations

import math

MATCH_FIELDS = ("model", "mode", "resolution", "precision", "channels_last")
MATCH_RULE = (
    "cases match on model, mode, resolution, precision and memory format (channels_last); batch size is not "
    "matched (the nearest published batch size is taken), and compile only when both sides record it"
)
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


def _known(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def match_published(measured, published):
    """One row per measured ``ok`` case that has a published match: both throughputs and ``ratio`` = measured /
    published (above 1: the measured case is faster). ``measured`` and ``published`` are frames from
    ``harness.store.load``; the device name comes from ``env.device_name`` where present. Columns: ``COLUMNS``.
    """
    import pandas as pd

    def prepared(frame):
        frame = frame[frame["status"] == "ok"].copy()
        frame["device_label"] = frame["env.device_name"] if "env.device_name" in frame else frame["device_name"]
        return frame.to_dict("records")

    measured, published = prepared(measured), prepared(published)
    index: dict[tuple, list] = {}
    for row in published:
        index.setdefault(tuple(row[f] for f in MATCH_FIELDS), []).append(row)
    out = []
    for row in measured:
        candidates = [
            p
            for p in index.get(tuple(row[f] for f in MATCH_FIELDS), [])
            if not (_known(row["compile"]) and _known(p["compile"])) or bool(row["compile"]) == bool(p["compile"])
        ]
        if not candidates:
            continue
        best = min(candidates, key=lambda p: (abs(math.log2(p["batch_size"] / row["batch_size"])), -p["batch_size"]))
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


def geometric_mean(ratios) -> float | None:
    """The geometric mean of positive ``ratios``; None when there are none."""
    values = [float(r) for r in ratios if _known(r) and r > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))
