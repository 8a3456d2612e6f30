"""Launch overhead of a distributed run: a 2-rank `harness run` against an inline one, same one-case suite.

Both runs measure the same single case (resnet18, inference, batch 2, 32x32, short phases) from a fresh
process, so the difference in wall time is what the distributed path adds: the elastic agent and its
rendezvous, two worker interpreters importing torch, the process group, the suite check and run-folder
broadcast, the end barrier and the merge. The two kinds of run alternate (inline, 2-rank, inline, ...) so a
drift in the machine's speed hits both; the medians are compared. Target: overhead under 15 s.

Run: .venv/bin/python benchmarks/bench_launch.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 15.0

SUITE = """
name: bench-launch
defaults:
  device: cpu
  resolution: 32
  batch_size: 2
  mode: inference
  timeout_s: 120
  warmup: {min_iters: 2, max_iters: 8, max_seconds: 2, window: 2, tolerance: 0.5}
  measure: {min_seconds: 0.2, min_iters: 5, max_iters: 100, repeats: 1}
matrix:
  model: [resnet18]
telemetry: {nvml: false}
"""


def timed_run(suite: Path, out: Path, extra: list[str]) -> tuple[float, Path]:
    """Wall time (s) of one `harness run` in a fresh process, and its run folder."""
    cmd = [sys.executable, "-m", "harness", "run", str(suite), "--out", str(out), "--no-report", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    result = subprocess.run(cmd + extra, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(extra) or 'inline'}):\n{result.stderr[-2000:]}")
    run_dir = Path(result.stdout.strip().splitlines()[-1].removeprefix("run folder: "))
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    if [r["status"] for r in records] != ["ok"]:
        raise SystemExit(f"expected one ok record in {run_dir}, got {[r['status'] for r in records]}")
    return wall, run_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind (default 3)")
    args = parser.parse_args()
    inline: list[float] = []
    ranked: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        suite = Path(tmp) / "bench-launch.yaml"
        suite.write_text(SUITE)
        for i in range(args.rounds):
            wall, _ = timed_run(suite, Path(tmp) / "out", [])
            inline.append(wall)
            wall, run_dir = timed_run(suite, Path(tmp) / "out", ["--nproc-per-node", "2"])
            ranked.append(wall)
            if json.loads((run_dir / "manifest.json").read_text())["world_size"] != 2:
                raise SystemExit("the 2-rank run did not record world_size 2")
            print(f"round {i + 1}: inline {inline[-1]:.2f} s, 2 ranks {ranked[-1]:.2f} s", flush=True)
    base, dist = statistics.median(inline), statistics.median(ranked)
    overhead = dist - base
    print(f"inline run (1 process):        {base:6.2f} s  (median of {len(inline)})")
    print(f"2-rank run (elastic launch):   {dist:6.2f} s  (median of {len(ranked)})")
    print(f"launch overhead:               {overhead:6.2f} s  ratio {dist / base:.2f}x  (target < {TARGET_S:.0f} s)")
    print("PASS" if overhead < TARGET_S else "FAIL")
    return 0 if overhead < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
