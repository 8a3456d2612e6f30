"""Lean runs: wall time, peak RSS and interval widths of ``harness run`` against a timm-style sweep of the same cases.

The baseline is written here, after timm's ``benchmark.py`` (its sleeps left out): per case it builds the model
from the project's zoo (``harness.zoo.build_model``, in a function whose locals go when the case ends, as timm's
runner objects do), runs 3 warm-up and 10 timed steps (inference: a forward under ``inference_mode``; train:
forward, cross-entropy, backward and ``torch.optim.SGD`` with momentum 0.9, as timm steps it (the harness's own
step makes the same update bit for bit: ``harness.measure.scenarios.MomentumSGD``); bf16
autocast and channels_last as the case says) on a seeded synthetic batch, and reports the throughput of the median
step with the bootstrap 95% interval of its 10 steps (``harness.store.stats.throughput_interval``, the function the
harness computes its own interval with).

Each configuration runs in its own subprocess, on the same cases (the smoke suite's, or ``--quick``'s subset):
``baseline`` (this file, ``--child``), ``harness`` (``python -m harness run`` of this checkout) and, unless
``--no-main``, ``main`` (the same command with ``PYTHONPATH`` on the checkout at ``--main``: the harness before this
change), interleaved ABBA: baseline, harness, harness, baseline per round, with main once in the middle of the
first round. For each run it prints the wall time, the child's peak RSS (the larger of ``ru_maxrss`` from
``wait4`` and its process tree's resident memory summed and sampled every 20 ms, ``TreeWatch``: the harness resets
the kernel's peak mark at each case), and the median over the cases of the relative width of the 95% interval
((high - low) / throughput); then each configuration's mean and the ratios to the baseline and to main, against
the goals: wall <= 0.7x the baseline's, peak RSS <= 0.85x the baseline's and within the largest case's own need plus
the process's baseline, interval widths no wider than main's.

The largest case's own need is measured before the runs: each training case of the largest model runs alone in a
fresh process as the baseline runs it, and its need is the rise of the peak resident memory (VmHWM, reset once
torch and the zoo are imported, where the kernel allows) over the resident memory at that point; the largest of them
counts. What the case itself loads (torch.optim imports torch._dynamo) is part of its need.
(Measured after other cases in one process, the heap they freed and the allocator kept would hide part of it.)
The process's baseline is the resident memory of a process that has imported what ``harness run`` imports before
its first case.

Run: PYTHONPATH=. python benchmarks/bench_lean.py [--quick] [--rounds N] [--models a,b] [--no-main] [--no-need]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SMOKE = ROOT / "suites" / "smoke.yaml"
QUICK = ("resnet18", "resnet50", "wide_resnet50_2")
WARMUP_STEPS, TIMED_STEPS = 3, 10


# --- the baseline child: a timm-style sweep ------------------------------------------------------------------------


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _baseline_case(case) -> dict:
    """One case as timm's benchmark.py runs it: build, 3 warm-up steps, 10 timed steps, each synced and timed."""
    import torch
    import torch.nn.functional as F

    from harness.measure.scenarios import synthetic_batch
    from harness.store import stats
    from harness.zoo import build_model

    torch.manual_seed(case.seed)
    model = build_model(case.model, weights=case.weights)
    fmt = torch.channels_last if case.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x, y = synthetic_batch(case.batch_size, case.resolution, "cpu", case.channels_last, seed=case.seed)
    amp = case.precision == "amp_bf16"

    if case.mode == "train":
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                model(x)

    for _ in range(WARMUP_STEPS):
        step()
    samples = []
    for _ in range(TIMED_STEPS):
        t = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t) * 1000.0)
    median = statistics.median(samples)
    throughput = case.batch_size * 1000.0 / median
    low, high = stats.throughput_interval(samples, case.batch_size)
    return {"case_id": case.id, "throughput_img_s": throughput, "throughput_ci95": [low, high]}


def child_baseline(models: list[str], out: Path) -> None:
    from harness.suite import load_suite

    cases = [c for c in load_suite(SMOKE).cases() if c.model in models]
    records = [_baseline_case(case) for case in cases]
    out.write_text(json.dumps({"records": records}))


def child_need(case_id: str, out: Path) -> None:
    """One case alone in a fresh process, as the baseline runs it: the rise of the peak resident memory over the
    resident memory once torch and the zoo are imported. That is the case's own need; measured after other cases
    in one process, the heap they freed and the allocator kept would hide part of it."""
    from harness.measure.memory import reset_rss_peak
    from harness.suite import load_suite

    case = next(c for c in load_suite(SMOKE).cases() if c.id == case_id)
    import torch  # noqa: F401  (the zoo imports torch only when it builds: import it before the mark)
    import torch.nn.functional  # noqa: F401

    import harness.measure.scenarios  # noqa: F401
    import harness.store.stats  # noqa: F401
    import harness.zoo  # noqa: F401

    before = _status_kib("VmRSS")
    reset_rss_peak()
    _baseline_case(case)
    out.write_text(json.dumps({"need_kib": max(0, _status_kib("VmHWM") - before)}))


def child_imports(out: Path) -> None:
    """Import what ``harness run`` has imported before its first case, and report the resident memory."""
    import torch  # noqa: F401

    import harness.cli  # noqa: F401
    import harness.launch.inline  # noqa: F401
    import harness.launch.session  # noqa: F401
    import harness.measure.runner  # noqa: F401
    import harness.measure.trackers  # noqa: F401

    out.write_text(json.dumps({"rss_kib": _status_kib("VmRSS")}))


# --- the parent: ABBA runs of the configurations -----------------------------------------------------------------


_PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (``/proc/<pid>/task/<tid>/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return out


def _resident_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE_MIB
    except (OSError, ValueError, IndexError):
        return 0.0


class TreeWatch:
    """The largest resident memory of a process and everything below it, summed, sampled every ``interval`` s.

    ``ru_maxrss`` alone cannot be trusted for ``harness run``: the harness resets its process's peak-RSS mark
    (``/proc/self/clear_refs``) at the start of each case to read the case's own peak, and ``ru_maxrss`` is that
    mark, so it gives the peak since the last case began (the smoke suite's last case is a small profiled one), not
    the run's. The sum over the tree also counts a launcher and its children (the op-count child) at once."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_resident_mib(p) for p in _tree(self.pid)))
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def _run(argv: list[str], env: dict, cwd: Path = ROOT) -> tuple[float, float]:
    """Run ``argv`` in ``cwd``; its wall seconds and its peak RSS in MiB: the larger of ``ru_maxrss`` (of the child
    and what it waited for) and the peak of the tree's summed RSS, sampled (``TreeWatch``)."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watch = TreeWatch(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    sampled = watch.stop()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{err[-2000:]}")
    return wall, max(usage.ru_maxrss / 1024.0, sampled)


def _env(pythonpath: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    env.pop("HARNESS_DEBUG", None)
    return env


def _widths(records: list[dict]) -> float:
    """Median over ok records of the relative width of the 95% interval of the throughput."""
    widths = []
    for r in records:
        ci, thr = r.get("throughput_ci95"), r.get("throughput_img_s")
        if ci and thr and r.get("status", "ok") == "ok":
            widths.append((ci[1] - ci[0]) / thr)
    return statistics.median(widths) if widths else float("nan")


def run_baseline(models: list[str], work: Path) -> dict:
    out = work / f"baseline-{time.monotonic_ns()}.json"
    argv = [sys.executable, __file__, "--child", "baseline", "--models", ",".join(models), "--result", str(out)]
    wall, rss = _run(argv, _env(ROOT))
    data = json.loads(out.read_text())
    return {"wall": wall, "rss": rss, "width": _widths(data["records"]), "cases": len(data["records"])}


def largest_need(models: list[str], work: Path) -> tuple[float, str]:
    """The largest own need (MiB) among the training cases of the largest model, each alone in a fresh process
    (``child_need``), and that case's id. Training holds the weights, their gradients and the momentum: a model's
    largest cases are its training cases."""
    from harness.suite import load_suite
    from harness.zoo import build_model

    def params(name: str) -> int:
        return sum(p.numel() for p in build_model(name).parameters())

    biggest = max(models, key=params)
    needs = []
    for case in load_suite(SMOKE).cases():
        if case.model == biggest and case.mode == "train":
            out = work / f"need-{time.monotonic_ns()}.json"
            _run([sys.executable, __file__, "--child", "need", "--case", case.id, "--result", str(out)], _env(ROOT))
            needs.append((json.loads(out.read_text())["need_kib"] / 1024, case.id))
    return max(needs)


def run_harness(models: list[str], work: Path, code: Path) -> dict:
    from harness.store.loader import read_store

    out = work / f"run-{time.monotonic_ns()}"
    filters = [arg for m in models for arg in ("--filter", f"{m}/*")]
    argv = [sys.executable, "-m", "harness", "run", str(SMOKE), "--out", str(out), "--no-progress", *filters]
    # In the checkout itself: ``python -m`` puts the working folder first on sys.path, ahead of PYTHONPATH.
    wall, rss = _run(argv, _env(code), cwd=code)
    records = [r for run in read_store([out]).runs for r in run.records]
    return {"wall": wall, "rss": rss, "width": _widths(records), "cases": len(records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)} (24 cases)")
    parser.add_argument("--models", help="comma-separated models of the smoke suite (default: all ten)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="ABBA rounds (each: baseline, harness, harness, baseline)"
    )
    parser.add_argument("--main", default="/work/main", help="checkout of the harness before the change")
    parser.add_argument("--no-main", action="store_true", help="do not run the pre-change harness")
    parser.add_argument(
        "--no-need", action="store_true", help="do not measure the largest case's own need (about 3 minutes a case)"
    )
    parser.add_argument("--child", choices=("baseline", "imports", "need"), help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from harness.zoo import MODEL_NAMES

    models = args.models.split(",") if args.models else list(QUICK if args.quick else MODEL_NAMES)
    if args.child == "baseline":
        return child_baseline(models, args.result)
    if args.child == "imports":
        return child_imports(args.result)
    if args.child == "need":
        return child_need(args.case, args.result)

    results: dict[str, list[dict]] = {"baseline": [], "harness": [], "main": []}
    with tempfile.TemporaryDirectory(prefix="bench-lean-") as tmp:
        work = Path(tmp)
        imports_out = work / "imports.json"
        _run([sys.executable, __file__, "--child", "imports", "--result", str(imports_out)], _env(ROOT))
        process_base = json.loads(imports_out.read_text())["rss_kib"] / 1024
        need, need_case = (float("nan"), "not measured") if args.no_need else largest_need(models, work)
        order = []
        for r in range(args.rounds):
            order += (
                ["baseline", "harness"] + (["main"] if r == 0 and not args.no_main else []) + ["harness", "baseline"]
            )
        print(f"{len(models)} models of {SMOKE.name}; order: {', '.join(order)}; load {os.getloadavg()[0]:.1f}")
        for name in order:
            if name == "baseline":
                res = run_baseline(models, work)
            else:
                res = run_harness(models, work, ROOT if name == "harness" else Path(args.main))
            results[name].append(res)
            print(
                f"  {name:8s} {res['cases']:3d} cases  wall {res['wall']:7.1f} s  peak RSS {res['rss']:7.0f} MiB  "
                f"median interval width {res['width']:.3f}  (load {os.getloadavg()[0]:.1f})"
            )

    def mean(name: str, key: str) -> float:
        return statistics.fmean(r[key] for r in results[name])

    print("\nmeans (wall s, peak RSS MiB, median relative interval width):")
    for name in ("baseline", "harness", "main"):
        if results[name]:
            print(f"  {name:8s} {mean(name, 'wall'):8.1f} {mean(name, 'rss'):8.0f} {mean(name, 'width'):8.3f}")
    b = "baseline"
    wall, rss = mean("harness", "wall") / mean(b, "wall"), mean("harness", "rss") / mean(b, "rss")
    print(f"\nharness / baseline: wall {wall:.2f} (goal <= 0.70), peak RSS {rss:.2f} (goal <= 0.85)")
    worst = max(r["rss"] for r in results["harness"])
    print(
        f"harness peak RSS (highest of its runs) {worst:.0f} MiB against the largest case's own need {need:.0f} MiB "
        f"({need_case}, alone in a fresh process) plus the process's baseline {process_base:.0f} MiB = "
        f"{need + process_base:.0f} MiB: "
        f"{'not measured' if need != need else 'within' if worst <= need + process_base else 'ABOVE'}"
    )
    if results["main"]:
        m = "main"
        wall_m, rss_m = mean(m, "wall") / mean(b, "wall"), mean(m, "rss") / mean(b, "rss")
        print(f"main / baseline: wall {wall_m:.2f}, peak RSS {rss_m:.2f}")
        print(
            f"harness / main: wall {mean('harness', 'wall') / mean(m, 'wall'):.2f}, peak RSS "
            f"{mean('harness', 'rss') / mean(m, 'rss'):.2f}, interval width "
            f"{mean('harness', 'width') / mean(m, 'width'):.2f} (goal <= 1.00)"
        )
    print(f"interval width harness / baseline: {mean('harness', 'width') / mean(b, 'width'):.2f}")


if __name__ == "__main__":
    main()
