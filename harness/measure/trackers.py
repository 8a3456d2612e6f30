"""Trackers: what watches a case while it runs (memory, telemetry, the profiler), behind one protocol.

A tracker is a context manager over a window of the case. Entering starts it; leaving stops it, also when the
case fails inside the window, so no sampling thread outlives its case (leaving never swallows the failure, except
the profiler's, whose failures cost the trace and not the case); after the case's samples are in the record,
``fill(rec)`` writes the tracker's fields into it. Each tracker names its ``window``:

- ``case``: from the end of the numerics reference passes (whose fp32 forward is not the case's memory) to the end
  of the timed window, the warm-up included (``memory.MemoryTracker``; ``contention.ContentionTracker``: what else
  used the cores and the GPU, which the record's ``noisy`` mark is judged on, over every step the timed window may
  hold, since on the CPU the warm-up's steady steps open it);
- ``timed``: the timed window alone (``telemetry.TelemetryTracker``);
- ``profile``: the profiler's own steps after the timed window (``profiler.ProfileTracker``, run by the profile
  phase for the cases a suite names).

``TRACKERS`` lists the tracker classes every case is built with, before its first phase: ``for_run(run)`` returns
the tracker for a ``CaseRun``, or None where it does not apply (telemetry off, or not a GPU). A new tracker is one
class with ``window``, ``for_run``, ``__enter__``, ``__exit__`` and ``fill``, added to that list.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol

from harness.measure.contention import ContentionTracker
from harness.measure.memory import MemoryTracker
from harness.measure.telemetry import TelemetryTracker


class Tracker(Protocol):
    """One tracker of a case (see the module docstring)."""

    window: str

    def __enter__(self) -> Tracker: ...

    def __exit__(self, exc_type, exc, tb) -> bool | None: ...

    def fill(self, rec: Any) -> None: ...


class TrackerKind(Protocol):
    """A tracker class as ``TRACKERS`` lists it: it builds its tracker for a case, or None where it does not apply."""

    def for_run(self, run: Any) -> Tracker | None: ...


#: The trackers a case is built with, in the order they are entered (and filled) within a window.
TRACKERS: list[TrackerKind] = [MemoryTracker, TelemetryTracker, ContentionTracker]


def build(run: Any) -> list[Tracker]:
    """The trackers of ``TRACKERS`` that apply to ``run`` (a ``CaseRun``)."""
    return [t for t in (kind.for_run(run) for kind in TRACKERS) if t is not None]


@contextmanager
def window(trackers: list[Tracker], name: str) -> Iterator[None]:
    """Enter the trackers of window ``name`` in order around the block, and leave them in reverse order."""
    with ExitStack() as stack:
        for tracker in trackers:
            if tracker.window == name:
                stack.enter_context(tracker)
        yield
