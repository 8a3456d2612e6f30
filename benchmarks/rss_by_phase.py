"""Resident memory at the start of every phase of every case: where a run's peak RSS comes from.

Runs ``harness run`` in this process with a phase hook (``harness.measure.phases.PHASE_HOOKS``) that prints, as each
phase of each case begins, the seconds since start, the case, the phase, the resident memory (VmRSS) and its peak so
far (VmHWM, which each case's memory tracker resets as its window begins), in MiB, to standard error. The
arguments are those of ``harness run``.

Run: PYTHONPATH=. .venv/bin/python benchmarks/rss_by_phase.py suites/smoke.yaml --filter 'wide_resnet101_2/*' \\
         --no-report --no-progress --out /tmp/rss
"""

from __future__ import annotations

import runpy
import sys
import time


def status_mib() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in MiB."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1]) // 1024
    return values


def main() -> None:
    from harness.measure import phases

    start = time.perf_counter()

    def hook(name: str, run) -> None:
        mib = status_mib()
        print(
            f"{time.perf_counter() - start:8.2f} s  {run.case.id:48s} {name:9s} "
            f"RSS {mib.get('VmRSS', 0):6d} MiB  peak {mib.get('VmHWM', 0):6d} MiB",
            file=sys.stderr,
            flush=True,
        )

    phases.PHASE_HOOKS.append(hook)
    sys.argv = ["harness", "run", *sys.argv[1:]]
    runpy.run_module("harness", run_name="__main__")


if __name__ == "__main__":
    main()
