"""Bad distributed input gets one clear error, in bounded time, before anything is measured."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.distributed.common import SWEEP, env, free_port, harness, write_suite

pytestmark = pytest.mark.distributed


@pytest.mark.slow
def test_a_suite_that_differs_between_ranks_is_refused_naming_the_ranks(tmp_path):
    # Two ranks started by hand, as a scheduler would (rank 0 hosts the store), each given its own file.
    ours = write_suite(tmp_path, SWEEP, "same-name", batches="[1, 2]")
    (tmp_path / "other").mkdir()
    theirs = write_suite(tmp_path / "other", SWEEP, "same-name", batches="[1, 2, 4]")
    port = str(free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "harness.worker", str(path), "--out", str(tmp_path / "out"), "--no-progress"],
            cwd=ROOT,
            env=env(
                RANK=str(rank),
                WORLD_SIZE="2",
                LOCAL_RANK=str(rank),
                LOCAL_WORLD_SIZE="2",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
            ),  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank, path in enumerate([ours, theirs])
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [2, 2]
    for rank, (_, stderr) in enumerate(outputs):
        assert f"harness.worker (rank {rank}): error: the suite differs between ranks" in stderr
        assert "rank 0 has 'same-name' with 4 cases" in stderr and "rank 1 has 'same-name' with 6 cases" in stderr
        assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists(), "nothing is opened when the ranks disagree"


@pytest.mark.slow
def test_an_unreachable_rendezvous_fails_clearly_within_a_minute(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "lonely", batches="[1]")
    start = time.monotonic()
    result = harness(
        "run", str(suite), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
        "--rdzv-timeout", "5", "--out", str(tmp_path / "out"), timeout=120,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    assert elapsed < 60
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("harness run: error: ") and "rendezvous" in last and "--rdzv-endpoint" in last
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_more_gpu_workers_than_gpus_is_refused_before_launch(tmp_path):
    suite = write_suite(tmp_path, SWEEP.replace("device: cpu", "device: cuda"), "gpus", batches="[1]")
    result = harness("run", str(suite), "--nproc-per-node", "64", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "--nproc-per-node 64 asks for 64 GPU workers" in result.stderr and "visible" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_multi_node_launch_without_rendezvous_endpoint_is_refused(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "flags", batches="[1]")
    result = harness("run", str(suite), "--nnodes", "2", "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout
    assert "--nnodes 2 needs --rdzv-endpoint HOST:PORT" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
