"""Suite speed: load and validate the nightly suite in-process, and time `harness validate` end to end.

The baseline is measured in the same run: ``yaml.safe_load`` of the same file (parsing alone, no validation, no
line tracking, no expansion), and ``harness --version`` for CLI start-up. Prints each figure, its ratio to the
baseline and its target. Run: PYTHONPATH=. /work/venv/bin/python benchmarks/bench_suite.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NIGHTLY = ROOT / "suites" / "nightly.yaml"


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cli_seconds(*argv: str, repeats: int = 5) -> float:
    run = lambda: subprocess.run([sys.executable, "-m", "harness", *argv], cwd=ROOT, check=True, capture_output=True)  # noqa: E731
    return median_seconds(run, repeats)


def main() -> None:
    t = time.perf_counter()
    import yaml

    from harness.suite import load_suite

    import_s = time.perf_counter() - t
    text = NIGHTLY.read_text()
    parse_s = median_seconds(lambda: yaml.safe_load(text), 20)
    load_s = median_seconds(lambda: load_suite(NIGHTLY), 20)
    cases = len(load_suite(NIGHTLY).cases())

    version_s = cli_seconds("--version")
    help_s = cli_seconds("validate", "--help")
    validate_s = cli_seconds("validate", str(NIGHTLY))

    print(f"import harness.suite (pydantic, yaml):     {import_s * 1000:7.1f} ms")
    print(f"yaml.safe_load(nightly.yaml) [baseline]:   {parse_s * 1000:7.1f} ms")
    print(
        f"load_suite(nightly.yaml), {cases} cases:    {load_s * 1000:7.1f} ms  "
        f"({load_s / parse_s:.1f}x the bare YAML parse; target < 1000 ms)"
    )
    print(f"harness --version [baseline]:              {version_s * 1000:7.1f} ms")
    print(
        f"harness validate --help:                   {help_s * 1000:7.1f} ms  "
        f"({help_s / version_s:.2f}x --version; target < 1000 ms)"
    )
    print(
        f"harness validate suites/nightly.yaml:      {validate_s * 1000:7.1f} ms  "
        f"({validate_s / version_s:.2f}x --version; target < 1000 ms)"
    )


if __name__ == "__main__":
    main()
