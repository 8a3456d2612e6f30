"""scripts/gpu-check.sh and its verdict (scripts/gpu_check_verdict.py), as a user sees them.

The verdict is checked on crafted run folders (a good CUDA run, and runs broken in each way a check exists for);
the whole script runs end to end in its ``--cpu`` mode, the one CI can run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"
VERDICT = ROOT / "scripts" / "gpu_check_verdict.py"

CHECKS = [
    "steps",
    "run folders",
    "case status",
    "cudnn.benchmark",
    "tf32 flag",
    "energy/power",
    "MFU in (0, 1]",
    "event/wall ratio",
    "AMP memory < fp32",
    "profiler trace",
    "peak vs datasheet",
]
CUDA_ONLY = ["cudnn.benchmark", "energy/power", "event/wall ratio", "AMP memory < fp32", "peak vs datasheet"]
H200_PEAK = {"fp32": 55.0, "tf32": 400.0, "bf16": 800.0, "fp16": 810.0}


def record(precision="fp32", mode="inference", channels_last=False, device="cuda:0", **changes) -> dict:
    """A record of a healthy case (CUDA by default), with ``changes`` applied (dotted keys reach telemetry)."""
    case_id = f"resnet50/{mode}/bs256/{precision}" + ("/cl" if channels_last else "")
    mib = {"fp32": 9000.0, "tf32": 9000.0, "amp_fp16": 5000.0, "amp_bf16": 5000.0}[precision]
    rec = {
        "case_id": case_id,
        "model": "resnet50",
        "mode": mode,
        "batch_size": 256,
        "requested_batch_size": 256,
        "resolution": 224,
        "precision": precision,
        "channels_last": channels_last,
        "compile": False,
        "device": device,
        "device_name": "NVIDIA H200",
        "rank": 0,
        "world_size": 1,
        "status": "ok",
        "message": None,
        "samples_ms": [100.0, 101.0, 99.0],
        "wall_ms": [103.0, 104.0, 102.0],
        "throughput_img_s": 2560.0,
        "peak_allocated_mib": mib,
        "mfu": 0.4,
        "cudnn_benchmark": True,
        "tf32_matmul": precision == "tf32",
        "telemetry": {"power_avg_w": 600.0, "power_max_w": 650.0, "energy_j": 60.0, "img_per_j": 4.3},
        "profile": {"trace_dir": None, "top_ops": None, "error": None},
    }
    for key, value in changes.items():
        if key.startswith("telemetry."):
            rec["telemetry"][key.split(".", 1)[1]] = value
        else:
            rec[key] = value
    return rec


def write_run(folder: Path, records: list[dict], device_name="NVIDIA H200", peak=None, **manifest) -> Path:
    folder.mkdir(parents=True)
    data = {
        "status": "complete",
        "missing": [],
        "started_at": "2026-01-01T00:00:00Z",
        "environment": {"device_name": device_name, "device_type": "cuda", "torch": "2.11.0", "host": "box"},
        "peak": {"matmul_tflops": peak if peak is not None else H200_PEAK, "copy_gbps": 4000.0, "method": "mm"},
        "suite": {"name": "gpu-check"},
        "cases": [],
        **manifest,
    }
    (folder / "manifest.json").write_text(json.dumps(data))
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def good_grid(**changes) -> list[dict]:
    return [
        record(p, m, cl, **changes)
        for m in ("inference", "train")
        for p in ("fp32", "tf32", "amp_fp16", "amp_bf16")
        for cl in (False, True)
    ]


def verdict(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(
        [sys.executable, str(VERDICT), *args, "--write", str(cwd / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads((cwd / "out" / "verdict.json").read_text())
    return proc, data


def results(data: dict) -> dict[str, str]:
    return {c["check"]: c["result"] for c in data["checks"]}


def test_a_healthy_cuda_run_passes_and_gives_a_validation_page(tmp_path):
    run = write_run(tmp_path / "val", good_grid())
    proc, data = verdict("--run", f"validation={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in CHECKS:
        assert name in proc.stdout
    got = results(data)
    assert got["case status"] == got["AMP memory < fp32"] == got["event/wall ratio"] == "PASS"
    assert got["steps"] == "WARN"  # no step log given
    assert data["verdict"] == "pass" and data["datasheet"]["chip"] == "NVIDIA H200 SXM"
    page = (tmp_path / "out" / "validation.md").read_text()
    assert page.startswith("# NVIDIA H200")
    assert "| fp32 | 55.00 | 67 | 82% |" in page  # measured peak against the datasheet
    assert "| amp_bf16 | 2,560.0 | 2,560.0 | 2,560.0 | 2,560.0 |" in page  # img/s, NCHW/NHWC x inference/train
    assert (tmp_path / "out" / "verdict.md").read_text().count("| PASS |") >= 8


def test_a_broken_case_is_flagged_and_named(tmp_path):
    recs = good_grid()
    recs[0] = record("fp32", status="error", message="RuntimeError: boom")
    recs[1] = record("fp32", channels_last=True, tf32_matmul=True)  # TF32 silently on in an fp32 case
    recs[2] = record("tf32", mfu=1.3)
    run = write_run(tmp_path / "val", recs)
    proc, data = verdict("--run", f"validation={run}", cwd=tmp_path)
    assert proc.returncode == 1
    got = results(data)
    assert got["case status"] == got["tf32 flag"] == got["MFU in (0, 1]"] == "FAIL"
    assert "FAIL case status: validation: resnet50/inference/bs256/fp32: error (RuntimeError: boom)" in proc.stdout
    assert "tf32_matmul=True for fp32" in proc.stdout
    assert "mfu 1.300" in proc.stdout
    assert data["verdict"] == "fail"


def test_cuda_only_checks_flag_their_faults(tmp_path):
    recs = good_grid(cudnn_benchmark=False)
    recs[0]["telemetry"]["energy_j"] = None
    recs[3]["wall_ms"] = [250.0, 250.0, 250.0]  # wall clock 2.5x the CUDA-event time
    amp = next(r for r in recs if r["precision"] == "amp_bf16")
    amp["peak_allocated_mib"] = 9500.0  # more than its fp32 twin
    run = write_run(tmp_path / "val", recs, peak={"fp32": 20.0, **{k: v for k, v in H200_PEAK.items() if k != "fp32"}})
    proc, data = verdict("--run", f"validation={run}", cwd=tmp_path)
    assert proc.returncode == 1
    got = results(data)
    for name in ("cudnn.benchmark", "energy/power", "event/wall ratio", "AMP memory < fp32"):
        assert got[name] == "FAIL", name
    assert got["peak vs datasheet"] == "WARN"  # fp32 at 30 % of the datasheet: a warning, not a failure
    assert "wall/event 2.50" in proc.stdout and "9500 MiB, fp32 9000 MiB" in proc.stdout


def test_failed_steps_and_missing_runs_fail(tmp_path):
    steps = tmp_path / "steps.tsv"
    steps.write_text("step\trc\tseconds\tlimit_s\tnote\nenv\t0\t2.0\t30\t\nchecks\t124\t240.0\t240\ttimed out\n")
    run = write_run(tmp_path / "val", good_grid())
    proc, data = verdict("--run", f"validation={run}", "--run", "ddp=", "--steps", str(steps), cwd=tmp_path)
    assert proc.returncode == 1
    assert results(data)["steps"] == results(data)["run folders"] == "FAIL"
    assert "checks: timed out after 240 s" in proc.stdout
    assert "ddp: no run folder" in proc.stdout


def test_cpu_rules(tmp_path):
    """On the CPU: tf32 skipped is expected, amp_fp16 must run, CUDA-only checks are n/a, MFU is a warning."""
    recs = [
        record("fp32", device="cpu", cudnn_benchmark=False, wall_ms=[], mfu=0.3, peak_allocated_mib=None),
        record("amp_bf16", device="cpu", cudnn_benchmark=False, wall_ms=[], mfu=1.3, peak_allocated_mib=None),
        record("tf32", device="cpu", status="skipped", message="tf32 is a CUDA tensor-core mode"),
    ]
    for r in recs:
        r["telemetry"] = {"power_avg_w": None, "energy_j": None}
    run = write_run(tmp_path / "val", recs, device_name="Intel(R) Xeon(R)", peak={"fp32": 0.4, "bf16": 0.2})
    proc, data = verdict("--cpu", "--run", f"validation={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    got = results(data)
    assert all(got[name] == "n/a (cpu)" for name in CUDA_ONLY)
    assert got["MFU in (0, 1]"] == "WARN" and got["case status"] == "PASS"
    assert "1 tf32 skipped (expected on cpu)" in proc.stdout

    skipped_fp16 = record("amp_fp16", device="cpu", status="skipped", message="amp_fp16 runs on CUDA only here")
    run2 = write_run(tmp_path / "val2", recs + [skipped_fp16], device_name="Intel(R) Xeon(R)")
    proc, data = verdict("--cpu", "--run", f"validation={run2}", cwd=tmp_path)
    assert proc.returncode == 1
    assert results(data)["case status"] == "FAIL" and "amp_fp16: skipped" in proc.stdout


def test_datasheet_is_unknown_for_other_chips(tmp_path):
    run = write_run(tmp_path / "val", good_grid(device_name="NVIDIA L4"), device_name="NVIDIA L4")
    proc, data = verdict("--run", f"validation={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert data["datasheet"] == "unknown" and results(data)["peak vs datasheet"] == "WARN"
    assert "unknown: no datasheet figures for 'NVIDIA L4'" in proc.stdout
    assert "| 67 |" not in (tmp_path / "out" / "validation.md").read_text()


@pytest.mark.slow
def test_gpu_check_cpu_mode_end_to_end(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "GPU_CHECK_DIR": str(tmp_path / "work")}
    env.pop("WHEELS", None)
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--cpu"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    for name in CHECKS:
        assert name in proc.stdout, name
    for name in CUDA_ONLY:
        assert any(line.startswith(name) and "n/a (cpu)" in line for line in proc.stdout.splitlines()), name
    for step in ("preflight", "env", "env-json", "pytest-gpu", "validation", "ddp", "torchrun", "checks"):
        assert any(line.split()[:2] == [step, "rc=0"] for line in proc.stdout.splitlines()), step
    data = json.loads((out / "verdict.json").read_text())
    assert data["verdict"] == "pass" and data["mode"] == "cpu"
    assert "## Throughput (img/s), resnet50" in (out / "validation.md").read_text()
    assert (out / "verdict.md").exists() and (out / "pytest.txt").exists()
    assert json.loads((out / "env.json").read_text())["environment"]["device_type"] == "cpu"
    for label in ("validation", "ddp", "torchrun", "checks"):
        assert (out / "runs" / label / "records.jsonl").stat().st_size > 0, label
        assert json.loads((out / "runs" / label / "manifest.json").read_text())["status"] == "complete", label
