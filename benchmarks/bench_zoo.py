"""Zoo speed: build all ten models (real weights in memory), count their ops at 224x224, and time CLI start-up.

Prints each figure next to its target. Run: .venv/bin/python benchmarks/bench_zoo.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cli_seconds(*argv: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness", *argv], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    baseline = cli_seconds("--version")  # bare interpreter + package import, for scale
    help_s = cli_seconds("--help")
    models_s = cli_seconds("models")

    from harness.measure.ops import count_ops
    from harness.zoo import MODEL_NAMES, build_model

    t = time.perf_counter()
    for name in MODEL_NAMES:
        build_model(name)
        count_ops(name, 224)
    build_s = time.perf_counter() - t

    print(f"build all ten models + count ops at 224: {build_s:6.2f} s  (target < 30 s)")
    print(f"harness --help start-up:                 {help_s:6.3f} s  (target < 1 s; `--version` {baseline:.3f} s)")
    print(f"harness models start-up:                 {models_s:6.3f} s  (target < 1 s)")


if __name__ == "__main__":
    main()
