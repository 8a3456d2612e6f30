"""Rank 0's view of the whole run: a progress bar fed by every rank's records file.

Ranks do not report to each other while they measure; each appends its records to its own records file in the
shared run folder. A small thread on rank 0 reads those files every half second and counts the measured
units (a case, or a case at one DDP world size), so the bar shows i/N of the whole run, not of rank 0's shard.
"""

from __future__ import annotations

import threading
from pathlib import Path

from harness.launch.caseloop import describe
from harness.store.rundir import RunFolder


def measured_units(run_dir: Path) -> tuple[set[tuple[str, int]], dict | None]:
    """The (case id, world size) pairs recorded by any rank so far, and the newest file's last record."""
    return RunFolder(run_dir).measured_units()


class RunProgress:
    """A rich progress bar of the whole run on rank 0; a no-op on other ranks or when disabled."""

    def __init__(self, run_dir: Path | RunFolder, total: int, title: str, enabled: bool, interval_s: float = 0.5):
        self.folder = RunFolder(run_dir)
        self.total = total
        self.title = title
        self.enabled = enabled
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress = None
        self._task = None

    def __enter__(self) -> RunProgress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[last]}"),
            console=Console(stderr=True),
        )
        self._progress.start()
        self._task = self._progress.add_task(self.title, total=self.total, last="")
        self._thread = threading.Thread(target=self._poll, daemon=True, name="run-progress")
        self._thread.start()
        return self

    def _refresh(self) -> None:
        units, last = self.folder.measured_units()
        text = f"rank {last.get('rank', 0)}: {describe(last)}" if last else ""
        self._progress.update(self._task, completed=min(len(units), self.total), last=text[:90])

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._refresh()
            except Exception:  # a half-written file: the next poll reads it whole
                continue

    def __exit__(self, *exc) -> bool:
        if self._progress is not None:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
            try:
                self._refresh()
            finally:
                self._progress.stop()
        return False
