"""Hardware comparison: the same cases measured on different machines (or torch builds, or published), side by side.

``hardware_compare(runs, pairing)`` is the one row builder. The pairing (``harness.regress.pairing``) says which
record of each run stands beside a case: ``EXACT`` (the default) matches cases on model, mode, batch size,
resolution, precision and channels_last (and world size, for DDP cases, whose global throughput is used);
``NEAREST_BATCH`` is the published-matching rule, used when measured runs are held against imported published
figures. The rule is stated in every output. The speedup of a run is its throughput over the first run's
throughput for the same case, and each run's speedups are summarised by their geometric mean per mode and
precision (a geometric mean, so a 2x gain and a 2x loss cancel). Images per joule and MFU are set beside the
throughput where the records have them. Environment fingerprints are not required to match here: different
hardware is the point. Published figures have no samples: their speedups are ratios, never a test.
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
from harness.regress.pairing import (
    CASE_FIELDS,
    EXACT,
    EXACT_RULE,
    Index,
    Pairing,
    is_ok,
    is_published,
    known,
    world_size,
)

MATCH_FIELDS = CASE_FIELDS
MATCH_RULE = EXACT_RULE
#: The columns of ``HardwareComparison.frame``, in order.
ROW_COLUMNS = (
    *CASE_FIELDS,
    "world_size",
    "case",
    "case_id",
    "run",
    "run_index",
    "run_dir",
    "device_name",
    "source",
    "status",
    "throughput_img_s",
    "speedup",
    "img_per_j",
    "mfu",
    "achieved_tflops",
    "step_ms_median",
    "step_ms_mean",
    "n_samples",
)
#: The columns of ``HardwareComparison.summary``, in order.
SUMMARY_COLUMNS = ("run", "run_index", "mode", "precision", "cases", "geomean_speedup", "min_speedup", "max_speedup")


@dataclass
class HardwareComparison:
    """Runs side by side. ``frame`` has one row per (case, run), columns ``ROW_COLUMNS``: the case fields and
    ``world_size``, ``case`` (its label), ``case_id`` (the record's, in its run), ``run`` (label), ``run_index``,
    ``run_dir``, ``device_name``, ``source``, ``status``, ``throughput_img_s`` (global for DDP), ``speedup`` (vs
    run 0), ``img_per_j``, ``mfu``, ``achieved_tflops``, ``step_ms_median``, ``step_ms_mean`` (the only step time
    of published figures), ``n_samples``. ``summary`` has one row per (run, mode, precision), plus ``all``/``all``
    first for a run with other than one such group: ``cases``, ``geomean_speedup``, ``min_speedup``,
    ``max_speedup``. ``pairs`` gives every pair of runs' ratio (``pair_ratios``). ``manifests`` are the runs'
    manifests in run order (what a page shows about each run; not part of ``to_dict``)."""

    labels: list[str]
    run_dirs: list[str]
    frame: Any
    summary: Any
    rule: str = MATCH_RULE
    notes: list[str] = field(default_factory=list)
    manifests: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def pairs(self) -> list[dict[str, Any]]:
        """Every pair of runs' geometric-mean ratio (``pair_ratios``): a, b, cases, geomean, min, max."""
        return pair_ratios(self.frame, len(self.labels))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: labels, rule, notes, summary rows, every pair's ratio and case rows (NaN as null)."""

        def rows(frame: Any) -> list[dict[str, Any]]:
            return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]

        return {
            "runs": [{"label": a, "run_dir": b} for a, b in zip(self.labels, self.run_dirs, strict=True)],
            "rule": self.rule,
            "notes": self.notes,
            "summary": rows(self.summary),
            "pairs": [{k: _json_value(v) for k, v in p.items()} for p in self.pairs],
            "cases": rows(self.frame),
        }


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def run_labels(runs: list[Any]) -> list[str]:
    """One label per run, the one rule: the device (from the manifest's environment, else the first record), then
    the torch version and ``published`` for an imported run in brackets. Of runs that share a label, all but the
    last get their run folder's name appended."""
    labels = []
    for run in runs:
        env = run.manifest.get("environment") or {}
        device = _device(run)
        parts = [f"torch {env['torch']}"] if env.get("torch") else []
        if is_published(run):
            parts.append("published")
        labels.append(f"{device} ({', '.join(parts)})" if parts else device)
    # One at a time, so the last of several runs that share a label keeps it as it is.
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            labels[i] = f"{label} [{Path(runs[i].path).name}]"
    return labels


def _device(run: Any) -> str:
    env = run.manifest.get("environment") or {}
    first = run.records[0] if run.records else {}
    return str(env.get("device_name") or first.get("device_name") or first.get("device") or "unknown device")


def software(manifest: dict[str, Any]) -> tuple[str, str]:
    """The run's torch and CUDA versions from its manifest's environment ("" where not recorded; CUDA "none" for
    a CPU run)."""
    env = manifest.get("environment") or {}
    cuda = env.get("cuda") or ("none" if env.get("device_type") == "cpu" else "")
    return str(env.get("torch") or ""), str(cuda)


def software_text(manifest: dict[str, Any]) -> str:
    """``torch 2.4.0, CUDA 12.4`` (what of it is known; ``versions unknown`` when nothing is)."""
    torch, cuda = software(manifest)
    parts = ([f"torch {torch}"] if torch else []) + ([f"CUDA {cuda}"] if cuda else [])
    return ", ".join(parts) or "versions unknown"


def software_change(a: dict[str, Any], b: dict[str, Any]) -> str:
    """What differs in software between the runs of manifests ``a`` and ``b``, ``torch 2.4.0→2.9.1, CUDA
    12.4→12.8``; empty when nothing known differs."""
    out = []
    for name, x, y in zip(("torch", "CUDA"), software(a), software(b), strict=True):
        if x and y and x != y:
            out.append(f"{name} {x}→{y}")
    return ", ".join(out)


#: The start of the warning that the compared runs differ in software as well as hardware.
SOFTWARE_WARNING = "Software differs as well as hardware"


def software_warning(manifests: list[dict[str, Any]], devices: list[str]) -> str | None:
    """A warning naming every run's torch and CUDA versions when the runs differ in device and also in torch or
    CUDA (every ratio then mixes hardware and software); None when they do not."""
    if len(set(devices)) < 2:
        return None
    if not any(software_change(a, b) for a in manifests for b in manifests):
        return None
    each = "; ".join(f"{d}: {software_text(m)}" for d, m in zip(devices, manifests, strict=True))
    return f"{SOFTWARE_WARNING}, so every ratio mixes the two: {each}."


def pair_ratios(frame: Any, n: int) -> list[dict[str, Any]]:
    """Every pair of runs (a, b) with a < b: over the cases where both succeeded with a throughput, the geometric
    mean, min and max of b's throughput over a's (``cases`` of them). The page recomputes the same from the rows it
    shows when its filter changes."""
    by_case: dict[str, dict[int, float]] = {}
    for r in frame.to_dict("records"):
        tput = number(r["throughput_img_s"])
        if tput is not None and tput > 0:
            by_case.setdefault(r["case"], {})[int(r["run_index"])] = tput
    out = []
    for a in range(n):
        for b in range(a + 1, n):
            ratios = [runs[b] / runs[a] for runs in by_case.values() if a in runs and b in runs]
            out.append({"a": a, "b": b, **ratio_stats(ratios)})
    return out


def ratio_stats(ratios: list[float]) -> dict[str, Any]:
    """``cases`` (how many ratios), their ``geomean``, ``min`` and ``max`` (None when there are none)."""
    return {
        "cases": len(ratios),
        "geomean": geometric_mean(ratios),
        "min": min(ratios) if ratios else None,
        "max": max(ratios) if ratios else None,
    }


def imported_note(label: str, source: Any) -> str:
    """The note that says run ``label`` holds published figures imported from ``source``."""
    return f"{label}: imported from {source}: published figures, no samples, so speedups are ratios without a test"


def throughput(record: dict[str, Any]) -> float | None:
    """The record's throughput in img/s: the global one (summed over ranks) for a DDP case."""
    if world_size(record) > 1:
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


def _index(run: Any, pairing: Pairing, label: str, notes: list[str]) -> Index:
    """The run's cases by ``pairing.key``: one record per case (an ``ok`` one where there is one); a DDP case is
    its rank 0, which carries the global throughput."""
    index: Index = {}
    shared = 0
    for record in run.records:
        if world_size(record) > 1 and int(number(record.get("rank")) or 0) != 0:
            continue
        key = pairing.key(record)
        if key in index:
            shared += 1
            if is_ok(index[key]) or not is_ok(record):
                continue
        index[key] = record
    if shared:
        notes.append(f"{label}: {shared} record(s) share a case under the matching rule with another; one is kept")
    return index


def _row(record: dict[str, Any], case: str, i: int, run: Any, label: str, reference: float | None) -> dict[str, Any]:
    ok = is_ok(record)
    tput = throughput(record) if ok else None
    samples = step_samples(record)
    return {
        **{f: record.get(f) for f in CASE_FIELDS},
        "world_size": world_size(record),
        "case": case,
        "case_id": record.get("case_id"),
        "run": label,
        "run_index": i,
        "run_dir": str(run.path),
        "device_name": record.get("device_name"),
        "source": run.manifest.get("source") or "harness",
        "status": record.get("status"),
        "throughput_img_s": tput,
        "speedup": tput / reference if tput and reference else None,
        "img_per_j": number(record_field(record, "telemetry.img_per_j")) if ok else None,
        "mfu": number(record.get("mfu")) if ok else None,
        "achieved_tflops": number(record.get("achieved_tflops")) if ok else None,
        "step_ms_median": number(record.get("step_ms_median")) if ok else None,
        "step_ms_mean": number(record.get("step_ms_mean")) if ok else None,
        "n_samples": 0 if samples is None else int(samples.size),
    }


def hardware_compare(runs: Iterable[Any], pairing: Pairing = EXACT) -> HardwareComparison:
    """Put ``runs`` (Runs or run folders; the first is the reference) side by side, case by case.

    ``pairing`` (``harness.regress.pairing``: ``EXACT`` or ``NEAREST_BATCH``, or ``pairing_for(runs)``) says which
    records stand side by side; see the module docstring for the rest. Throughput is in img/s, speedup is a ratio
    to the first run, ``img_per_j`` is images per joule and ``mfu`` a fraction of the measured peak. Runs without
    samples (imported published figures) compare like any other: a speedup is a ratio of two numbers and needs no
    test.
    """
    import pandas as pd

    runs = _read(runs)
    if len(runs) < 2:
        raise HarnessError(f"hardware compare needs at least two runs; got {len(runs)}")
    labels = run_labels(runs)
    notes: list[str] = [f"{Path(r.path).name}: {s}" for r in runs for s in r.skipped]
    indexes = [_index(run, pairing, labels[i], notes) for i, run in enumerate(runs)]
    notes += [
        imported_note(label, r.manifest["source"]) for r, label in zip(runs, labels, strict=True) if is_published(r)
    ]
    pairs = pairing.pairs(indexes)
    rows = []
    for pair in pairs:
        reference = throughput(pair.records[0]) if is_ok(pair.records[0]) else None
        for i, record in enumerate(pair.records):
            if record is not None:
                rows.append(_row(record, pair.label, i, runs[i], labels[i], reference))
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    notes += pairing.notes(indexes, pairs, labels)
    warning = software_warning([r.manifest for r in runs], [_device(r) for r in runs])
    if warning:
        notes.insert(0, warning)
    return HardwareComparison(
        labels,
        [str(r.path) for r in runs],
        frame,
        _summary(frame, labels),
        pairing.rule,
        notes,
        [r.manifest for r in runs],
    )


def _summary(frame: Any, labels: list[str]) -> Any:
    """Each run's speedups (positive ones) per mode and precision, with ``all``/``all`` first unless the run has
    exactly one such group (a run with none gets an ``all`` row of no cases)."""
    import pandas as pd

    rows = []
    for i, label in enumerate(labels):
        every: list[float] = []
        groups: dict[tuple[Any, Any], list[float]] = {}
        for r in frame[frame["run_index"] == i].to_dict("records"):
            speedup = number(r["speedup"])
            if speedup is None or speedup <= 0:
                continue
            every.append(speedup)
            if known(r["mode"]) and known(r["precision"]):
                groups.setdefault((r["mode"], r["precision"]), []).append(speedup)
        ordered = sorted(groups.items(), key=lambda g: (str(g[0][0]), str(g[0][1])))
        if len(ordered) != 1:
            ordered.insert(0, (("all", "all"), every))
        for (mode, precision), values in ordered:
            stats = ratio_stats(values)
            rows.append(
                {
                    "run": label,
                    "run_index": i,
                    "mode": mode,
                    "precision": precision,
                    "cases": stats["cases"],
                    **{f"{k}_speedup": stats[k] for k in ("geomean", "min", "max")},
                }
            )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def geometric_mean(ratios: Iterable[Any]) -> float | None:
    """The geometric mean of the positive finite ``ratios`` (others are left out); None when there are none."""
    values = [v for v in (number(r) for r in ratios) if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))
