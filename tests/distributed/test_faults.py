"""Runs that survive a dead worker: agent restarts, crash bookkeeping, and `harness run --resume`.

The kill comes from outside (``kill_on_start``): the test watches the run folder's progress files and SIGKILLs the
pid that a ``started`` event of the victim case records, on its first attempt only (or its first N).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import ROOT
from tests.distributed.common import (
    SWEEP,
    env,
    harness,
    kill_on_start,
    manifest,
    read_jsonl,
    run_dir_of,
    torchrun,
    write_suite,
)

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

VICTIM = "resnet18/inference/bs2/fp32/cl/r32"
IDS = {f"resnet18/inference/bs{b}/fp32{cl}/r32" for b in (1, 2, 3) for cl in ("", "/cl")}


def _exactly_once(run_dir) -> list[dict]:
    records = read_jsonl(run_dir / "records.jsonl")
    assert Counter(r["case_id"] for r in records) == Counter(IDS)
    assert all(r["status"] == "ok" for r in records), [(r["case_id"], r["message"]) for r in records]
    return records


def _started(run_dir, case_id: str) -> int:
    events = read_jsonl(run_dir / "progress-rank0.jsonl") + read_jsonl(run_dir / "progress-rank1.jsonl")
    return sum(1 for e in events if e["case_id"] == case_id and e["event"] == "started")


def test_killed_worker_is_restarted_and_every_case_is_recorded_once(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "killed", batches="[1, 2, 3]")
    with kill_on_start(tmp_path / "out", VICTIM):
        result = harness(
            "run", str(suite), "--nproc-per-node", "2", "--max-restarts", "1", "--out", str(tmp_path / "out"),
            "--no-report", "--no-progress",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(result)
    _exactly_once(run_dir)
    assert _started(run_dir, VICTIM) == 2  # killed once, measured on the retry
    m = manifest(run_dir)
    assert m["status"] == "complete" and m["restarts"] == 1 and m["world_size"] == 2
    # The agent's log names the first rank it finds dead: the killed one (SIGKILL, -9) or, when its peer noticed
    # the lost connection and left within the same poll, that peer (exit code 2, "not every rank finished").
    assert "SIGKILL" in result.stderr or "-9" in result.stderr or "not every rank finished" in result.stderr


def test_bare_torchrun_restart_writes_into_the_same_run_folder(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "killed-bare", batches="[1, 2, 3]")
    out = tmp_path / "out"
    with kill_on_start(out, VICTIM):
        result = torchrun(
            "--max-restarts", "1", "-m", "harness.worker", str(suite), "--out", str(out), "--no-report",
            "--no-progress",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(result)
    assert [p.name for p in (out / "killed-bare").iterdir()] == [run_dir.name]
    _exactly_once(run_dir)
    assert manifest(run_dir)["restarts"] == 1


def test_case_that_kills_its_worker_twice_is_recorded_crashed(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "crashing", batches="[1, 2, 3]")
    # The victim dies on its first two attempts; after the second restart it is recorded, not tried again.
    with kill_on_start(tmp_path / "out", VICTIM, times=2):
        result = harness(
            "run", str(suite), "--nproc-per-node", "2", "--max-restarts", "2", "--out", str(tmp_path / "out"),
            "--no-report", "--no-progress",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(result)
    records = read_jsonl(run_dir / "records.jsonl")
    assert Counter(r["case_id"] for r in records) == Counter(IDS)
    crashed = [r for r in records if r["status"] == "crashed"]
    assert [r["case_id"] for r in crashed] == [VICTIM]
    assert "died 2 times" in crashed[0]["message"]
    assert manifest(run_dir)["counts"] == {"ok": len(IDS) - 1, "crashed": 1}


def test_failed_launch_is_finished_by_resume_with_the_same_world_size(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "resumed", batches="[1, 2, 3]")
    with kill_on_start(tmp_path / "out", VICTIM):
        first = harness(
            "run", str(suite), "--nproc-per-node", "2", "--max-restarts", "0", "--out", str(tmp_path / "out"),
            "--no-report", "--no-progress",
        )  # fmt: skip
    assert first.returncode == 1, first.stderr
    run_dir = run_dir_of(first)
    m = manifest(run_dir)
    assert m["status"] == "failed" and "SIGKILL" in m["failure"]
    assert "harness run --resume" in first.stderr
    before = read_jsonl(run_dir / "records.jsonl")
    assert VICTIM not in {r["case_id"] for r in before}

    second = harness("run", "--resume", str(run_dir), "--no-report", "--no-progress")
    assert second.returncode == 0, second.stderr
    assert run_dir_of(second) == run_dir
    records = _exactly_once(run_dir)
    # What the first launch measured was kept as it was, not measured again.
    kept = {r["case_id"]: r["started_at"] for r in before}
    assert all(r["started_at"] == kept[r["case_id"]] for r in records if r["case_id"] in kept)
    m = manifest(run_dir)
    assert m["status"] == "complete" and m["world_size"] == 2 and len(m["resumed_at"]) == 1
    assert m["earlier_failures"] and "failure" not in m


def test_ctrl_c_stops_every_rank_and_resume_finishes_the_run(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "ctrl-c", batches="[1, 2, 3]")
    out = tmp_path / "out"
    # A terminal's Ctrl-C reaches the whole foreground process group: the launcher and both workers.
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(suite), "--nproc-per-node", "2", "--out", str(out)]
        + ["--no-report", "--no-progress"],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if sum(len(read_jsonl(p)) for p in out.glob("ctrl-c/*/records-rank*.jsonl")) >= 1:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    run_dir = run_dir_of(subprocess.CompletedProcess([], 130, stdout, stderr))
    assert manifest(run_dir)["status"] == "interrupted"
    assert stderr.count(f"harness run --resume {run_dir}") == 1
    assert "Traceback" not in stderr
    measured = read_jsonl(run_dir / "records.jsonl")
    assert 1 <= len(measured) < len(IDS)

    resumed = harness("run", "--resume", str(run_dir), "--no-report", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    _exactly_once(run_dir)
    assert manifest(run_dir)["status"] == "complete"


def test_resume_after_the_launcher_died_waits_for_orphans_then_completes(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "orphaned", batches="[1, 2, 3]")
    out = tmp_path / "out"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(suite), "--nproc-per-node", "2", "--out", str(out)]
        + ["--no-report", "--no-progress"],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("orphaned/*/records-rank*.jsonl")):
        time.sleep(0.1)
    run_dir = next(out.glob("orphaned/*"))
    workers = [info["pid"] for info in manifest(run_dir)["ranks"].values()]
    launcher.kill()  # the launcher dies; its workers do not know
    launcher.wait()
    for pid in workers:  # hold them where they are, so the check below cannot race their finishing
        os.kill(pid, signal.SIGSTOP)

    refused = harness("run", "--resume", str(run_dir), "--no-report", "--no-progress")
    assert refused.returncode == 2
    assert "still being measured by its workers" in refused.stderr
    assert all(str(pid) in refused.stderr for pid in workers)

    for pid in workers:  # then the workers die too, mid-run, as on a lost machine
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    resumed = harness("run", "--resume", str(run_dir), "--no-report", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    _exactly_once(run_dir)
    m = manifest(run_dir)
    assert m["status"] == "complete" and m["world_size"] == 2
