#!/usr/bin/env python3
"""The verdict of ``scripts/gpu-check.sh``: checks over its run folders, and the figures of a validation page.

Reads each run folder's ``manifest.json`` and ``records.jsonl`` (or, when a run died before its merge, its
``records-rank<N>.jsonl``), the script's step log, and ``harness env --json``; prints a table with one row per
check, writes it as markdown and JSON, and writes ``validation.md``: the figures of a ``docs/validation/<gpu>.md``
page. Exit status: 0 when no check fails, 1 when one does, 2 on bad arguments. Standard library only, so it runs
wherever the harness's run folders are, without the harness or torch.

    python scripts/gpu_check_verdict.py [--cpu] --run checks=DIR --run validation=DIR ... \
        [--steps steps.tsv] [--env env.json] [--write DIR]

The checks (see docs/gpu-validation.md): step exit codes, run folders complete, every case ``ok`` (on the CPU a
``skipped`` tf32 case is expected), cudnn.benchmark on, the TF32 flag matching the precision, NVML energy and
power present, MFU in (0, 1], CUDA-event against wall-clock step time, AMP peak memory below fp32's, profiler
traces written, and the measured matmul peak against the chip's datasheet. Checks that only mean something on a
GPU read "n/a (cpu)" on the CPU; there MFU is a warning, not a failure (the CPU's peak probe reads bf16 low and
has no fp16, so bf16 MFU can exceed 1 and amp_fp16 has none).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

PASS, FAIL, WARN, NA = "PASS", "FAIL", "WARN", "n/a (cpu)"
PRECISIONS = ("fp32", "tf32", "amp_fp16", "amp_bf16")
PRECISION_DTYPE = {"fp32": "fp32", "tf32": "tf32", "amp_fp16": "fp16", "amp_bf16": "bf16"}
AMP = ("amp_fp16", "amp_bf16")
#: Accepted range of median wall-clock over median CUDA-event step time.
RATIO_RANGE = (0.9, 1.5)
#: Measured matmul peak over the datasheet's figure outside this range is a warning.
DATASHEET_RANGE = (0.5, 1.05)

#: Dense (no sparsity) matmul TFLOP/s from NVIDIA's datasheets, by a substring of the device name (lower case).
#: The first matching entry wins, so the more specific names come first.
DATASHEET: list[tuple[str, str, dict[str, float]]] = [
    ("h200 nvl", "NVIDIA H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    ("h200", "NVIDIA H200 SXM", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.5, "fp16": 989.5}),
    ("h100 nvl", "NVIDIA H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    ("h100 pcie", "NVIDIA H100 PCIe", {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5}),
    ("h100", "NVIDIA H100 SXM", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.5, "fp16": 989.5}),
    ("a100", "NVIDIA A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
]


def datasheet_for(device_name: str | None) -> tuple[str, dict[str, float]] | None:
    """(chip, {dtype: dense TFLOP/s}) for a device name, or None when the chip is not in the table."""
    name = (device_name or "").lower()
    for key, chip, figures in DATASHEET:
        if key in name:
            return chip, figures
    return None


# ---------------------------------------------------------------------------------------------------- reading


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed process
        if isinstance(value, dict):
            out.append(value)
    return out


class Run:
    """One run folder: its label, manifest and records (an empty run when the folder is missing)."""

    def __init__(self, label: str, path: str | None):
        self.label = label
        self.path = Path(path) if path else None
        self.problem: str | None = None
        self.manifest: dict[str, Any] = {}
        self.records: list[dict[str, Any]] = []
        if self.path is None or not self.path.is_dir():
            self.problem = "no run folder (its step failed before opening one?)"
            return
        try:
            self.manifest = json.loads((self.path / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            self.problem = f"manifest.json unreadable: {exc}"
        merged = self.path / "records.jsonl"
        if merged.exists():
            self.records = read_jsonl(merged)
        else:
            for part in sorted(self.path.glob("records-rank*.jsonl")):
                self.records.extend(read_jsonl(part))

    def profiled_case_ids(self) -> list[str]:
        return [c.get("id") for c in self.manifest.get("cases") or [] if isinstance(c, dict) and c.get("profile")]


def read_steps(path: Path | None) -> list[dict[str, Any]]:
    """The step log of gpu-check.sh: tab-separated name, exit code, seconds, limit in seconds, note."""
    steps = []
    if path is None or not path.exists():
        return steps
    for line in path.read_text().splitlines():
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 4 or parts[0] == "step":
            continue
        try:
            steps.append(
                {
                    "step": parts[0],
                    "rc": int(parts[1]),
                    "seconds": float(parts[2]),
                    "limit_s": float(parts[3]),
                    "note": parts[4] if len(parts) > 4 else "",
                }
            )
        except ValueError:
            continue
    return steps


# ---------------------------------------------------------------------------------------------------- checks


def on_cuda(rec: dict[str, Any]) -> bool:
    return str(rec.get("device") or "").startswith("cuda")


def where(run: Run, rec: dict[str, Any]) -> str:
    ws = rec.get("world_size") or 1
    rank = rec.get("rank") or 0
    extra = f" (rank {rank}, world size {ws})" if ws != 1 or rank else ""
    return f"{run.label}: {rec.get('case_id')}{extra}"


def median(values: list[float] | None) -> float | None:
    values = [v for v in values or [] if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


class Check:
    def __init__(self, name: str, meaning: str):
        self.name, self.meaning = name, meaning
        self.result = PASS
        self.detail = ""
        self.failures: list[str] = []

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "result": self.result,
            "detail": self.detail,
            "meaning": self.meaning,
            "failures": self.failures,
        }


def _finish(check: Check, checked: int, what: str, bad_result: str = FAIL) -> Check:
    if check.failures:
        check.result = bad_result
        check.detail = f"{len(check.failures)} of {checked} {what} out of line"
    elif checked == 0:
        check.result, check.detail = WARN, f"no {what} to check"
    else:
        check.detail = f"{checked} {what} checked"
    return check


def check_steps(steps: list[dict[str, Any]]) -> Check:
    c = Check("steps", "every step of gpu-check.sh exited 0 within its time limit")
    if not steps:
        c.result, c.detail = WARN, "no step log given"
        return c
    for s in steps:
        if s["rc"] == 0:
            continue
        if s["rc"] in (124, 137):
            why = f"timed out after {s['limit_s']:.0f} s"
        elif s["note"]:
            why = s["note"]
        else:
            why = f"exit {s['rc']}"
        c.failures.append(f"{s['step']}: {why}")
    total = sum(s["seconds"] for s in steps)
    if c.failures:
        c.result = FAIL
        c.detail = f"{len(c.failures)} of {len(steps)} steps failed ({total:.0f} s in all)"
    else:
        c.detail = f"{len(steps)} steps exited 0 in {total:.0f} s"
    return c


def check_runs(runs: list[Run]) -> Check:
    c = Check(
        "run folders",
        "each run folder exists, its manifest says complete and no case is missing; the ddp run used strategy ddp "
        "and the torchrun run was started by torchrun",
    )
    for run in runs:
        if run.problem:
            c.failures.append(f"{run.label}: {run.problem}")
            continue
        status = run.manifest.get("status")
        if status != "complete":
            c.failures.append(f"{run.label}: manifest status {status!r}, not 'complete'")
        missing = run.manifest.get("missing") or []
        if status != "complete":  # a run cut short has not listed its missing cases yet
            recorded = {r.get("case_id") for r in run.records}
            missing = [cid for cid in run.manifest.get("case_ids") or [] if cid not in recorded]
        if missing:
            c.failures.append(f"{run.label}: {len(missing)} case(s) without a record: {', '.join(missing[:5])}")
        if not run.records:
            c.failures.append(f"{run.label}: no records")
        launch = run.manifest.get("launch") or {}
        if run.label == "ddp" and run.manifest.get("strategy") != "ddp":
            c.failures.append(f"ddp: manifest strategy {run.manifest.get('strategy')!r}, not 'ddp'")
        if run.label == "torchrun" and launch.get("launcher") != "torchrun":
            c.failures.append(f"torchrun: manifest launcher {launch.get('launcher')!r}, not 'torchrun'")
    if c.failures:
        c.result = FAIL
        c.detail = f"{len(c.failures)} problem(s) in {len(runs)} run folders"
    else:
        c.detail = f"{len(runs)} run folders complete ({sum(len(r.records) for r in runs)} records)"
    return c


def expected_skip(rec: dict[str, Any]) -> bool:
    """On the CPU a tf32 case is skipped by design (TF32 is a CUDA tensor-core mode)."""
    return not on_cuda(rec) and rec.get("status") == "skipped" and rec.get("precision") == "tf32"


def check_status(runs: list[Run]) -> Check:
    c = Check("case status", "every case is ok (on the CPU, tf32 cases are expected to be skipped)")
    ok = skipped = 0
    for run in runs:
        for rec in run.records:
            if rec.get("status") == "ok":
                ok += 1
            elif expected_skip(rec):
                skipped += 1
            else:
                msg = (rec.get("message") or "").splitlines()[0][:160] if rec.get("message") else ""
                c.failures.append(f"{where(run, rec)}: {rec.get('status')}" + (f" ({msg})" if msg else ""))
    total = ok + skipped + len(c.failures)
    if c.failures:
        c.result = FAIL
        c.detail = f"{len(c.failures)} of {total} cases not ok"
    elif total == 0:
        c.result, c.detail = FAIL, "no records"
    else:
        c.detail = f"{ok} ok" + (f", {skipped} tf32 skipped (expected on cpu)" if skipped else "")
    return c


def _ok(runs: list[Run], on_gpu: bool = False):
    for run in runs:
        for rec in run.records:
            if rec.get("status") == "ok" and (not on_gpu or on_cuda(rec)):
                yield run, rec


def cuda_only(check: Check, cuda: bool) -> Check | None:
    """On a CPU-only check the row reads n/a (cpu); returns None when the check should go on."""
    if cuda:
        return None
    check.result, check.detail = NA, "applies to CUDA cases only"
    return check


def check_cudnn(runs: list[Run], cuda: bool) -> Check:
    c = Check("cudnn.benchmark", "record cudnn_benchmark is true on CUDA (cuDNN autotuning on)")
    if cuda_only(c, cuda):
        return c
    n = 0
    for run, rec in _ok(runs, on_gpu=True):
        n += 1
        if rec.get("cudnn_benchmark") is not True:
            c.failures.append(f"{where(run, rec)}: cudnn_benchmark={rec.get('cudnn_benchmark')}")
    return _finish(c, n, "CUDA cases")


def check_tf32(runs: list[Run]) -> Check:
    c = Check("tf32 flag", "record tf32_matmul is true exactly for precision tf32")
    n = 0
    for run, rec in _ok(runs):
        n += 1
        want = rec.get("precision") == "tf32"
        if rec.get("tf32_matmul") is not want:
            c.failures.append(f"{where(run, rec)}: tf32_matmul={rec.get('tf32_matmul')} for {rec.get('precision')}")
    return _finish(c, n, "cases")


def check_energy(runs: list[Run], cuda: bool) -> Check:
    c = Check("energy/power", "NVML telemetry gave energy_j and power_avg_w for every CUDA case")
    if cuda_only(c, cuda):
        return c
    n = 0
    for run, rec in _ok(runs, on_gpu=True):
        n += 1
        tel = rec.get("telemetry") or {}
        missing = [k for k in ("energy_j", "power_avg_w") if not isinstance(tel.get(k), (int, float)) or tel[k] <= 0]
        if missing:
            c.failures.append(f"{where(run, rec)}: {' and '.join(missing)} missing")
    return _finish(c, n, "CUDA cases")


def check_mfu(runs: list[Run], cuda: bool) -> Check:
    c = Check(
        "MFU in (0, 1]",
        "model FLOP utilisation against the measured peak (matmul or conv, the case's dtype and memory format) "
        "is above 0 and at most 1",
    )
    n = 0
    for run, rec in _ok(runs):
        n += 1
        mfu = rec.get("mfu")
        if not isinstance(mfu, (int, float)):
            unknown = str(rec.get("message") or "")
            # MFU is null when the case beat the measured peak: the probe read low (see the record's message)
            c.failures.append(f"{where(run, rec)}: {unknown if 'MFU unknown' in unknown else 'mfu missing'}")
        elif not 0 < mfu <= 1:
            c.failures.append(f"{where(run, rec)}: mfu {mfu:.3f}")
    _finish(c, n, "cases", bad_result=FAIL if cuda else WARN)
    if not cuda and c.failures:
        c.detail += " (a warning on cpu: its peak probe reads bf16 low and has no fp16)"
    return c


def check_event_wall(runs: list[Run], cuda: bool) -> Check:
    lo, hi = RATIO_RANGE
    c = Check("event/wall ratio", f"median wall-clock over median CUDA-event step time is within {lo}-{hi}")
    if cuda_only(c, cuda):
        return c
    n = 0
    ratios = []
    for run, rec in _ok(runs, on_gpu=True):
        n += 1
        event, wall = median(rec.get("samples_ms")), median(rec.get("wall_ms"))
        if not event or not wall:
            c.failures.append(f"{where(run, rec)}: " + ("no wall_ms" if not wall else "no samples_ms"))
            continue
        ratio = wall / event
        ratios.append(ratio)
        if not lo <= ratio <= hi:
            c.failures.append(f"{where(run, rec)}: wall/event {ratio:.2f} ({wall:.2f} ms / {event:.2f} ms)")
    _finish(c, n, "CUDA cases")
    if ratios and not c.failures:
        c.detail += f", ratios {min(ratios):.2f}-{max(ratios):.2f}"
    return c


def _pair_key(rec: dict[str, Any]) -> tuple:
    return tuple(
        rec.get(k)
        for k in ("model", "mode", "batch_size", "resolution", "channels_last", "compile", "world_size", "rank")
    )


def check_amp_memory(runs: list[Run], cuda: bool) -> Check:
    c = Check("AMP memory < fp32", "AMP peak allocated memory is below fp32's (same model, mode, batch, format)")
    if cuda_only(c, cuda):
        return c
    n = 0
    for run in runs:
        fp32 = {
            _pair_key(r): r
            for r in run.records
            if r.get("status") == "ok" and r.get("precision") == "fp32" and on_cuda(r)
        }
        for rec in run.records:
            if rec.get("status") != "ok" or rec.get("precision") not in AMP or not on_cuda(rec):
                continue
            base = fp32.get(_pair_key(rec))
            if base is None:
                continue
            n += 1
            amp_mib, fp32_mib = rec.get("peak_allocated_mib"), base.get("peak_allocated_mib")
            if not isinstance(amp_mib, (int, float)) or not isinstance(fp32_mib, (int, float)):
                c.failures.append(f"{where(run, rec)}: peak_allocated_mib missing")
            elif not amp_mib < fp32_mib:
                c.failures.append(f"{where(run, rec)}: {amp_mib:.0f} MiB, fp32 {fp32_mib:.0f} MiB")
    return _finish(c, n, "AMP/fp32 pairs")


def check_profile(runs: list[Run]) -> Check:
    c = Check("profiler trace", "each profiled case wrote a trace file and its top-ops table")
    n = 0
    for run in runs:
        by_id = {}
        for rec in run.records:
            by_id.setdefault(rec.get("case_id"), rec)
        for case_id in run.profiled_case_ids():
            n += 1
            rec = by_id.get(case_id)
            if rec is None or rec.get("status") != "ok":
                c.failures.append(f"{run.label}: {case_id}: no ok record")
                continue
            prof = rec.get("profile") or {}
            if prof.get("error"):
                c.failures.append(f"{run.label}: {case_id}: {str(prof['error'])[:160]}")
            elif not prof.get("trace_dir"):
                c.failures.append(f"{run.label}: {case_id}: no trace_dir")
            elif run.path and not list((run.path / prof["trace_dir"]).glob("*.pt.trace.json*")):
                c.failures.append(f"{run.label}: {case_id}: no trace file in {prof['trace_dir']}")
            elif not prof.get("top_ops"):
                c.failures.append(f"{run.label}: {case_id}: empty top_ops")
    return _finish(c, n, "profiled cases")


def peak_rows(runs: list[Run], device_name: str | None) -> list[dict[str, Any]]:
    """Per dtype: measured peak (the validation run's, else the first run with one) against the datasheet."""
    peak = next((r.manifest.get("peak") for r in runs if r.label == "validation" and r.manifest.get("peak")), None)
    peak = peak or next((r.manifest.get("peak") for r in runs if r.manifest.get("peak")), None) or {}
    sheet = datasheet_for(device_name)
    measured = peak.get("matmul_tflops") or {}
    rows = []
    for dtype in ("fp32", "tf32", "bf16", "fp16"):
        value = measured.get(dtype)
        ref = sheet[1].get(dtype) if sheet else None
        if value is None and ref is None:
            continue
        rows.append(
            {
                "dtype": dtype,
                "measured_tflops": value,
                "datasheet_tflops": ref,
                "ratio": value / ref if value is not None and ref else None,
                "skipped": (peak.get("skipped") or {}).get(dtype),
            }
        )
    return rows


def check_peak(rows: list[dict[str, Any]], device_name: str | None, cuda: bool) -> Check:
    lo, hi = DATASHEET_RANGE
    c = Check("peak vs datasheet", f"measured matmul peak per dtype is {lo:.0%}-{hi:.0%} of the datasheet figure")
    if cuda_only(c, cuda):
        return c
    sheet = datasheet_for(device_name)
    if not sheet:
        c.result, c.detail = WARN, f"unknown: no datasheet figures for {device_name!r}"
        return c
    for row in rows:
        if row["ratio"] is None:
            c.failures.append(f"{row['dtype']}: not measured" + (f" ({row['skipped']})" if row["skipped"] else ""))
        elif not lo <= row["ratio"] <= hi:
            c.failures.append(f"{row['dtype']}: {row['measured_tflops']:.1f} of {row['datasheet_tflops']:g} TFLOP/s")
    _finish(c, len(rows), f"dtypes against {sheet[0]}", bad_result=WARN)
    if not c.failures:
        c.detail += " (" + ", ".join(f"{r['dtype']} {r['ratio']:.0%}" for r in rows) + ")"
    return c


# ---------------------------------------------------------------------------------------------------- output


def table_text(checks: list[Check]) -> str:
    rows = [("check", "result", "detail")] + [(c.name, c.result, c.detail) for c in checks]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = []
    for i, (a, b, d) in enumerate(rows):
        lines.append(f"{a:<{w0}}  {b:<{w1}}  {d}")
        if i == 0:
            lines.append(f"{'-' * w0}  {'-' * w1}  {'-' * max(6, max(len(r[2]) for r in rows))}")
    problems = [(c, f) for c in checks for f in c.failures]
    if problems:
        lines.append("")
        for c, f in problems:
            lines.append(f"{c.result} {c.name}: {f}")
    return "\n".join(lines)


def md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|")


def table_md(checks: list[Check]) -> str:
    lines = ["| check | result | detail |", "|---|---|---|"]
    lines += [f"| {md_escape(c.name)} | {c.result} | {md_escape(c.detail)} |" for c in checks]
    problems = [(c, f) for c in checks for f in c.failures]
    if problems:
        lines += ["", "Out of line:", ""]
        lines += [f"- {c.result} {md_escape(c.name)}: {md_escape(f)}" for c, f in problems]
    return "\n".join(lines)


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def validation_page(
    run: Run | None, rows: list[dict[str, Any]], env: dict[str, Any], checks: list[Check], verdict: str
) -> str:
    """The figures of a docs/validation/<gpu>.md page, from the validation run."""
    if run is None or not run.records:
        return "# Validation\n\nNo validation run folder with records: see verdict.md.\n"
    fp = run.manifest.get("environment") or env.get("environment") or {}
    recs = [r for r in run.records if (r.get("world_size") or 1) == 1 and not r.get("rank")]
    first = recs[0]
    device_name = fp.get("device_name") or first.get("device_name") or "unknown device"
    model, batch, res = first.get("model"), first.get("batch_size"), first.get("resolution")
    suite = run.manifest.get("suite") or {}
    suite_name = suite.get("name") if isinstance(suite, dict) else None
    grid: dict[tuple, dict[str, Any]] = {}
    for r in recs:
        if r.get("model") == model and r.get("requested_batch_size", r.get("batch_size")) == batch:
            grid[(r.get("precision"), r.get("mode"), bool(r.get("channels_last")))] = r
    columns = [(m, cl) for m in ("inference", "train") for cl in (False, True)]
    header = "| precision | " + " | ".join(f"{m} {'NHWC' if cl else 'NCHW'}" for m, cl in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)

    def matrix(getter, digits=1) -> list[str]:
        lines = [header, rule]
        for p in PRECISIONS:
            cells = []
            for m, cl in columns:
                r = grid.get((p, m, cl))
                if r is None:
                    cells.append("not run")
                elif r.get("status") != "ok":
                    cells.append(str(r.get("status")))
                else:
                    cells.append(fmt(getter(r), digits))
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
        return lines

    def tel(key):
        return lambda r: (r.get("telemetry") or {}).get(key)

    def pct(r):
        return None if r.get("mfu") is None else 100.0 * r["mfu"]

    when = (run.manifest.get("started_at") or "")[:10]
    versions = ", ".join(
        f"{label} {fp.get(key)}"
        for label, key in (
            ("torch", "torch"),
            ("CUDA", "cuda"),
            ("cuDNN", "cudnn"),
            ("driver", "driver"),
            ("Python", "python"),
        )
        if fp.get(key)
    )
    warm = (suite.get("defaults") or {}).get("warmup") if isinstance(suite, dict) else None
    meas = (suite.get("defaults") or {}).get("measure") if isinstance(suite, dict) else None
    phases = ""
    if isinstance(warm, dict) and isinstance(meas, dict):
        phases = (
            f" Warm-up at most {warm.get('max_seconds', '?')} s, then {meas.get('min_seconds', '?')} s timed "
            f"(at least {meas.get('min_iters', '?')} steps), {meas.get('repeats', 1)} repeat(s): short phases, so "
            "the figures are indicative."
        )
    failed = [c.name for c in checks if c.result == FAIL]
    lines = [
        f"# {device_name}",
        "",
        f"Measured {when} on `{fp.get('host', '?')}` with harness `{fp.get('git_revision') or '?'}` ({versions}), by "
        f"`bash scripts/gpu-check.sh` (suite `{suite_name or '?'}`, cases `{model}/*`): {model} at batch {batch}, "
        f"{res} px, random weights, synthetic inputs.{phases}",
        "",
        f"gpu-check verdict: **{verdict}**" + (f" (failed: {', '.join(failed)})" if failed else "") + ".",
        "",
        "## Matmul peak against the datasheet",
        "",
    ]
    sheet = datasheet_for(device_name)
    if rows:
        lines += ["| dtype | measured TFLOP/s | datasheet TFLOP/s | measured / datasheet |", "|---|---:|---:|---:|"]
        for row in rows:
            ratio = "–" if row["ratio"] is None else f"{row['ratio']:.0%}"
            ref = "unknown" if row["datasheet_tflops"] is None else f"{row['datasheet_tflops']:g}"
            lines.append(f"| {row['dtype']} | {fmt(row['measured_tflops'], 2)} | {ref} | {ratio} |")
        lines.append("")
    peak = run.manifest.get("peak") or {}
    source = f"{sheet[0]}, dense (without sparsity), from NVIDIA's datasheet" if sheet else "unknown for this device"
    lines.append(f"Datasheet: {source}.")
    if peak:
        lines.append(f"Measured: {peak.get('method', '?')}. Copy bandwidth {fmt(peak.get('copy_gbps'))} GB/s.")
    lines += [
        "",
        f"## Throughput (img/s), {model}, batch {batch}, {res} px",
        "",
        *matrix(lambda r: r.get("throughput_img_s")),
        "",
        "## MFU (%), against the measured peak of the precision's dtype",
        "",
        "fp32 against the fp32 peak (TF32 off), tf32 against tf32, amp_fp16 against fp16, amp_bf16 against bf16.",
        "",
        *matrix(pct),
        "",
        "## Power (average W) and energy efficiency (img/J)",
        "",
        "Average board power over the timed phase (NVML):",
        "",
        *matrix(tel("power_avg_w")),
        "",
        "Images per joule:",
        "",
        *matrix(tel("img_per_j"), 2),
        "",
        "## Peak allocated memory (MiB)",
        "",
        *matrix(lambda r: r.get("peak_allocated_mib"), 0),
        "",
    ]
    gpus = env.get("gpus") if isinstance(env.get("gpus"), list) else []
    state = gpus[0] if gpus and isinstance(gpus[0], dict) else None
    if state:
        lines += ["## GPU state before the run (`harness env`)", "", "| setting | value |", "|---|---|"]
        for key, value in state.items():
            if isinstance(value, (str, int, float, bool)) or value is None:
                lines.append(f"| {md_escape(key)} | {md_escape(fmt(value))} |")
            elif isinstance(value, list):
                lines.append(f"| {md_escape(key)} | {md_escape(', '.join(map(str, value)) or '–')} |")
        lines.append("")
    not_ok = [r for r in recs if r.get("status") != "ok"]
    if not_ok:
        lines += ["## Cases that did not run", ""]
        lines += [f"- `{r.get('case_id')}`: {r.get('status')}: {md_escape(r.get('message') or '')}" for r in not_ok]
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run", action="append", default=[], metavar="LABEL=DIR", help="a run folder and its label (repeatable)"
    )
    parser.add_argument("--cpu", action="store_true", help="a CPU check: CUDA-only checks read n/a (cpu)")
    parser.add_argument("--steps", type=Path, help="the step log (tab-separated) of gpu-check.sh")
    parser.add_argument("--env", type=Path, help="`harness env --json` output")
    parser.add_argument("--validation", default="validation", help="label of the run the page's figures come from")
    parser.add_argument("--write", type=Path, metavar="DIR", help="write verdict.md, verdict.json, validation.md here")
    args = parser.parse_args(argv)
    runs = []
    for spec in args.run:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = Path(spec).name, spec
        runs.append(Run(label, path or None))
    if not runs:
        parser.error("give at least one --run LABEL=DIR")
    env: dict[str, Any] = {}
    if args.env and args.env.exists():
        try:
            env = json.loads(args.env.read_text())
        except json.JSONDecodeError:
            env = {}
    cuda = not args.cpu
    device_name = None
    for run in runs:
        device_name = device_name or (run.manifest.get("environment") or {}).get("device_name")
    device_name = device_name or (env.get("environment") or {}).get("device_name")

    steps = read_steps(args.steps)
    rows = peak_rows(runs, device_name)
    checks = [
        check_steps(steps),
        check_runs(runs),
        check_status(runs),
        check_cudnn(runs, cuda),
        check_tf32(runs),
        check_energy(runs, cuda),
        check_mfu(runs, cuda),
        check_event_wall(runs, cuda),
        check_amp_memory(runs, cuda),
        check_profile(runs),
        check_peak(rows, device_name, cuda),
    ]
    failed = [c for c in checks if c.result == FAIL]
    verdict = "FAIL" if failed else "PASS"
    mode = "cpu" if args.cpu else "cuda"
    title = f"gpu-check verdict ({mode}, {device_name or 'unknown device'}): {verdict}"
    print(title)
    print()
    print(table_text(checks))
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        (args.write / "verdict.md").write_text(f"# {title}\n\n{table_md(checks)}\n")
        sheet = datasheet_for(device_name)
        payload = {
            "verdict": verdict.lower(),
            "mode": mode,
            "device_name": device_name,
            "checks": [c.to_dict() for c in checks],
            "steps": steps,
            "runs": {
                r.label: {
                    "path": str(r.path) if r.path else None,
                    "status": r.manifest.get("status"),
                    "counts": r.manifest.get("counts"),
                    "problem": r.problem,
                }
                for r in runs
            },
            "peak": rows,
            "datasheet": {"chip": sheet[0], "dense_tflops": sheet[1]} if sheet else "unknown",
        }
        (args.write / "verdict.json").write_text(json.dumps(payload, indent=2) + "\n")
        page_run = next((r for r in runs if r.label == args.validation), None)
        (args.write / "validation.md").write_text(validation_page(page_run, rows, env, checks, verdict))
        print(f"\nverdict written to {args.write}/verdict.md, verdict.json and validation.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
