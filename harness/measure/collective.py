"""Timing a case that several ranks train together (DDP): the ranks agree on every count.

Each DDP step all-reduces the gradients, so every rank of the group must run exactly as many steps as the
others, or one of them waits forever for a partner that stopped. The single-process warm-up and timed window
decide their lengths from each rank's own clock; here the ranks vote after every warm-up step (it ends when all
of them are stable, or when any reaches its bound or its deadline), agree on one timed step count (the largest
any rank asks for), and start each timed window together behind a barrier.

``HARNESS_DDP_CHECKSUM=1`` makes every rank write a digest of its parameters (and of its inputs) after the timed
window to ``<run>/checksums-rank<N>.jsonl``: with different inputs per rank, equal parameter digests show that
the gradients were really averaged across the group. It is a debugging and testing aid; it costs one pass over
the parameters after the measurement.
"""

from __future__ import annotations

import hashlib
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from harness.measure.timing import WarmupResult, settled
from harness.store.rundir import append_record, utc_now

CHECKSUM_ENV = "HARNESS_DDP_CHECKSUM"


def _votes(group, device: str, *flags: bool) -> list[int]:
    """How many ranks of ``group`` raised each flag."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return [int(v) for v in t.tolist()]


def agreed_warm_up(
    step: Callable[[], object],
    sync: Callable[[], None],
    group,
    device: str,
    *,
    min_iters: int = 5,
    max_iters: int = 200,
    max_seconds: float = 30.0,
    window: int = 5,
    tolerance: float = 0.02,
    deadline: float | None = None,
) -> WarmupResult:
    """Warm up until every rank's step time has stopped falling; all ranks run the same number of steps.

    The test of stability is the single-process one (the median of the last ``window`` step times is no more
    than ``tolerance`` below the median of the ``window`` before), taken by each rank on its own times; the
    phase ends when all ranks pass it, or as soon as one rank reaches ``max_iters``/``max_seconds``. A rank
    past the case's deadline makes every rank raise TimeoutError together.
    """
    import torch.distributed as dist

    size = dist.get_world_size(group)
    times: list[float] = []
    sync()
    start = budget_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        step()
        sync()
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1000.0)
        n = len(times)
        if n == 1:
            budget_start = t1  # the same budget rule as warm_up: seconds counted after the first step
        stable = settled(times, min_iters, window, tolerance)
        bound = n >= max_iters or t1 - budget_start >= max_seconds
        late = deadline is not None and t1 > deadline
        n_stable, n_bound, n_late = _votes(group, device, stable, bound, late)
        if n_late:
            raise TimeoutError("the case's timeout passed during warm-up (on at least one rank)")
        if n_stable == size:
            reason = "stable"
            break
        if n_bound:
            reason = "max_iters" if n >= max_iters else "max_seconds"
            break
    return WarmupResult(len(times), time.perf_counter() - start, reason, times)


def agreed_timed_iters(warm: WarmupResult, measure, window: int, group, device: str) -> int:
    """The timed step count every rank runs: the most any rank needs for ``min_iters`` and ``min_seconds``.

    A rank's need is estimated from the median of its last ``window`` warm-up steps (ms); the count is capped
    by ``max_iters``.
    """
    import torch
    import torch.distributed as dist

    recent = statistics.median(warm.step_ms[-window:]) if warm.step_ms else 1.0
    need = max(measure.min_iters, math.ceil(measure.min_seconds * 1000.0 / max(recent, 1e-6)))
    need = min(need, measure.max_iters)
    t = torch.tensor([need], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return int(t.item())


def synchronised_start(group) -> None:
    """Wait for every rank of ``group``, so the timed windows of all ranks begin together."""
    import torch.distributed as dist

    dist.barrier(group=group)


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def checksum_requested() -> bool:
    """True when ``HARNESS_DDP_CHECKSUM`` asks for parameter digests after DDP timed windows."""
    return os.environ.get(CHECKSUM_ENV, "") not in ("", "0")


def write_checksum(run_dir: Path, case, ctx, model, inputs, steps: int) -> None:
    """Append this rank's parameter and input digests for ``case`` to ``checksums-rank<N>.jsonl``."""
    append_record(
        Path(run_dir) / f"checksums-rank{ctx.rank}.jsonl",
        {
            "case_id": case.id,
            "rank": ctx.rank,
            "world_size": ctx.world_size,
            "steps": steps,
            "params_sha256": _digest(model.parameters()),
            "inputs_sha256": _digest([inputs]),
            "at": utc_now(),
        },
    )
