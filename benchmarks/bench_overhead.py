"""Harness overhead and smoke-suite wall time.

1. resnet50, batch 8, 224x224, fp32, inference on this CPU: the throughput the harness reports for the case,
   against a bare timing loop of the same model written here, alternated (bare, harness, bare, harness) so drift
   in the machine's speed hits both. Target: ratio >= 0.98.
2. The smoke suite end to end (`harness run suites/smoke.yaml`): wall time (target < 5 min) and the share of it
   spent outside warm-up and timed windows (set-up, op counting, numerics, writing; target < 25%).

Run: .venv/bin/python benchmarks/bench_overhead.py [--skip-smoke] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bare_loop(seconds: float) -> float:
    """Images per second of a plain inference_mode loop: the floor of what any harness can report."""
    import torch

    from harness.zoo import build_model

    model = build_model("resnet50").eval()
    x = torch.randn(8, 3, 224, 224)
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or n < 10:
            model(x)
            n += 1
        return 8 * n / (time.perf_counter() - start)


def harness_case(seconds: float) -> float:
    """The throughput the harness records for the same case."""
    from pathlib import Path as P

    from harness.measure.runner import CaseContext, ModelCache, measure_case
    from harness.suite import Case

    case = Case.from_dict(
        {
            "model": "resnet50",
            "mode": "inference",
            "batch_size": 8,
            "resolution": 224,
            "precision": "fp32",
            "channels_last": False,
            "device": "cpu",
            "measure": {"min_seconds": seconds, "min_iters": 10},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        ctx = CaseContext(run_id="bench", suite="bench", run_dir=P(tmp), device="cpu", model_cache=ModelCache())
        record = measure_case(case, ctx)
    assert record["status"] == "ok", record["message"]
    return record["throughput_img_s"]


def _one(kind: str, seconds: float) -> float:
    """One measurement in a fresh process, so neither side inherits the other's allocator or thread state."""
    out = subprocess.run(
        [sys.executable, __file__, "--one", kind, "--seconds", str(seconds)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def overhead(rounds: int, seconds: float) -> None:
    bare, ours = [], []
    for i in range(rounds):
        # ABBA order: a drift in the machine's speed during the benchmark hits both sides alike.
        order = ("bare", "harness") if i % 2 == 0 else ("harness", "bare")
        for kind in order:
            (bare if kind == "bare" else ours).append(_one(kind, seconds))
    b, h = statistics.median(bare), statistics.median(ours)
    print(f"resnet50 bs8 224 fp32 CPU, medians of {rounds} rounds: bare loop {b:.2f} img/s, harness {h:.2f} img/s")
    print(f"  per round bare {[round(v, 2) for v in bare]}, harness {[round(v, 2) for v in ours]}")
    print(f"  ratio harness/bare = {h / b:.4f}  (target >= 0.98)")


def smoke() -> None:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "harness", "run", "suites/smoke.yaml", "--out", out, "--no-progress"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - start
        run_dir = next(Path(out).glob("*/*/manifest.json")).parent
        records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    measured = sum((r.get("warmup_s") or 0) + sum(r.get("samples_ms") or []) / 1000 for r in records)
    statuses = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    print(f"smoke suite: {len(records)} records {statuses}, wall {wall:.1f} s  (target < 300 s)")
    print(
        f"  inside warm-up + timed windows {measured:.1f} s; outside {wall - measured:.1f} s = "
        f"{(wall - measured) / wall:.1%} of wall  (target < 25%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--skip-smoke", action="store_true")
    parser.add_argument("--one", choices=["bare", "harness"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(bare_loop(args.seconds) if args.one == "bare" else harness_case(args.seconds))
        return
    overhead(args.rounds, args.seconds)
    if not args.skip_smoke:
        smoke()


if __name__ == "__main__":
    main()
