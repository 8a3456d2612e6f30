"""The inline launcher: every case of the run in this process, on one device, with a progress bar.

A first Ctrl-C lets the case in hand finish and its record be written, then stops; a second stops at once.
Either way the manifest is marked ``interrupted`` and ``harness run --resume RUN_DIR`` completes the run
without repeating finished cases.
"""

from __future__ import annotations

import fnmatch
import signal
import sys
import time
from pathlib import Path

from harness.launch.session import RunPlan, finish_run, measure_peak_once, write_run_report
from harness.launch.worker import describe, run_cases


class _Interrupts:
    """SIGINT handling: the first press asks to stop after the current case, the second raises at once."""

    def __init__(self, console) -> None:
        self.requested = False
        self.console = console
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Python's default handling
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.console.print("[yellow]Ctrl-C: finishing the current case, then stopping (Ctrl-C again to stop now)")

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def run_inline(
    plan: RunPlan,
    suite_settings,
    *,
    profile_patterns: list[str] | None = None,
    report: bool = True,
    show_progress: bool = True,
) -> tuple[str, list[dict]]:
    """Measure the plan's cases in this process; returns the final run status and all of the run's records."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.errors import RunStopped
    from harness.measure.case import CaseContext, ModelCache
    from harness.measure.precision import resolve_device

    console = Console(stderr=True)
    telemetry = getattr(suite_settings, "telemetry", None)
    ctx = CaseContext(
        run_id=plan.manifest["run_id"],
        suite=plan.manifest["suite"].get("name", "suite"),
        run_dir=plan.run_dir,
        device=resolve_device(plan.device),
        telemetry=bool(getattr(telemetry, "nvml", True)),
        telemetry_interval_ms=int(getattr(telemetry, "interval_ms", 50)),
        model_cache=ModelCache(),
        extra_profile=(lambda c: any(fnmatch.fnmatchcase(c.id, p) for p in profile_patterns))
        if profile_patterns
        else None,
        accuracy=getattr(suite_settings, "accuracy", None),
        device_name=(plan.manifest.get("environment") or {}).get("device_name"),
    )
    if ctx.dev.is_cuda and not ctx.dev.unsupported_reason("fp32"):
        # CUDA events record on the current device's stream: make it the case's device (cuda:1 timed on cuda:0
        # would read as near-zero step times).
        ctx.dev.activate()
    if profile_patterns or any(c.profile for c in plan.cases):
        from harness.measure.profiler import check_trace_dir_writable

        check_trace_dir_writable(plan.run_dir / "profiles")  # before anything runs, not after the first case
    console.print(f"[bold]{ctx.suite}[/]: {len(plan.cases)} cases on {ctx.device} -> {plan.run_dir}")
    plan.manifest["num_threads"] = torch.get_num_threads()
    status = "complete"
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
        disable=not show_progress,
        transient=False,
    )
    with _Interrupts(console) as interrupts, progress:
        task = progress.add_task("starting", total=len(plan.cases), last="")
        from harness.launch.worker import finished_ids

        progress.update(task, completed=len(finished_ids(plan.run_dir, 0) & {c.id for c in plan.cases}))

        def on_start(case, index):
            progress.update(task, description=f"{case.id}")

        def on_done(record):
            progress.update(task, advance=1, last=describe(record))

        try:
            progress.update(task, description="measuring the device's peak FLOP/s")
            ctx.peak = measure_peak_once(plan)
            run_cases(plan.cases, ctx, on_start=on_start, on_done=on_done, should_stop=lambda: interrupts.requested)
            if interrupts.requested:
                status = "interrupted"
        except KeyboardInterrupt:
            status = "interrupted"
        except RunStopped as exc:
            status = "failed"
            plan.manifest["failure"] = str(exc)
            console.print(f"[red]stopped: {exc}")
    plan.manifest["wall_s"] = round(time.perf_counter() - started, 2)
    records = finish_run(plan, status)
    if status in ("interrupted", "failed"):
        console.print(f"[yellow]run {status}; finish it in a fresh process with: harness run --resume {plan.run_dir}")
    if report:
        try:
            path = write_run_report(plan)
            if path:
                console.print(f"report: {path}")
        except Exception as exc:  # a report failure must not lose the run
            console.print(f"[red]report not written: {type(exc).__name__}: {exc}")
    return status, records


def print_summary(records: list[dict], file=None) -> None:
    """A table of the run's records: case, status, throughput with its interval, step time, memory, and why a
    case did not run."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="results")
    table.add_column("case", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in ("img/s", "95% CI", "median ms", "p90 ms", "GMACs dev", "mem MiB"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("note", overflow="fold", max_width=60)
    for r in records:
        if r.get("status") == "ok":
            ci = r.get("throughput_ci95") or [None, None]
            mem = r.get("peak_allocated_mib") or r.get("rss_peak_mib")
            table.add_row(
                r["case_id"],
                "ok",
                f"{r['throughput_img_s']:.1f}",
                f"{ci[0]:.1f}-{ci[1]:.1f}" if ci[0] is not None else "-",
                f"{r['step_ms_median']:.2f}",
                f"{r['step_ms_p90']:.2f}",
                f"{r['ops_deviation']:+.2%}" if r.get("ops_deviation") is not None else "-",
                f"{mem:.0f}" if mem else "-",
                r.get("message") or "",
            )
        else:
            colour = "yellow" if r.get("status") == "skipped" else "red"
            table.add_row(r.get("case_id", "?"), f"[{colour}]{r.get('status')}", *["-"] * 6, r.get("message") or "")
    console = Console(file=file or sys.stdout)
    if not console.is_terminal:
        console = Console(file=file or sys.stdout, width=200)
    console.print(table)


def run_dir_line(run_dir: Path) -> str:
    """The last line ``harness run`` prints, for scripts to pick up."""
    return f"run folder: {run_dir}"
