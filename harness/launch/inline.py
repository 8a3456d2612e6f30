"""The inline launcher: every case of the run in this process, on one device, with a progress bar.

The device's peak is probed before the first case and again after the last one (``RunSession.peak`` and
``RunSession.end_probe``: the manifest's ``health``). A first Ctrl-C lets the case in hand finish and its record be
written, then stops; a second stops at once. Either way the manifest is marked ``interrupted``, without an end
probe, and ``harness run --resume RUN_DIR`` completes the run without repeating finished cases, keeping the first
start probe and taking a new end probe.
"""

from __future__ import annotations

import dataclasses
import signal
from typing import Any

from harness.launch.caseloop import describe, finished_ids, run_cases
from harness.launch.session import LaunchSettings, RunSession, Stopwatch
from harness.store.manifest import RunStatus


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
    session: RunSession,
    settings: LaunchSettings | Any,
    *,
    profile_patterns: list[str] | None = None,
    report: bool | None = None,
    show_progress: bool | None = None,
) -> tuple[str, list[dict]]:
    """Measure the session's cases in this process; returns the final run status and all of the run's records.

    ``settings`` are the run's ``LaunchSettings``; a suite is taken too (its settings are resolved here), and the
    keywords override what the settings say.
    """
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.errors import RunStopped

    if not isinstance(settings, LaunchSettings):
        settings = LaunchSettings.resolve(None, settings, session.cases, session.manifest)
    overrides = {"profile": profile_patterns, "report": report, "progress": show_progress}
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    console = Console(stderr=True)
    ctx = session.context(settings, session.device)
    if ctx.dev.is_cuda and not ctx.dev.unsupported_reason("fp32"):
        # CUDA events record on the current device's stream: make it the case's device (cuda:1 timed on cuda:0
        # would read as near-zero step times).
        ctx.dev.activate()
    if settings.profile or any(c.profile for c in session.cases):
        from harness.measure.profiler import check_trace_dir_writable

        check_trace_dir_writable(session.folder.profiles_dir)  # before anything runs, not after the first case
    console.print(f"[bold]{ctx.suite}[/]: {len(session.cases)} cases on {ctx.device} -> {session.run_dir}")
    session.manifest.num_threads = torch.get_num_threads()
    status = RunStatus.COMPLETE
    clock = Stopwatch()
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
        disable=not settings.progress,
        transient=False,
    )
    with _Interrupts(console) as interrupts, progress:
        task = progress.add_task("starting", total=len(session.cases), last="")
        progress.update(task, completed=len(finished_ids(session.folder, 0) & {c.id for c in session.cases}))

        def on_start(case, index):
            progress.update(task, description=f"{case.id}")

        def on_done(record):
            progress.update(task, advance=1, last=describe(record))

        try:
            progress.update(task, description="measuring the device's peak FLOP/s (start of run)")
            ctx.peak = session.peak(session.device)
            run_cases(session.cases, ctx, on_start=on_start, on_done=on_done, should_stop=lambda: interrupts.requested)
            _release_models(ctx)  # the end probe and the report need none of the last model's memory
            if interrupts.requested:
                status = RunStatus.INTERRUPTED
            else:
                progress.update(task, description="measuring the device's peak FLOP/s (end of run)")
                session.end_probe(session.device)
        except KeyboardInterrupt:
            status = RunStatus.INTERRUPTED
        except RunStopped as exc:
            status = RunStatus.FAILED
            session.manifest.failure = str(exc)
            console.print(f"[red]stopped: {exc}")
    session.manifest.wall_s = clock.seconds()
    records = session.finish(status)
    if status in (RunStatus.INTERRUPTED, RunStatus.FAILED):
        console.print(
            f"[yellow]run {status}; finish it in a fresh process with: harness run --resume {session.run_dir}"
        )
    if settings.report:
        session.write_report(console.print)
    return status, records


def _release_models(ctx) -> None:
    """Free the cached model and return the freed heap to the OS once the cases are done."""
    import gc

    from harness.measure.memory import trim_heap

    if ctx.model_cache is not None:
        ctx.model_cache.clear()
    gc.collect()
    trim_heap()
