"""The ``ddp`` strategy: all ranks of a sub-group train one case together with DistributedDataParallel.

For every training case and every world size ``k`` of the suite's ``world_sizes``, the first ``k`` ranks train
the case together (each on its own batch of ``batch_size`` images: the batch size is per rank, the global batch
is ``k x batch_size``) while the other ranks wait. ``k = 1`` is rank 0 training alone, without DDP: the
baseline of the scaling efficiency. Every member writes its own record, with ``world_size = k``, its own
``throughput_img_s``, and two fields that need the whole group:

- ``global_throughput_img_s``: the sum of the members' throughputs (null when any member failed);
- ``scaling_efficiency``: global throughput over ``k`` times the 1-rank throughput of the same case in the
  same run (null without a 1-rank result).

The ranks move through the (case, k) units in lockstep, so every decision is taken together: a unit is skipped
only when every member already has its record (a restart after a crash between two members' writes measures
the unit again, and only the member that lacked the record writes one); a unit started twice without being
recorded (it killed a worker twice) is recorded ``crashed`` by its members. A member that fails a unit (out of
memory, an error, its deadline) makes every member record that outcome (``harness.measure.collective``), and the
sub-group is built anew for the next unit.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from harness.launch.caseloop import MAX_ATTEMPTS, crashed_record
from harness.measure.collective import FailureBoard
from harness.store.record import Record, Status
from harness.store.rundir import RunFolder, utc_now


def world_sizes_for(requested: list[int] | None, world_size: int) -> tuple[list[int], list[int]]:
    """The sub-group sizes to measure (sorted, 1 always included for the baseline) and those above the launch.

    Without ``world_sizes`` in the suite, the whole launch is measured against rank 0 alone: ``[1, W]``.
    """
    wanted = sorted({1, *(requested or [world_size])})
    return [k for k in wanted if k <= world_size], [k for k in wanted if k > world_size]


def _unit(case_id: str, world_size: int) -> str:
    return f"{case_id}@ws{world_size}"


def _local_state(folder: RunFolder, rank: int) -> dict[str, Any]:
    """This rank's recorded DDP units and how often each was started without a record."""
    done = {_unit(r["case_id"], int(r.get("world_size") or 1)) for r in folder.rank_records(rank)}
    attempts: Counter = Counter()
    for event in folder.progress_events(rank):
        if "world_size" not in event:
            continue
        key = _unit(event["case_id"], int(event["world_size"]))
        if event.get("event") == "started":
            attempts[key] += 1
        elif event.get("event") == "interrupted":
            attempts[key] -= 1
    return {"done": done, "attempts": dict(attempts)}


def _baselines(folder: RunFolder) -> dict[str, float]:
    """1-rank throughputs already recorded by rank 0 in this run (after a restart), by case id."""
    return {
        r.case_id: r.throughput_img_s
        for r in map(Record.from_dict, folder.rank_records(0))
        if int(r.world_size or 1) == 1 and r.ok and r.throughput_img_s
    }


def _event(ctx, case_id: str, world_size: int, event: str) -> None:
    RunFolder(ctx.run_dir).note_progress(
        ctx.rank, {"case_id": case_id, "world_size": world_size, "event": event, "at": utc_now()}
    )


def combine(record: dict[str, Any], members: list[dict | None], baseline: float | None) -> dict[str, Any]:
    """Fill ``global_throughput_img_s`` and ``scaling_efficiency`` of one member's record from all members'.

    ``members`` holds each member's ``{"status", "throughput_img_s"}``; global throughput is their sum when all
    are ``ok``, and efficiency is global over ``k x baseline`` (img/s over img/s).
    """
    k = len(members)
    ok = all(m is not None and m["status"] == Status.OK and m["throughput_img_s"] for m in members)
    total = round(sum(m["throughput_img_s"] for m in members), 4) if ok else None
    record["global_throughput_img_s"] = total
    record["scaling_efficiency"] = round(total / (k * baseline), 6) if total and baseline else None
    return record


def run_ddp(groups, cases: list, sizes: list[int], ctx, measure=None, one_rank_ddp: bool = False) -> int:
    """Measure every (training case, world size) unit with its sub-group; returns the records this rank wrote.

    Every rank must call this with the same ``cases`` and ``sizes``: the sub-groups are created here in the
    same order on every rank, and each unit ends with an exchange of statuses that every rank joins (ranks
    outside the unit's sub-group wait there). ``one_rank_ddp`` trains the 1-rank unit in DDP too.
    """
    if measure is None:
        from harness.measure.runner import measure_case as measure

    rank = groups.rank
    # k = 1 trains the bare model (the scaling baseline) unless the suite asks for DDP over a one-rank group.
    subgroups = {k: groups.new_group(list(range(k))) for k in sizes if k > 1 or one_rank_ddp}
    folder = RunFolder(ctx.run_dir)
    states = groups.gather(_local_state(folder, rank))
    baselines: dict[str, float] = groups.broadcast(_baselines(folder) if rank == 0 else None)
    written = 0
    for case in cases:
        for k in sizes:
            key = _unit(case.id, k)
            members = range(k)
            have = {r for r in members if key in states[r]["done"]}
            if len(have) == k:
                continue
            tries = max(states[r]["attempts"].get(key, 0) for r in members)
            record = None
            if rank < k:
                board = None
                if k > 1 and groups.store is not None:
                    prefix = f"harness/ddp-failure/{groups.env.run_id}/{groups.env.restart_count}/{key}/{tries}"
                    board = FailureBoard(groups.store, prefix, rank, list(members))
                sub = dataclasses.replace(ctx, rank=rank, world_size=k, ddp_group=subgroups.get(k), ddp_board=board)
                if tries >= MAX_ATTEMPTS:
                    record = crashed_record(case, sub, tries)
                else:
                    _event(sub, case.id, k, "started")
                    try:
                        record = measure(case, sub)
                    except KeyboardInterrupt:
                        _event(sub, case.id, k, "interrupted")
                        raise
            mine = None
            if record:
                mine = {
                    "status": record["status"],
                    "throughput_img_s": record["throughput_img_s"],
                    "left_group": sub.ddp_abandoned,
                    "device_lost": sub.device_lost,
                }
            summaries = groups.gather(mine)[:k]
            lost = [(r, m["device_lost"]) for r, m in enumerate(summaries) if m and m.get("device_lost")]
            if lost:
                # A member's GPU is unusable in its process: every rank stops, so the group restarts in fresh ones.
                if record is not None and rank not in have:
                    folder.save_record(rank, combine(record, summaries, baselines.get(case.id)))
                from harness.measure.device import DeviceLostError

                raise DeviceLostError(f"{key}: rank {lost[0][0]}: {lost[0][1]}")
            if k in subgroups and any(m and m.get("left_group") for m in summaries):
                # A member left the group after a failure among its collectives: every rank builds a new one.
                subgroups[k] = groups.new_group(list(range(k)))
            if k == 1 and summaries[0] and summaries[0]["status"] == Status.OK:
                baselines[case.id] = summaries[0]["throughput_img_s"]
            if record is not None and rank not in have:
                folder.save_record(rank, combine(record, summaries, baselines.get(case.id)))
                written += 1
    return written
