"""Hardware comparison: the same cases measured on different machines (or torch builds), side by side.

The matching rule, stated in every output: cases match on model, mode, batch size, resolution, precision and
channels_last (and world size, for DDP cases, whose global throughput is used). The speedup of a run is its
throughput over the first run's throughput for the same case, and each run's speedups are summarised by their
geometric mean per mode and precision (a geometric mean, so a 2x gain and a 2x loss cancel). Images per joule and
MFU are set beside the throughput where the records have them. Environment fingerprints are not required to
match here: different hardware is the point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.regress.metrics import field as record_field
from harness.regress.metrics import number, step_samples

MATCH_FIELDS = ("model", "mode", "batch_size", "resolution", "precision", "channels_last")
MATCH_RULE = (
    "cases match on model, mode, batch_size, resolution, precision and channels_last (and world size for DDP); "
    "speedup = throughput / the first run's throughput for the same case; geometric mean per mode and precision"
)


@dataclass
class HardwareComparison:
    """Runs side by side. ``frame`` has one row per (case, run): the match fields, ``case``, ``run`` (label),
    ``run_index``, ``run_dir``, ``device_name``, ``source``, ``status``, ``throughput_img_s``, ``speedup`` (vs
    run 0), ``img_per_j``, ``mfu``, ``achieved_tflops``, ``step_ms_median``, ``step_ms_mean`` (the only step time
    of published figures), ``n_samples``. ``summary`` has one row per (run, mode, precision) plus ``all``/``all``
    per run: ``geomean_speedup``, ``min_speedup``, ``max_speedup``, ``cases``."""

    labels: list[str]
    run_dirs: list[str]
    frame: Any
    summary: Any
    rule: str = MATCH_RULE
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: labels, rule, notes, summary rows and case rows (NaN as null)."""

        def rows(frame: Any) -> list[dict[str, Any]]:
            return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]

        return {
            "runs": [{"label": a, "run_dir": b} for a, b in zip(self.labels, self.run_dirs, strict=True)],
            "rule": self.rule,
            "notes": self.notes,
            "summary": rows(self.summary),
            "cases": rows(self.frame),
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def _label(run: Any) -> str:
    env = run.manifest.get("environment") or {}
    first = run.records[0] if run.records else {}
    device = env.get("device_name") or first.get("device_name") or first.get("device") or "unknown device"
    torch = env.get("torch")
    return f"{device} (torch {torch})" if torch else str(device)


def _key(record: dict[str, Any]) -> tuple:
    world = int(number(record.get("world_size")) or 1)
    return (*(record.get(f) for f in MATCH_FIELDS), world)


def _case_label(key: tuple) -> str:
    model, mode, bs, res, precision, cl, world = key
    text = f"{model}/{mode}/bs{bs}/{precision}" + ("/cl" if cl else "") + f"/r{res}"
    return text + (f"/ws{world}" if world > 1 else "")


def _throughput(record: dict[str, Any]) -> float | None:
    if int(number(record.get("world_size")) or 1) > 1:
        return number(record.get("global_throughput_img_s")) or number(record.get("throughput_img_s"))
    return number(record.get("throughput_img_s"))


def _read(runs: Iterable[Any]) -> list[Any]:
    out = []
    for item in runs:
        if hasattr(item, "records") and hasattr(item, "manifest"):
            out.append(item)
        elif isinstance(item, (str, Path)):
            from harness.store import read_runs

            out.extend(read_runs([item]))
        else:
            raise HarnessError(f"hardware_compare takes runs or run folders, not a {type(item).__name__}")
    return out


def _index(run: Any, label: str, notes: list[str]) -> dict[tuple, dict[str, Any]]:
    index: dict[tuple, dict[str, Any]] = {}
    shared = 0
    for record in run.records:
        if int(number(record.get("world_size")) or 1) > 1 and int(number(record.get("rank")) or 0) != 0:
            continue  # a DDP case is one row: rank 0 carries the global throughput
        key = _key(record)
        if key in index:
            shared += 1
            if index[key].get("status") == "ok" or record.get("status") != "ok":
                continue
        index[key] = record
    if shared:
        notes.append(f"{label}: {shared} record(s) share a case under the matching rule with another; one is kept")
    return index


def hardware_compare(runs: Iterable[Any]) -> HardwareComparison:
    """Put ``runs`` (Runs or run folders; the first is the reference) side by side, case by case.

    See the module docstring for the matching rule. Throughput is in img/s, speedup is a ratio to the first run,
    ``img_per_j`` is images per joule and ``mfu`` a fraction of the measured peak. Runs without samples (imported
    published figures) compare like any other: a speedup is a ratio of two numbers and needs no test.
    """
    import pandas as pd

    runs = _read(runs)
    if len(runs) < 2:
        raise HarnessError(f"hardware compare needs at least two runs; got {len(runs)}")
    labels = [_label(r) for r in runs]
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            labels[i] = f"{label} [{Path(runs[i].path).name}]"
    notes: list[str] = [f"{Path(r.path).name}: {s}" for r in runs for s in r.skipped]
    indexes = [_index(run, labels[i], notes) for i, run in enumerate(runs)]
    for run, label in zip(runs, labels, strict=True):
        if run.manifest.get("source"):
            notes.append(f"{label}: imported from {run.manifest['source']}: published figures, no samples")
    keys = list(dict.fromkeys(k for index in indexes for k in index))
    rows = []
    for key in keys:
        reference = indexes[0].get(key)
        ref = _throughput(reference) if reference and reference.get("status") == "ok" else None
        for i, index in enumerate(indexes):
            record = index.get(key)
            if record is None:
                continue
            ok = record.get("status") == "ok"
            tput = _throughput(record) if ok else None
            samples = step_samples(record)
            rows.append(
                {
                    **dict(zip((*MATCH_FIELDS, "world_size"), key, strict=True)),
                    "case": _case_label(key),
                    "run": labels[i],
                    "run_index": i,
                    "run_dir": str(runs[i].path),
                    "device_name": record.get("device_name"),
                    "source": runs[i].manifest.get("source") or "harness",
                    "status": record.get("status"),
                    "throughput_img_s": tput,
                    "speedup": tput / ref if tput and ref else None,
                    "img_per_j": number(record_field(record, "telemetry.img_per_j")) if ok else None,
                    "mfu": number(record.get("mfu")) if ok else None,
                    "achieved_tflops": number(record.get("achieved_tflops")) if ok else None,
                    "step_ms_median": number(record.get("step_ms_median")) if ok else None,
                    "step_ms_mean": number(record.get("step_ms_mean")) if ok else None,
                    "n_samples": 0 if samples is None else int(samples.size),
                }
            )
    frame = pd.DataFrame(rows)
    unmatched = [k for k in keys if k not in indexes[0]]
    if unmatched:
        notes.append(f"{len(unmatched)} case(s) are not in the first run and have no speedup")
    return HardwareComparison(labels, [str(r.path) for r in runs], frame, _summary(frame, labels), notes=notes)


def _summary(frame: Any, labels: list[str]) -> Any:
    import numpy as np
    import pandas as pd

    rows = []
    if frame.empty:
        return pd.DataFrame(columns=["run", "run_index", "mode", "precision", "cases", "geomean_speedup"])
    usable = frame[frame["speedup"].notna() & (frame["speedup"] > 0)]
    for i, label in enumerate(labels):
        mine = usable[usable["run_index"] == i]
        groups = [(k, g) for k, g in mine.groupby(["mode", "precision"], sort=True)]
        if len(groups) != 1:
            groups.insert(0, (("all", "all"), mine))
        for (mode, precision), group in groups:
            values = group["speedup"].to_numpy(dtype=float)
            rows.append(
                {
                    "run": label,
                    "run_index": i,
                    "mode": mode,
                    "precision": precision,
                    "cases": int(values.size),
                    "geomean_speedup": float(np.exp(np.log(values).mean())) if values.size else None,
                    "min_speedup": float(values.min()) if values.size else None,
                    "max_speedup": float(values.max()) if values.size else None,
                }
            )
    return pd.DataFrame(rows)
