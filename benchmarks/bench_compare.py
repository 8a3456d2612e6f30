"""Compare speed: two runs of 5,000 cases, and a candidate against a history of 30 runs of 500 cases.

Synthetic run folders in the real store format (tests/synthetic.py; 30 step samples per record, one case in ten
slowed by 10%) are written to a temporary folder, then timed: reading the runs, ``compare()`` alone, and the whole
``harness compare`` command in-process (reading, comparing, writing regressions.json and summary.md, printing the
table). For scale, the same 5,000 U tests are also timed through ``scipy.stats.mannwhitneyu`` when scipy is
installed. Prints each figure next to its target. Run: /work/venv/bin/python benchmarks/bench_compare.py
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.cli import main as cli  # noqa: E402
from harness.regress import compare, mann_whitney_u  # noqa: E402
from harness.regress.metrics import METRICS  # noqa: E402
from harness.store import read_run  # noqa: E402
from tests.synthetic import make_record, make_run  # noqa: E402

MODELS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]
TARGET_S = 5.0


AXES = ("model", "mode", "batch_size", "precision", "channels_last", "resolution")


def cases(n: int) -> list[dict]:
    """``n`` distinct cases (7 models x 2 modes x 6 batch sizes x 3 precisions x 2 layouts x 12 resolutions)."""
    values = (MODELS, ["inference", "train"], [1, 8, 32, 64, 128, 256], ["fp32", "tf32", "amp_bf16"], [False, True])
    grid = itertools.product(*values, range(64, 64 + 32 * 12, 32))
    return [dict(zip(AXES, combo, strict=True)) for combo in itertools.islice(grid, n)]


def run_records(n: int, seed: int, slow_every: int = 0) -> list[dict]:
    out = []
    for i, case in enumerate(cases(n)):
        step = (10.0 + i % 50) * (1.1 if slow_every and i % slow_every == 0 else 1.0)
        out.append(make_record(**case, step_ms=step, noise=0.02, n=30, seed=seed * 1_000_003 + i))
    return out


def verdicts(result, records: list[dict], slow_every: int) -> str:
    """How many of the slowed cases were flagged, and how many of the others (false alarms)."""
    slowed = {r["case_id"] for i, r in enumerate(records) if i % slow_every == 0}
    flagged = {c.key for c in result.regressed}
    others = len(records) - len(slowed)
    return f"flagged {len(flagged & slowed)} of {len(slowed)} slowed cases, {len(flagged - slowed)} of {others} others"


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def quiet_cli(*argv: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli(["compare", *argv])


def report(name: str, seconds: float, target: float = TARGET_S, note: str = "") -> None:
    print(f"{name:<52} {seconds:7.3f} s  (target < {target:g} s){note}")


def two_runs(tmp: Path) -> None:
    base = make_run(tmp, run_records(5000, 1), suite="bench", started_at="2026-01-01T00:00:00Z")
    slowed = run_records(5000, 2, slow_every=10)
    cand = make_run(tmp, slowed, suite="bench", started_at="2026-01-02T00:00:00Z")
    read_s, (a, b) = timed(lambda: (read_run(base), read_run(cand)))
    compare_s, result = timed(lambda: compare(a, b))
    cli_s, code = timed(lambda: quiet_cli(str(base), str(cand), "--fail-on", "regression"))
    print(f"two runs of 5,000 records: {verdicts(result, slowed, 10)}, exit code {code}")
    report("  read both runs", read_s)
    report("  compare() (10,000 U tests)", compare_s, note=f"  = {compare_s / read_s:.2f}x the read time")
    report("  harness compare, end to end", cli_s)
    thr = METRICS[0]
    pairs = [(thr.samples(a.records[i]), thr.samples(b.records[i])) for i in range(len(a.records))]
    ours_s, _ = timed(lambda: [mann_whitney_u(x, y) for x, y in pairs])
    try:
        from scipy.stats import mannwhitneyu
    except ImportError:
        print(f"  5,000 U tests (harness.regress.stats): {ours_s:.3f} s; scipy not installed for scale")
        return
    scipy_s, _ = timed(lambda: [mannwhitneyu(x, y, method="asymptotic") for x, y in pairs])
    ratio = ours_s / scipy_s
    print(f"  5,000 U tests: harness.regress.stats {ours_s:.3f} s, scipy.stats {scipy_s:.3f} s (ratio {ratio:.2f})")


def history(tmp: Path) -> None:
    root = tmp / "history"
    for night in range(30):
        started = f"2026-02-{night + 1:02d}T02:00:00Z"
        make_run(root, run_records(500, 100 + night), suite="nightly", started_at=started)
    slowed = run_records(500, 999, slow_every=10)
    cand = make_run(root, slowed, suite="nightly", started_at="2026-03-01T00:00:00Z")
    cli_s, code = timed(lambda: quiet_cli("--history", "30", "--root", str(root), str(cand), "--fail-on", "regression"))
    from harness.regress.baseline import read_candidate, select_history

    candidate = read_candidate(cand)
    select_s, (runs, _) = timed(lambda: select_history(candidate, root, 30))
    compare_s, result = timed(lambda: compare(runs, candidate))
    print(f"history of 30 runs x 500 records: {verdicts(result, slowed, 10)}, exit code {code}")
    report("  select and read the history", select_s)
    report("  compare() with step detection", compare_s, note=f"  = {compare_s / select_s:.2f}x the read time")
    report("  harness compare --history 30, end to end", cli_s)


if __name__ == "__main__":
    # Other processes on the cores slow every figure; the load average says how much to trust them.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        two_runs(Path(tmp))
        history(Path(tmp))
