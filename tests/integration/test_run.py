"""`harness run` end to end on this CPU: run folder, records, failures as data, Ctrl-C and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.store.record import SCHEMA_VERSION
from tests.conftest import ROOT, run_cli

TINY = """
name: {name}
defaults:
  device: cpu
  resolution: 32
  warmup: {{min_iters: 2, max_iters: 5, max_seconds: 1}}
  measure: {{min_seconds: 0.05, min_iters: 3}}
matrix:
  model: [resnet18]
  mode: [inference, train]
  batch_size: [2]
  precision: [fp32, amp_bf16, tf32]
"""


def _write(tmp_path: Path, text: str, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.format(name=name))
    return path


def _run_dir(stdout: str) -> Path:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("run folder: "), stdout
    return Path(last.removeprefix("run folder: "))


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_run_writes_a_complete_run_folder(tmp_path):
    suite = _write(tmp_path, TINY)
    result = run_cli("run", str(suite), "--out", str(tmp_path / "out"), "--no-progress", "--no-report")
    assert result.returncode == 0, result.stderr
    run_dir = _run_dir(result.stdout)
    assert run_dir.parent == tmp_path / "out" / "tiny"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["environment"]["torch"] and manifest["environment"]["cpu_model"]
    assert manifest["counts"] == {"ok": 4, "skipped": 2}
    records = {r["case_id"]: r for r in _records(run_dir)}
    assert len(records) == 6
    ok = records["resnet18/train/bs2/fp32/r32"]
    assert ok["status"] == "ok" and len(ok["samples_ms"]) == ok["iters"] >= 3
    assert ok["throughput_ci95"][0] <= ok["throughput_img_s"] <= ok["throughput_ci95"][1]
    # the throughput is the median step's; images over the total time is kept beside it
    assert ok["throughput_img_s"] == pytest.approx(2 * 1000 / ok["step_ms_median"], rel=1e-3)
    assert ok["throughput_total_img_s"] > 0 and isinstance(ok["stalled_steps"], int)
    assert isinstance(ok["noisy"], bool) and ok["noisy"] == bool(ok["noise"])
    assert ok["contention"]["cpus"] >= 1
    assert ok["rss_peak_mib"] > 0 and ok["flops_per_img"] > 0
    assert ok["numerics"] == {"top1_agreement": None, "max_rel_err": None}
    bf16 = records["resnet18/inference/bs2/amp_bf16/r32"]
    assert bf16["status"] == "ok" and 0 <= bf16["numerics"]["top1_agreement"] <= 1
    skipped = records["resnet18/inference/bs2/tf32/r32"]
    assert skipped["status"] == "skipped" and "CUDA" in skipped["message"]
    # the device was probed before the first case and after the last; MFU is against the best of the two
    health = manifest["health"]
    assert health["start"]["at"] <= health["end"]["at"] and health["start"]["seconds"] > 0
    assert {"matmul_tflops.fp32", "conv_tflops.fp32", "conv_tflops.fp32_cl", "copy_gbps"} <= set(health["spread"])
    assert all(0 <= value < 1 for value in health["spread"].values())
    peak = manifest["peak"]
    for key in ("fp32", "fp32_cl"):
        assert peak["conv_tflops"][key] == max(health["start"]["conv_tflops"][key], health["end"]["conv_tflops"][key])
    for r in records.values():
        assert r["mfu"] is None or 0 < r["mfu"] <= 1, r
    # the summary table names every case
    for case_id in records:
        assert case_id.split("/")[1] in result.stdout


def test_dry_run_lists_cases_and_measures_nothing(tmp_path):
    suite = _write(tmp_path, TINY)
    result = run_cli("run", str(suite), "--dry-run", "--out", str(tmp_path / "out"), "--filter", "*train*")
    assert result.returncode == 0, result.stderr
    assert "resnet18/train/bs2/fp32/r32" in result.stdout and "inference" not in result.stdout
    assert "3 cases" in result.stdout
    assert not (tmp_path / "out").exists()


def test_bad_run_input_is_one_clear_message(tmp_path):
    suite = _write(tmp_path, TINY)
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [
        (["run", str(tmp_path / "missing.yaml")], "missing.yaml"),
        (["run", str(suite), "--out", str(blocker / "sub"), "--no-progress"], "--out"),
        (["run", str(suite), "--filter", "nothing*", "--out", str(tmp_path / "o")], "matches none"),
        (["run"], "name a suite"),
    ]
    for argv, expected in cases:
        result = run_cli(*argv)
        assert result.returncode == 2, (argv, result.stdout, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_ctrl_c_then_resume_completes_without_repeats(tmp_path):
    text = TINY.replace("min_seconds: 0.05", "min_seconds: 1.0").replace("max_seconds: 1", "max_seconds: 2")
    suite = _write(tmp_path, text)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(suite), "--out", str(out), "--no-progress", "--no-report"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    rank_file = None
    while time.time() < deadline:
        found = list(out.glob("tiny/*/records-rank0.jsonl"))
        if found and found[0].read_text().count("\n") >= 1:
            rank_file = found[0]
            break
        time.sleep(0.1)
    assert rank_file is not None, "no record appeared"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    run_dir = rank_file.parent
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["health"]["start"] and manifest["health"]["end"] is None  # no end probe after a Ctrl-C
    first = _records(run_dir)
    assert 1 <= len(first) < 6 and "--resume" in stderr

    resumed = run_cli("run", "--resume", str(run_dir), "--no-progress", "--no-report")
    assert resumed.returncode == 0, resumed.stderr
    records = _records(run_dir)
    ids = [r["case_id"] for r in records]
    assert len(ids) == len(set(ids)) == 6
    assert [r["case_id"] for r in records[: len(first)]] == [r["case_id"] for r in first]
    closed = json.loads((run_dir / "manifest.json").read_text())
    assert closed["status"] == "complete"
    # the resumed run keeps its first start probe and takes a new end probe
    assert closed["health"]["start"] == manifest["health"]["start"] and closed["health"]["end"]["at"]


@pytest.mark.slow
def test_suite_accuracy_block_records_accuracy_beside_throughput(tmp_path):
    from tests.unit.test_accuracy_eval import make_class_folders, ranked_checkpoint

    ckpt = ranked_checkpoint(tmp_path)
    data = tmp_path / "val"
    data.mkdir()
    make_class_folders(data, corrupt=True)
    suite = tmp_path / "acc.yaml"
    suite.write_text(
        f"""
name: acc
defaults:
  device: cpu
  resolution: 32
  weights: {ckpt}
  warmup: {{min_iters: 2, max_iters: 3, max_seconds: 1}}
  measure: {{min_seconds: 0.05, min_iters: 3}}
matrix:
  model: [resnet18]
  batch_size: [2]
  precision: [fp32, amp_bf16]
accuracy: {{data: {data}}}
"""
    )
    result = run_cli("run", str(suite), "--out", str(tmp_path / "out"), "--no-progress", "--no-report")
    assert result.returncode == 0, result.stderr
    records = _records(_run_dir(result.stdout))
    assert [r["status"] for r in records] == ["ok", "ok"]
    for r in records:
        assert r["accuracy"]["acc1"] == 100.0 and r["accuracy"]["skipped"] >= 1


@pytest.mark.slow
def test_peak_memory_of_a_case_is_not_the_previous_models(tmp_path):
    suite = tmp_path / "mem.yaml"
    suite.write_text(
        """
name: mem
defaults:
  device: cpu
  resolution: 32
  warmup: {min_iters: 2, max_iters: 3, max_seconds: 1}
  measure: {min_seconds: 0.05, min_iters: 3}
matrix:
  model: [wide_resnet101_2, resnet18]
  batch_size: [2]
"""
    )
    result = run_cli("run", str(suite), "--out", str(tmp_path / "out"), "--no-progress", "--no-report")
    assert result.returncode == 0, result.stderr
    wide, small = _records(_run_dir(result.stdout))
    # wide_resnet101_2 holds 484 MiB of weights (and no copy of them); resnet18 holds 45 MiB. Had the wide model
    # stayed in memory, the small case's peak would be at least the wide one's.
    assert small["rss_peak_mib"] < wide["rss_peak_mib"] - 300, (wide["rss_peak_mib"], small["rss_peak_mib"])


@pytest.mark.slow
def test_profiled_case_writes_a_trace_and_an_operator_table(tmp_path):
    suite = _write(tmp_path, TINY + "profile:\n  cases: [{{mode: train, precision: fp32}}]\n")
    out = tmp_path / "out"
    result = run_cli("run", str(suite), "--out", str(out), "--no-progress", "--no-report", "--filter", "*/fp32/*")
    assert result.returncode == 0, result.stderr
    run_dir = _run_dir(result.stdout)
    records = {r["case_id"]: r for r in _records(run_dir)}
    profiled = records["resnet18/train/bs2/fp32/r32"]["profile"]
    assert profiled["error"] is None and not Path(profiled["trace_dir"]).is_absolute()
    assert list((run_dir / profiled["trace_dir"]).glob("rank0*.pt.trace.json.gz"))
    assert profiled["top_ops"] and profiled["top_ops"][0]["self_time_ms"] > 0
    assert records["resnet18/inference/bs2/fp32/r32"]["profile"]["trace_dir"] is None
