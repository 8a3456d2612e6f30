"""The decisions of a distributed launch, without processes: worker counts, devices, nodes, work split, DDP sums."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass

import pytest

from harness.errors import LaunchError
from harness.launch.ddp import combine, world_sizes_for
from harness.launch.distributed import suite_digest
from harness.launch.elastic import check_devices, live_workers, worker_arguments
from harness.launch.procgroup import RankEnv, backend_for, case_budget_s, cpu_share
from harness.launch.progress import measured_units
from harness.launch.session import parse_nnodes, resolve_nproc
from harness.launch.sharding import plan_work


@dataclass(frozen=True)
class StubCase:
    model: str = "resnet18"
    mode: str = "inference"
    batch_size: int = 2
    resolution: int = 64
    device: str = "cpu"
    timeout_s: float | None = 60.0

    @property
    def id(self) -> str:
        return f"{self.model}/{self.mode}/bs{self.batch_size}/fp32/r{self.resolution}"


def test_nproc_is_an_int_or_auto():
    cpu, gpu = [StubCase()], [StubCase(device="cuda")]
    assert resolve_nproc("3", cpu) == 3 and resolve_nproc(2, cpu) == 2 and resolve_nproc(None, cpu) == 1
    assert resolve_nproc("auto", cpu, gpus=0) == 1
    assert resolve_nproc("auto", gpu, gpus=4) == 4
    assert resolve_nproc("auto", [StubCase(device="auto")], gpus=8) == 8
    assert resolve_nproc("auto", cpu, gpus=8) == 1  # CPU cases on a GPU box: one worker
    with pytest.raises(LaunchError, match="'two' is not a number"):
        resolve_nproc("two", cpu)
    with pytest.raises(LaunchError, match="at least one worker"):
        resolve_nproc("0", cpu)


def test_gpu_workers_are_checked_against_visible_gpus():
    check_devices(8, [StubCase(device="cpu")], gpus=0)
    check_devices(8, [StubCase(device="auto")], gpus=0)  # auto on a CPU box runs on the CPU
    check_devices(2, [StubCase(device="cuda")], gpus=2)
    with pytest.raises(LaunchError, match="asks for 3 GPU workers but 2 GPU"):
        check_devices(3, [StubCase(device="cuda")], gpus=2)
    with pytest.raises(LaunchError, match="or device: cpu"):
        check_devices(1, [StubCase(device="cuda:0")], gpus=0)
    with pytest.raises(LaunchError, match="device auto"):
        check_devices(4, [StubCase(device="auto")], gpus=2)


def test_nnodes_is_a_count_or_a_range():
    assert parse_nnodes(None) == (1, 1) and parse_nnodes("2") == (2, 2) and parse_nnodes("1:4") == (1, 4)
    for bad in ("x", "0", "3:1", "1:y"):
        with pytest.raises(LaunchError, match="--nnodes"):
            parse_nnodes(bad)


def test_ddp_world_sizes_always_include_the_one_rank_baseline():
    assert world_sizes_for(None, 4) == ([1, 4], [])
    assert world_sizes_for([2], 2) == ([1, 2], [])
    assert world_sizes_for([1, 2, 4, 8], 2) == ([1, 2], [4, 8])


def test_global_throughput_and_efficiency_of_a_group():
    members = [{"status": "ok", "throughput_img_s": 90.0}, {"status": "ok", "throughput_img_s": 70.0}]
    rec = combine({}, members, baseline=100.0)
    assert rec["global_throughput_img_s"] == 160.0 and rec["scaling_efficiency"] == 0.8
    assert combine({}, members, baseline=None)["scaling_efficiency"] is None
    failed = [members[0], {"status": "oom", "throughput_img_s": None}]
    assert combine({}, failed, 100.0) == {"global_throughput_img_s": None, "scaling_efficiency": None}
    assert combine({}, [members[0], None], 100.0)["global_throughput_img_s"] is None


def test_work_split_for_sweep_and_ddp():
    cases = [StubCase(batch_size=b) for b in (1, 2, 4)] + [StubCase(mode="train", batch_size=2)]
    sweep = plan_work(cases, "sweep", None, 3)
    assert sweep.total == 4 and not sweep.ddp_cases
    assert sum(sweep.assigned(r) for r in range(3)) == 4
    ddp = plan_work(cases, "ddp", [1, 2, 4], 2)
    assert [c.mode for c in ddp.ddp_cases] == ["train"] and ddp.sizes == [1, 2] and ddp.dropped_sizes == [4]
    assert ddp.total == 2 + 3  # the training case at two sizes, the three others sharded
    # Rank 0 is in every sub-group, rank 1 only in the pair.
    assert ddp.assigned(0) - len(ddp.shards[0]) == 2 and ddp.assigned(1) - len(ddp.shards[1]) == 1


def test_suite_digest_ignores_the_file_path_but_not_the_content():
    resolved = {"name": "s", "source": "/a/s.yaml", "defaults": {"batch_size": 2}}
    same_elsewhere = {**resolved, "source": "/b/s.yaml"}
    assert suite_digest(resolved, ["x", "y"]) == suite_digest(same_elsewhere, ["x", "y"])
    assert suite_digest(resolved, ["x", "y"]) != suite_digest(resolved, ["x"])
    assert suite_digest(resolved, ["x"]) != suite_digest({**resolved, "defaults": {"batch_size": 4}}, ["x"])


def test_each_rank_gets_its_own_slice_of_the_cores():
    cores = list(range(8))
    slices = [cpu_share(r, 4, cores) for r in range(4)]
    assert slices == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert cpu_share(0, 1, cores) == cores
    assert cpu_share(2, 3, [0, 1]) == [0, 1]  # more ranks than cores: no slices to give
    assert cpu_share(1, 2, [4, 5, 6, 7, 9]) == [6, 7]


def test_rank_env_from_torchrun_variables():
    alone = RankEnv.from_environ({})
    assert (alone.rank, alone.world_size, alone.launched) == (0, 1, False)
    env = RankEnv.from_environ(
        {
            "RANK": "3",
            "WORLD_SIZE": "4",
            "LOCAL_RANK": "1",
            "LOCAL_WORLD_SIZE": "2",
            "GROUP_WORLD_SIZE": "2",
            "MASTER_ADDR": "node0",
            "MASTER_PORT": "29500",
            "TORCHELASTIC_RESTART_COUNT": "1",
            "TORCHELASTIC_USE_AGENT_STORE": "True",
        }
    )
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size, env.nodes) == (3, 4, 1, 2, 2)
    assert env.launched and env.agent_store and env.restart_count == 1 and env.master_port == 29500
    assert backend_for("cuda:1") == "nccl" and backend_for("cpu") == "gloo"


def test_case_budget_covers_its_timeout_and_a_grace():
    assert case_budget_s(StubCase(timeout_s=60)) > 60
    assert case_budget_s(StubCase(timeout_s=None)) >= 3600


def test_worker_command_line():
    args = argparse.Namespace(
        out="res", resume=None, filter=["resnet18/*"], profile=["*/train/*"], no_report=True, no_progress=False
    )
    joined = worker_arguments(args, run_dir="/r/run", suite_path="s.yaml")
    assert joined == [
        "-m", "harness.worker", "s.yaml", "--run-dir", "/r/run", "--launched-by-harness",
        "--profile", "*/train/*", "--no-report",
    ]  # fmt: skip
    # Several nodes: rank 0 opens the run folder itself, with the filter.
    assert worker_arguments(args, None, "s.yaml")[3:7] == ["--out", "res", "--filter", "resnet18/*"]


def test_progress_counts_units_of_every_rank(tmp_path):
    def write(rank, rows, tail=""):
        lines = [json.dumps({"case_id": c, "world_size": k, "rank": rank, "status": "ok"}) for c, k in rows]
        (tmp_path / f"records-rank{rank}.jsonl").write_text("\n".join(lines) + "\n" + tail)

    write(0, [("a", 1), ("b", 1), ("d", 2)])
    write(1, [("c", 1), ("d", 2)], tail='{"case_id": "half')  # another rank is writing its next line
    units, last = measured_units(tmp_path)
    assert units == {("a", 1), ("b", 1), ("c", 1), ("d", 2)}
    assert last is not None and last["case_id"] in {"d"}


def test_resume_sees_workers_that_outlived_their_launcher():
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    # A process whose command line names harness.worker, as an orphaned worker's does.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "harness.worker"])
    try:
        for _ in range(100):  # until the child has exec'd and /proc shows its own command line
            if b"harness.worker" in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
                break
            time.sleep(0.05)
        host = socket.gethostname()
        ranks = {"0": {"host": host, "pid": proc.pid}, "1": {"host": "elsewhere", "pid": proc.pid}}
        assert live_workers({"ranks": ranks}) == [proc.pid]
        # Our own pid runs pytest, not a worker: a recycled pid is not taken for one.
        assert live_workers({"ranks": {"0": {"host": host, "pid": os.getpid()}}}) == []
    finally:
        proc.kill()
        proc.wait()
    assert live_workers({"ranks": ranks}) == []
    assert live_workers({}) == []


class _Failure:
    """A rank's failure as the elastic agent reports it (``ProcessFailure``'s fields that the launcher reads)."""

    def __init__(self, exitcode: int, timestamp: int, message: str = "To enable traceback see ...") -> None:
        self.exitcode, self.timestamp, self.message = exitcode, timestamp, message

    def signal_name(self) -> str:
        return "SIGKILL" if self.exitcode == -9 else f"signal {-self.exitcode}"


class _ChildFailed:
    def __init__(self, failures: dict[int, _Failure]) -> None:
        self.failures = failures

    def get_first_failure(self):
        rank = min(self.failures, key=lambda r: self.failures[r].timestamp)
        return rank, self.failures[rank]


def test_a_failed_launch_names_the_killed_rank_before_the_peer_that_left_on_the_lost_connection():
    from harness.launch.elastic import _failure_text

    # The peer's exit (code 2, "not every rank finished") reached the agent first: the kill is still the cause.
    both = _ChildFailed({0: _Failure(2, timestamp=100), 1: _Failure(-9, timestamp=101)})
    assert _failure_text(both) == "rank 1 was killed by SIGKILL (1 other rank also failed)"
    alone = _ChildFailed({1: _Failure(1, timestamp=5, message="RuntimeError: boom\nmore")})
    assert _failure_text(alone) == "rank 1 exited with code 1: RuntimeError: boom"
