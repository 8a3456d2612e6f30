"""Helpers of the distributed tests: tiny suites, launching through `harness run` or torchrun, reading runs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import ROOT

#: Short phases: each case takes well under a second per rank on two CPU cores.
TIMING = """
  timeout_s: 120
  warmup: {min_iters: 2, max_iters: 8, max_seconds: 2, window: 2, tolerance: 0.5}
  measure: {min_seconds: 0.05, min_iters: 3, max_iters: 40, repeats: 1}
"""

SWEEP = (
    """
name: {name}
defaults:
  device: cpu
  resolution: 32
  batch_size: 2
  mode: inference
"""
    + TIMING
    + """
matrix:
  model: [resnet18]
  batch_size: {batches}
  channels_last: [false, true]
launch: {strategy: sweep, nproc_per_node: 2}
telemetry: {nvml: false}
"""
)

DDP = (
    """
name: {name}
defaults:
  device: cpu
  resolution: 64
  batch_size: 2
  mode: train
"""
    + TIMING.replace("repeats: 1", "repeats: 2")
    + """
matrix:
  model: [resnet18]
launch: {strategy: ddp, nproc_per_node: 2, world_sizes: [1, 2]}
telemetry: {nvml: false}
"""
)


def write_suite(folder: Path, template: str, name: str, **fields) -> Path:
    """Write ``template`` with ``{name}`` and each ``{field}`` filled in to ``folder/<name>.yaml``."""
    text = template
    for key, value in {"name": name, **fields}.items():
        text = text.replace("{" + key + "}", str(value))
    path = Path(folder) / f"{name}.yaml"
    path.write_text(text)
    return path


#: On a subprocess's PYTHONPATH, this folder's ``sitecustomize`` installs the phase hooks that the test's environment
#: asks for (``tests/support/faults.py``: ``HARNESS_TEST_FAIL``, ``HARNESS_DDP_CHECKSUM``) in every harness process.
INJECT = ROOT / "tests" / "support" / "inject"


def env(**extra: str) -> dict[str, str]:
    """The test process's environment with the worktree importable, the tests' phase hooks on call, and ``extra``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(INJECT), str(ROOT)]), **extra}


def harness(*argv: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    """``python -m harness ARGV`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *argv],
        cwd=ROOT,
        env=env(**extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def torchrun(*argv: str, nproc: int = 2, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node N ARGV`` (as ``python -m torch.distributed.run``) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), *argv],
        cwd=ROOT,
        env=env(**extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_dir_of(result: subprocess.CompletedProcess) -> Path:
    """The run folder named by the last stdout line (``run folder: PATH``)."""
    lines = result.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("run folder: "), result.stdout + result.stderr
    return Path(lines[-1].removeprefix("run folder: "))


def read_jsonl(path: Path) -> list[dict]:
    """Every JSON line of ``path`` (none when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def manifest(run_dir: Path) -> dict:
    """The run's manifest."""
    return json.loads((run_dir / "manifest.json").read_text())


@contextlib.contextmanager
def kill_on_start(out: Path, case_id: str, times: int = 1, poll_s: float = 0.005):
    """Kill, from outside, the worker that starts measuring ``case_id`` under the results folder ``out``: SIGKILL to
    the pid its ``started`` event records in the run folder's progress file, on the case's first ``times``
    attempts (later attempts, after restarts, measure it normally). Yields the list of pids killed."""
    killed: list[int] = []
    seen: set[tuple[str, int]] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and len(killed) < times:
            for path in Path(out).rglob("progress-rank*.jsonl"):
                try:
                    lines = path.read_text().splitlines()
                except OSError:
                    continue
                for number, line in enumerate(lines):
                    try:
                        event = json.loads(line)
                    except ValueError:  # being written: read whole on the next look
                        continue
                    key = (str(path), number)
                    if key in seen or event.get("case_id") != case_id or event.get("event") != "started":
                        continue
                    seen.add(key)
                    if len(killed) < times:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(event["pid"]), signal.SIGKILL)
                        killed.append(int(event["pid"]))
            time.sleep(poll_s)

    thread = threading.Thread(target=watch, daemon=True, name="kill-on-start")
    thread.start()
    try:
        yield killed
    finally:
        stop.set()
        thread.join(timeout=5)
