"""Holding measured cases against published ones: which published figure a harness case is compared with.

The rule (``MATCH_RULE``): cases match on model, mode, resolution, precision and memory format. Batch size is
not matched, because published files use their own (timm's inference files run 256 to 2048 images per batch);
among the published cases that match, the one whose batch size is nearest on a log scale is taken (the larger on a
tie) and both batch sizes are shown. Compile is matched only when both sides record it (a record's ``compile`` is
null when its source did not say). Only ``ok`` records take part. Published figures have no samples, so the
result is a ratio per case and their geometric mean, never a significance test. Imports pandas, not torch.

``match_published(measured, published)`` pairs two DataFrames; ``compare_with_published(runs)`` is the hardware
comparison of ``harness compare --hardware`` under this rule, used when measured and imported runs are mixed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def best_match(record: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate that ``record`` is compared with under ``MATCH_RULE``, or None. ``candidates`` are records
    (dicts with the case fields, ``batch_size`` and ``status``); only ``ok`` ones are considered."""
    key = tuple(record.get(f) for f in MATCH_FIELDS)
    fits = [
        c
        for c in candidates
        if c.get("status") == "ok"
        and tuple(c.get(f) for f in MATCH_FIELDS) == key
        and (
            not (_known(record.get("compile")) and _known(c.get("compile")))
            or bool(record["compile"]) == bool(c["compile"])
        )
    ]
    if not fits:
        return None
    batch = record["batch_size"]
    return min(fits, key=lambda c: (abs(math.log2(c["batch_size"] / batch)), -c["batch_size"]))


def match_published(measured, published):
    """One row per measured ``ok`` case that has a published match: both throughputs and ``ratio`` = measured /
    published (above 1: the measured case is faster). ``measured`` and ``published`` are frames from
    ``harness.store.load``; the device name comes from ``env.device_name`` where present. Columns: ``COLUMNS``.
    """
    import pandas as pd

    def records(frame) -> list[dict[str, Any]]:
        frame = frame[frame["status"] == "ok"].copy()
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


def is_published(run: Any) -> bool:
    """True for an imported run (its manifest names a ``source``); False for a run the harness measured."""
    return bool((run.manifest or {}).get("source"))


def mixes_sources(runs: list[Any]) -> bool:
    """True when ``runs`` hold both measured and imported runs, the case ``compare_with_published`` is for."""
    kinds = {is_published(r) for r in runs}
    return kinds == {True, False}


def _label(run: Any) -> str:
    env = run.manifest.get("environment") or {}
    first = run.records[0] if run.records else {}
    device = env.get("device_name") or first.get("device_name") or first.get("device") or "unknown device"
    parts = [f"torch {env['torch']}"] if env.get("torch") else []
    if is_published(run):
        parts.append("published")
    return f"{device} ({', '.join(parts)})" if parts else str(device)


def _case_label(record: dict[str, Any], batches: list[Any]) -> str:
    text = f"{record['model']}/{record['mode']}/{record['precision']}" + ("/cl" if record.get("channels_last") else "")
    text += f"/r{record['resolution']}" + ("/compile" if record.get("compile") else "")
    return text + " bs " + " | ".join("-" if b is None else str(b) for b in batches)


def compare_with_published(runs: list[Any]):
    """Runs side by side under ``MATCH_RULE`` (the first is the reference): a ``harness.regress.HardwareComparison``.

    Each case of the first run is paired, in every other run, with the case ``best_match`` picks; a row keeps its
    own run's batch size, and the case label lists the batch size of every run. Speedup is throughput (img/s) over
    the first run's, summarised by geometric mean per mode and precision. ``runs`` are ``harness.store`` Runs.
    """
    import pandas as pd

    from harness.errors import HarnessError
    from harness.regress.hardware import HardwareComparison

    if len(runs) < 2:
        raise HarnessError(f"a comparison needs at least two runs; got {len(runs)}")
    labels = [_label(r) for r in runs]
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            labels[i] = f"{label} [{Path(runs[i].path).name}]"
    notes = [f"{labels[i]}: imported from {r.manifest['source']}: published figures, no samples, so speedups are "
             "ratios without a test" for i, r in enumerate(runs) if is_published(r)]  # fmt: skip
    reference = [r for r in runs[0].records if int(r.get("rank") or 0) == 0]
    rows, used = [], [set() for _ in runs]
    for record in reference:
        ref_ok = record.get("status") == "ok"
        pairs = [record] + [best_match(record, run.records) if ref_ok else None for run in runs[1:]]
        label = _case_label(record, [p["batch_size"] if p else None for p in pairs])
        for i, pair in enumerate(pairs):
            if pair is None:
                continue
            used[i].add(id(pair))
            ok = pair.get("status") == "ok"
            tput = pair.get("throughput_img_s") if ok else None
            ref = record.get("throughput_img_s") if ref_ok else None
            rows.append(
                {
                    **{f: pair.get(f) for f in MATCH_FIELDS},
                    "batch_size": pair.get("batch_size"),
                    "world_size": pair.get("world_size") or 1,
                    "case": label,
                    "run": labels[i],
                    "run_index": i,
                    "run_dir": str(runs[i].path),
                    "device_name": pair.get("device_name"),
                    "source": runs[i].manifest.get("source") or "harness",
                    "status": pair.get("status"),
                    "throughput_img_s": tput,
                    "speedup": tput / ref if tput and ref else None,
                    "img_per_j": (pair.get("telemetry") or {}).get("img_per_j") if ok else None,
                    "mfu": pair.get("mfu") if ok else None,
                    "achieved_tflops": pair.get("achieved_tflops") if ok else None,
                    "step_ms_median": pair.get("step_ms_median") if ok else None,
                    "step_ms_mean": pair.get("step_ms_mean") if ok else None,
                    "n_samples": len(pair.get("samples_ms") or []),
                }
            )
    for i, run in enumerate(runs[1:], 1):
        unused = sum(1 for r in run.records if r.get("status") == "ok" and id(r) not in used[i])
        if unused:
            notes.append(f"{labels[i]}: {unused} case(s) match no case of the first run and are not shown")
    frame = pd.DataFrame(rows)
    rule = MATCH_RULE + "; speedup = throughput / the first run's throughput for the matched case"
    return HardwareComparison(labels, [str(r.path) for r in runs], frame, _summary(frame, labels), rule, notes)


def _summary(frame, labels: list[str]):
    import pandas as pd

    columns = ["run", "run_index", "mode", "precision", "cases", "geomean_speedup", "min_speedup", "max_speedup"]
    rows = []
    usable = frame[frame["speedup"].notna() & (frame["speedup"] > 0)] if not frame.empty else frame
    for i, label in enumerate(labels):
        mine = usable[usable["run_index"] == i] if not usable.empty else usable
        groups = list(mine.groupby(["mode", "precision"], sort=True)) if not mine.empty else []
        if len(groups) != 1:
            groups.insert(0, (("all", "all"), mine))
        for (mode, precision), group in groups:
            values = [float(v) for v in group["speedup"]] if not group.empty else []
            rows.append(
                {
                    "run": label,
                    "run_index": i,
                    "mode": mode,
                    "precision": precision,
                    "cases": len(values),
                    "geomean_speedup": geometric_mean(values),
                    "min_speedup": min(values) if values else None,
                    "max_speedup": max(values) if values else None,
                }
            )
    return pd.DataFrame(rows, columns=columns)


def geometric_mean(ratios) -> float | None:
    """The geometric mean of positive ``ratios``; None when there are none."""
    values = [float(r) for r in ratios if _known(r) and r > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))
