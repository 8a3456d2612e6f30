"""The store at fleet scale: 1,000 runs x 500 records, ``compare --history 30``, ``export`` and ``query``.

Writes a synthetic fleet store (``benchmarks/fleet.py``: a year of runs on twelve GPU types, real run-folder format)
into a temporary folder (or ``--dir``, kept), then times each command in its own subprocess, as a user runs it,
with its wall time and peak RSS (``ru_maxrss`` of the child):

- ``harness compare --history 30`` of the newest nightly run, cold (no index: every manifest read) and warm (the
  index at the results root made by the cold run); then of a new night written after the index was made, as a
  nightly job meets it (the index warm for every run but the new one, which is read from its JSONL);
- ``harness export`` of the whole store to CSV (the default format) and to Parquet, cold (the records tables of the
  index made from the JSONL) and warm;
- one ``harness query`` (resnet50 throughput by GPU and driver), warm.

Each figure is printed against its goal (compare under 2 s, export under 30 s, memory under 2 GB), and beside
the load average of the machine, which moves them. Run:
``.venv/bin/python benchmarks/bench_fleet.py [--runs 1000] [--records 500] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from fleet import candidate, machines, make_fleet, write_run  # noqa: E402

from harness.store.index import INDEX_DIR  # noqa: E402

GOALS = {"compare": 2.0, "export": 30.0, "query": None}  # query: no time goal, the memory goal only
MEMORY_GOAL_MB = 2048
QUERY = (
    "SELECT env_device_name AS gpu, env_driver AS driver, count(*) AS records, "
    "round(median(throughput_img_s), 1) AS img_s FROM records WHERE model = 'resnet50' AND mode = 'train' "
    "GROUP BY ALL ORDER BY gpu, driver"
)


def peak_rss(*argv: str) -> tuple[float, float, int, float]:
    """Run ``harness ARGV`` in a child Python: (wall s, the child's peak RSS in MiB, exit code, CPU s). The child
    reports its own ``ru_maxrss`` and CPU time (user + system) as it ends."""
    code = (
        "import resource, runpy, sys, time; sys.argv = ['harness', *sys.argv[1:]]; t = time.perf_counter()\n"
        "try:\n    runpy.run_module('harness', run_name='__main__')\n"
        "except SystemExit as e:\n    rc = e.code or 0\nelse:\n    rc = 0\n"
        "u = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(f'{time.perf_counter() - t} {u.ru_maxrss} {rc} {u.ru_utime + u.ru_stime}', file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    wall = time.perf_counter() - start
    *_, last = proc.stderr.strip().splitlines() or ["0 0 1 0"]
    try:
        _, rss_kb, rc, cpu = last.split()
        rss, rc, cpu = int(rss_kb) / 1024, int(rc), float(cpu)
    except ValueError:
        rss, rc, cpu = float("nan"), proc.returncode, float("nan")
    if rc not in (0, 5):
        print(f"  harness {' '.join(argv)} exited {rc}: {proc.stderr[-400:]}")
    return wall, rss, rc, cpu


def show(name: str, goal: float | None, wall: float, rss: float, rc: int, cpu: float) -> float:
    """One line: the figures against the goals, the CPU time (what the command costs on an idle core) and the
    machine's load average, which stretches the wall time on a shared machine; returns the CPU time."""
    ok = "ok  " if (goal is None or wall < goal) and rss < MEMORY_GOAL_MB else "MISS"
    ok = ok if rc in (0, 5) else "FAIL"
    load = os.getloadavg()[0]
    target = f"(goal < {goal:g} s)" if goal is not None else "(no time goal)"
    print(f"{ok} {name:<50} {wall:7.2f} s {target:<14}  cpu {cpu:6.2f} s  {rss:6.0f} MiB (< {MEMORY_GOAL_MB})  "
          f"exit {rc}  load {load:.1f}", flush=True)  # fmt: skip
    return cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--dir", help="write the store here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    results = work / "results"
    try:
        if not results.is_dir():
            start = time.perf_counter()
            make_fleet(results, args.runs, args.records)
            print(f"wrote {args.runs} runs x {args.records} records in {time.perf_counter() - start:.0f} s", flush=True)
        shutil.rmtree(results / INDEX_DIR, ignore_errors=True)
        size = sum(f.stat().st_size for f in results.rglob("*") if f.is_file()) / 2**30
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"store: {results} ({size:.2f} GiB of files), {os.cpu_count()} CPUs, load average {load}", flush=True)
        cand = candidate(results)
        compare = ("compare", "--history", "30", "--root", str(results), str(cand), "--out", str(work / "cmp"))
        cold = show("compare --history 30, cold (no index)", GOALS["compare"], *peak_rss(*compare))
        warm = show("compare --history 30, warm", GOALS["compare"], *peak_rss(*compare))
        gpu, host = machines()[0]
        # later on the candidate's own day, so the environment (driver, clocks) matches its history
        night = write_run(results, 364, gpu, host, "nightly", args.records, np.random.default_rng(366), minute=59)
        try:
            tonight = (*compare[:-3], str(night), "--out", str(work / "cmp-night"))
            show("compare --history 30 of a new night (index warm)", GOALS["compare"], *peak_rss(*tonight))
        finally:
            shutil.rmtree(night, ignore_errors=True)
        shutil.rmtree(results / INDEX_DIR, ignore_errors=True)
        csv, parquet = str(work / "all.csv"), str(work / "all.parquet")
        cold_export = show(
            "export to CSV, cold (index made)", GOALS["export"], *peak_rss("export", str(results), "-o", csv)
        )
        warm_export = show("export to CSV, warm", GOALS["export"], *peak_rss("export", str(results), "-o", csv))
        show("export to Parquet, warm", GOALS["export"], *peak_rss("export", str(results), "-o", parquet))
        show("query (resnet50 train by GPU and driver), warm", GOALS["query"], *peak_rss("query", str(results), QUERY))
        # The cold runs read the store as it is read without an index (every manifest; every record checked), the
        # baseline the index is measured against, in the same run.
        print(f"warm / cold, CPU time: compare {warm / cold:.2f}, export to CSV {warm_export / cold_export:.2f}")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
