"""End to end on this CPU: real runs of a small suite, compared as a nightly job would compare them.

Two runs with the same settings must never be called a regression or an improvement: unchanged, or inconclusive
where the machine was too noisy to tell. A run with oneDNN held to an older instruction set
(``DNNL_MAX_CPU_ISA=AVX2`` on a CPU with AVX-512 and AMX: its bf16 convolutions run about 10x slower here), which
leaves the environment fingerprint equal, must be flagged as a regression and fail the job under
``--fail-on regression``.

The timings are real and the machine may be busy (a CI runner shares two cores with other jobs); the test runs
anyway. Every run uses one thread pinned to the least busy core, so one other busy process on a 2-core machine
leaves it a core of its own. With several, they share its core too, and an unchanged case moves by up to ~1.5x
between two runs (measured here at a load of 8 on 2 cores): the suite's threshold (70%) sits above that and far
below the slowdown. A case whose record is marked noisy (measured under contention) keeps a verdict only when the
change is larger than the contention can explain (at most 1/(1 - s) slower for a share s of its core taken), and
one whose throughput interval is too wide is inconclusive. The tenfold slowdown is larger than anything short of
nine tenths of the core taken; if a try still comes out inconclusive, the slow run is measured again, up to three
times, and it must then be flagged.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow

if not (ROOT / "harness" / "commands" / "run.py").is_file():
    pytest.skip("runner not available", allow_module_level=True)

SUITE = """\
name: compare-e2e
defaults:
  device: cpu
  resolution: 64
  warmup: {min_iters: 5, max_iters: 100, max_seconds: 10}
  measure: {min_seconds: 2, min_iters: 20}
matrix:
  model: [resnet18]
  mode: [inference]
  batch_size: [2]
  precision: [amp_bf16]
# An unchanged case moves by up to ~1.5x between runs on a busy 2-core machine (see above); the slowdown takes
# about nine tenths of the throughput away.
regression: {threshold: 0.7}
"""
#: How often the slow run is measured before its comparison must carry a verdict.
ATTEMPTS = 3


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def slower_isa() -> str:
    """An instruction set below this CPU's best, for oneDNN: AVX2 under AVX-512 (and AMX), else SSE4.1."""
    return "AVX2" if any(f.startswith("avx512") for f in cpu_flags()) else "SSE41"


def least_busy_core(interval_s: float = 0.5) -> int:
    """The core (of those this process may use) with the least busy time over ``interval_s``, from /proc/stat."""
    allowed = sorted(os.sched_getaffinity(0))

    def busy() -> dict[int, int]:
        out = {}
        for line in Path("/proc/stat").read_text().splitlines():
            name, *ticks = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                t = [int(x) for x in ticks]
                out[int(name[3:])] = sum(t) - t[3] - (t[4] if len(t) > 4 else 0)  # all but idle and iowait
        return out

    try:
        before = busy()
        time.sleep(interval_s)
        after = busy()
    except (OSError, ValueError, IndexError):
        return allowed[-1]
    return min(allowed, key=lambda c: (after.get(c, 0) - before.get(c, 0), -c))


@contextlib.contextmanager
def pinned(core: int):
    """This process (and so the runs it starts) on one core, restored afterwards."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def harness_run(suite: Path, out: Path, **env: str) -> Path:
    with pinned(least_busy_core()):
        argv = ("run", str(suite), "--out", str(out), "--no-report", "--no-progress")
        done = run_cli(*argv, env={"OMP_NUM_THREADS": "1", **env})
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("run folder: "), done.stdout
    run_dir = Path(last.removeprefix("run folder: ").strip())
    assert run_dir.parent == out / "compare-e2e" and (run_dir / "manifest.json").is_file()
    return run_dir


def compare_json(*argv: str) -> tuple[int, dict, str]:
    done = run_cli("compare", *argv, "--format", "json")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def cases(result: dict) -> list[dict]:
    return [c for bucket in result["buckets"].values() for c in bucket]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    out = root / "results"
    return root, suite, out, harness_run(suite, out), harness_run(suite, out)


def test_two_runs_with_the_same_settings_are_never_called_changed(runs):
    _, _, out, first, second = runs
    code, result, err = compare_json(str(first), str(second), "--fail-on", "regression")
    counts = result["counts"]
    assert code == 0, (counts, err)
    assert counts["regressed"] == counts["improved"] == counts["newly_failing"] == 0, [
        (c["key"], c["bucket"], c.get("noise"), [(m["metric"], m["change"], m["verdict"]) for m in c["metrics"]])
        for c in cases(result)
    ]
    assert counts["unchanged"] + counts["inconclusive"] == 1
    # Whatever is inconclusive says why, and fails the job only when asked to.
    for case in result["buckets"].get("inconclusive", []):  # only buckets that hold cases are written
        assert case["noise"] and all(m["verdict"] != "regressed" for m in case["metrics"])
    unsure = bool(counts["inconclusive"] or result.get("run_inconclusive"))
    assert compare_json(str(first), str(second), "--fail-on", "inconclusive")[0] == int(unsure)
    assert (second / "regressions.json").is_file() and (second / "summary.md").is_file()
    # The same through the history the nightly job uses.
    code, result, _ = compare_json("--history", "1", "--root", str(out), str(second), "--fail-on", "regression")
    assert code == 0 and result["baseline_runs"] == [str(first)]


def test_a_real_slowdown_keeps_the_fingerprint_and_is_flagged(runs):
    if not any(f.startswith("avx512") for f in cpu_flags()):
        # On an AVX2-only CPU (an AMD EPYC VM) capping oneDNN at SSE4.1 left this bf16 case's throughput unchanged
        # in every try: there is no slowdown to flag.
        pytest.skip("needs a CPU with AVX-512: the slowdown caps oneDNN's ISA below it (this CPU has none)")
    root, suite, _, first, second = runs
    isa = slower_isa()
    tried = []
    for attempt in range(ATTEMPTS):
        slow = harness_run(suite, root / f"slow-{attempt}", DNNL_MAX_CPU_ISA=isa)
        # No --allow-mismatch: the fingerprint is equal, so this is compared like any night.
        code, result, err = compare_json(str(first), str(second), str(slow), "--fail-on", "regression")
        tried.append([(c["key"], c["bucket"], c.get("noise")) for c in cases(result)])
        if not result["counts"]["inconclusive"]:
            break
    assert result["baseline_runs"] == [str(first), str(second)]
    found = cases(result)
    # Contention only slows a run down, and by at most 1/(1 - s) for a share s of its core taken by others: a
    # tenfold slowdown stands unless nine tenths of the core were taken on every try.
    assert found and all(c["bucket"] == "regressed" for c in found), tried
    for case in found:
        tput = next(m for m in case["metrics"] if m["metric"] == "throughput_img_s")
        assert tput["verdict"] == "regressed", tput
        assert tput["test"] == "mann-whitney" and tput["p"] < 0.001 and tput["change"] < -0.7, tput
    assert code == 1, (tried, err)
