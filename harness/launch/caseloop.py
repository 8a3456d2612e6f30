"""The case loop of one rank: measure its cases in order, one record each, surviving restarts.

Before a case the worker notes a ``started`` event in its progress file; after it, the record goes to its records
file (both in the run folder, ``harness.store.rundir.RunFolder``). A restarted worker (torchrun
``--max-restarts``, or ``harness run --resume``) reads both: finished cases are skipped, an interrupted one is
retried, and a case that was started twice without finishing (it killed its worker twice) is recorded as
``crashed`` and skipped. Nothing recorded before a crash is lost or written twice.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.measure import ops
from harness.measure.phases import profiled
from harness.store.record import Record, Status
from harness.store.rundir import RecordNotSavedError, RunFolder, utc_now

#: A case started this many times without a record is taken to kill its worker and is not tried again.
MAX_ATTEMPTS = 2


def finished_ids(folder: RunFolder | Path, rank: int) -> set[str]:
    """Case ids that already have a record from ``rank`` in this run."""
    return {r["case_id"] for r in RunFolder(folder).rank_records(rank) if "case_id" in r}


def unfinished_attempts(folder: RunFolder | Path, rank: int) -> Counter:
    """How often each case was started by ``rank`` and then lost (crash), not counting user interrupts."""
    counts: Counter = Counter()
    for event in RunFolder(folder).progress_events(rank):
        if event.get("event") == "started":
            counts[event["case_id"]] += 1
        elif event.get("event") == "interrupted":
            counts[event["case_id"]] -= 1
    return counts


def _event(folder: RunFolder, rank: int, case_id: str, event: str) -> None:
    folder.note_progress(rank, {"case_id": case_id, "event": event, "at": utc_now(), "pid": os.getpid()})


def crashed_record(case, ctx, attempts: int) -> dict[str, Any]:
    """The record of a case that killed its worker ``attempts`` times."""
    from harness.measure.runner import base_record

    rec: Record = base_record(case, ctx)
    rec.status = Status.CRASHED
    rec.message = f"the worker died {attempts} times while measuring this case; it was not tried again"
    rec.duration_s = 0.0
    return rec.to_dict()


def warm_order(cases: Sequence, last: Callable[[Any], bool] | None = None, largest_first: bool = False) -> list:
    """The order a rank measures ``cases`` in: the suite's order, except that the cases of one warm group (one
    model in one memory format, ``runner.warm_group``) run one after another, from the place of the group's first
    case, in the suite's order among themselves. A smoke suite's resnet18 runs its four NCHW cases (inference fp32,
    inference amp_bf16, train fp32, train amp_bf16), then its four channels_last cases, then resnet34 the same way:
    each case after the first of its group carries the warm state of the one before (``timing.warm_up``), and the
    model changes layout once per model rather than at every case. Compiled cases stay where the suite puts them.

    The cases ``last`` picks (the profiled ones) run after all the others, in that same order among themselves: the
    profiler loads torch's compiler stack (``torch._inductor`` and ``torch._dynamo``, 80-90 MiB on the CPU) and
    leaves its state behind, so no case measured after it carries either.

    With ``largest_first`` (a rank on the CPU, whose cases' memory is the process's), the groups run in the order of
    the most memory a case of theirs needs (``memory.need_estimate``), the most first, the suite's order among
    equals. The peak resident memory of a run is its largest case's; measured after smaller cases, that case reads
    more than alone, by what the heap the others freed keeps in pieces (the smoke suite's wide_resnet101_2 training
    at 64 px: 1961-1994 MiB after resnext101_64x4d and wide_resnet50_2, 1922-1928 MiB first or alone). Smaller cases
    after it fit in what it freed."""
    from harness.measure.runner import warm_group

    groups: dict = {}
    for index, case in enumerate(cases):
        key = warm_group(case)
        groups.setdefault(("alone", index) if key is None else key, []).append(case)
    in_order = list(groups.values())
    if largest_first:
        from harness.measure.memory import need_estimate

        in_order.sort(key=lambda group: -max(need_estimate(case) for case in group))  # stable: equals keep order
    ordered = [case for group in in_order for case in group]
    if last is None:
        return ordered
    return [case for case in ordered if not last(case)] + [case for case in ordered if last(case)]


def run_cases(
    cases: Sequence,
    ctx,
    *,
    on_start: Callable[[Any, int], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    measure: Callable | None = None,
) -> list[dict[str, Any]]:
    """Measure every case of ``cases`` not yet recorded by this rank, in ``warm_order`` (the profiled ones last);
    return the records written now.

    ``on_start(case, index)`` and ``on_done(record)`` drive a progress display; ``should_stop()`` is asked after
    each case (a first Ctrl-C lets the case in hand finish). A KeyboardInterrupt during a case notes it as
    interrupted (so a resume retries it without counting a crash) and propagates. A case that leaves the device
    unusable (a sticky CUDA error) is recorded, then ``DeviceLostError`` stops the loop: the remaining cases need a
    fresh process.
    """
    if measure is None:
        from harness.measure.runner import measure_case as measure

    cases = warm_order(cases, last=profiled(ctx), largest_first=str(ctx.device).startswith("cpu"))
    folder = RunFolder(ctx.run_dir)
    done = finished_ids(folder, ctx.rank)
    attempts = unfinished_attempts(folder, ctx.rank)
    ops.plan((case.model, case.resolution) for case in cases if case.id not in done)
    written: list[dict[str, Any]] = []
    for index, case in enumerate(cases):
        if case.id in done:
            continue
        if attempts[case.id] >= MAX_ATTEMPTS:
            record = crashed_record(case, ctx, attempts[case.id])
        else:
            if on_start:
                on_start(case, index)
            _event(folder, ctx.rank, case.id, "started")
            try:
                record = measure(case, ctx)
            except KeyboardInterrupt:
                _event(folder, ctx.rank, case.id, "interrupted")
                raise
        try:
            folder.save_record(ctx.rank, record)
        except RecordNotSavedError as exc:
            # The record is safe (rescued beside the records file, in the temp dir, or on stderr) but this rank
            # cannot record any more: stop, so the run is closed as failed, saying why.
            from harness.errors import RunStopped

            raise RunStopped(str(exc)) from None
        done.add(case.id)
        written.append(record)
        if on_done:
            on_done(record)
        lost = ctx.device_lost
        if lost:
            # A sticky CUDA error fails every later kernel of this process at once: stop, with the case recorded.
            from harness.measure.device import DeviceLostError

            raise DeviceLostError(f"{case.id}: {lost}")
        if should_stop and should_stop():
            break
    return written


def describe(record: dict[str, Any]) -> str:
    """One line for a finished case: its throughput, or its status and message."""
    rec = Record.from_dict(record)
    if rec.ok:
        return f"{rec.case_id}: {rec.throughput_img_s:.1f} img/s"
    return f"{rec.case_id}: {rec.status} ({rec.message})"
