"""Timing a case that several ranks train together (DDP): the ranks agree on every count.

Each DDP step all-reduces the gradients, so every rank of the group must run exactly as many steps as the
others, or one of them waits forever for a partner that stopped. The single-process warm-up and timed window
decide their lengths from each rank's own clock; here the ranks vote after every warm-up step (it ends when all
of them are stable, or when any reaches its bound or its deadline), agree on one timed step count (the largest
any rank asks for), and start each timed window together behind a barrier.

A rank that fails must not leave its peers waiting in a collective. What a rank can fail at alone (inputs,
numerics, a first training step of the bare model, where an out-of-memory shows) runs before any collective
and ends in a vote (``agreement``); after it, a failing rank posts its status on a ``FailureBoard`` in the
launcher's store, and its peers read the post when their own collective breaks (or, on a GPU, while they wait for
the step: ``watched_sync``). Deadlines are voted on after every step. Every member then records the failed
rank's outcome (``oom``, ``error``, ``timeout``) and the run goes on with a new group.

``write_checksum`` appends a digest of a rank's parameters (and of its inputs) to the rank's checksums file:
called on every rank just after a DDP timed window, with different inputs per rank, equal parameter digests show
that the gradients were really averaged across the group. It is a debugging and testing aid that a phase hook
calls (``harness.measure.phases.PHASE_HOOKS``; the tests install one); it costs one pass over the parameters.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from harness.measure.timing import WarmupResult, settled
from harness.store.rundir import RunFolder, utc_now

#: How often a rank waiting for its GPU looks at the failure board (s).
BOARD_POLL_S = 0.05


class PeerFailure(RuntimeError):
    """Another rank of this DDP group failed the case; this rank stops too and records that rank's outcome."""

    def __init__(self, rank: int, status: str, message: str) -> None:
        super().__init__(f"rank {rank} failed: {message}")
        self.rank = rank
        self.status = status
        self.message = f"rank {rank} failed: {message}"


def failure_status(exc: BaseException) -> str:
    """The record status a failure gives its case: timeout, oom or error."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc)
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text:
        return "oom"
    return "error"


class FailureBoard:
    """Where the ranks of one DDP unit post a failure, out of band, in the launcher's key-value store.

    A rank that fails posts its status and message under its own key; a peer that finds a collective broken
    (or, on CUDA, sees a post while it waits for its GPU) reads the post and records that rank's outcome, so
    the case ends ``oom``/``error``/``timeout`` on every rank instead of hanging until the process group's
    timeout and ending ``crashed``. Keys carry the run, the restart and the unit, so a retry starts clean.
    """

    def __init__(self, store, prefix: str, rank: int, members: list[int]) -> None:
        self.store = store
        self.prefix = prefix
        self.rank = rank
        self.members = list(members)
        self.abandoned: bool | None = None  # None: still a member; True: left, its work aborted; False: not aborted

    def _key(self, rank: int) -> str:
        return f"{self.prefix}/rank{rank}"

    def publish(self, status: str, exc: BaseException | str) -> None:
        import json

        message = exc if isinstance(exc, str) else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if not isinstance(exc, str):
            message = f"{type(exc).__name__}: {message}"
        body = json.dumps({"rank": self.rank, "status": status, "message": message[:500]})
        try:
            self.store.set(self._key(self.rank), body)
        except Exception:  # the store is gone too: peers fall back to the process group's timeout
            pass

    def failure(self, exclude: int | None = None, wait_s: float = 0.0) -> dict | None:
        """The first post of a member other than ``exclude`` (waiting up to ``wait_s`` for one), or None."""
        import json

        deadline = time.monotonic() + wait_s
        while True:
            for rank in self.members:
                if rank == exclude:
                    continue
                try:
                    if self.store.check([self._key(rank)]):
                        return json.loads(self.store.get(self._key(rank)))
                except Exception:
                    return None
            if time.monotonic() >= deadline:
                return None
            time.sleep(BOARD_POLL_S)

    def abandon(self, group) -> None:
        """Leave ``group`` after a failure (see ``abandon``), noting whether its operations could be aborted."""
        self.abandoned = abandon(group)

    def stop_for_peer(self, group) -> None:
        """Raise ``PeerFailure`` (after leaving ``group``) when another member has posted a failure."""
        post = self.failure(exclude=self.rank)
        if post is not None:
            self.abandon(group)
            raise PeerFailure(post["rank"], post["status"], post["message"])

    def wait(self, work, group) -> None:
        """Wait for an asynchronous collective of ``group``, looking at the board every ``BOARD_POLL_S``: a peer
        that failed will never contribute, so on its post this rank leaves the group and raises ``PeerFailure``."""
        next_look = time.monotonic() + BOARD_POLL_S
        while not work.is_completed():
            if time.monotonic() >= next_look:
                self.stop_for_peer(group)
                next_look = time.monotonic() + BOARD_POLL_S
            time.sleep(0.0002)
        work.wait()


def abandon(group) -> bool:
    """Abort this rank's side of ``group`` after a failure, so no operation of it stays queued on the device
    (nccl aborts its communicator, which also ends kernels waiting for a peer); the run builds a new group for
    the next unit. Returns False when this torch cannot abort a group (before 2.5): on a GPU the worker must then
    stop, since a kernel may still wait for the failed peer."""
    if group is None:
        return True
    try:
        from torch.distributed import distributed_c10d as c10d

        abort = getattr(c10d, "_abort_process_group", None)
        if abort is None:
            return False
        abort(group)
        return True
    except Exception:
        return False


@contextmanager
def agreement(group, device, board: FailureBoard | None, rank: int):
    """Run a block that a rank can fail alone (it holds no collective), then agree on the outcome.

    Every rank votes whether its block failed. A rank whose block raised posts why on the board first, then
    re-raises its own exception; its peers raise ``PeerFailure`` with the failed rank's post. No rank enters the
    case's collectives while a peer has already stopped.
    """
    error: BaseException | None = None
    try:
        yield
    except Exception as exc:
        error = exc
        exc.agreed = True  # every rank learns of it at the vote: the process group stays usable
        if board is not None:
            board.publish(failure_status(exc), exc)
    failed = _votes(group, device, error is not None)[0]
    if error is not None:
        raise error
    if failed:
        post = board.failure(exclude=rank, wait_s=10.0) if board is not None else None
        if post is None:
            post = {"rank": -1, "status": "error", "message": "another rank failed before the timed steps"}
        exc = PeerFailure(post["rank"], post["status"], post["message"])
        exc.agreed = True
        raise exc


def watched_sync(device, board: FailureBoard | None, rank: int, group):
    """The device sync of a DDP step that does not wait forever for a failed peer.

    On a GPU a step's collectives run on the device, so a rank whose peer failed mid-step waits in its sync. This
    sync polls the step's completion and, every ``BOARD_POLL_S``, the failure board; on a peer's post it aborts
    its side of the group (which ends the waiting kernels) and raises ``PeerFailure``. On the CPU the collectives
    block in the step itself and fail at the group's timeout; the peer's post then names the cause.
    """
    from harness.measure import device as devices

    dev = devices.get(device) if isinstance(device, str) else device
    if not dev.is_cuda or board is None:
        return dev.sync

    class StepDone:  # the step's queued work, as an asynchronous collective's handle
        def __init__(self) -> None:
            self.event = dev.api.event()
            self.event.record()

        def is_completed(self) -> bool:
            return bool(self.event.query())

        def wait(self) -> None:
            dev.sync()

    def sync() -> None:
        board.wait(StepDone(), group)

    return sync


def _place(device):
    from harness.measure import device as devices

    return (devices.get(device) if isinstance(device, str) else device).torch_device


def _all_reduce(t, op, group, board: FailureBoard | None):
    """All-reduce ``t`` in place; with a ``board``, watched: a peer's posted failure ends the wait."""
    import torch.distributed as dist

    if board is None:
        dist.all_reduce(t, op=op, group=group)
    else:
        board.wait(dist.all_reduce(t, op=op, group=group, async_op=True), group)
    return t


def _votes(group, device, *flags: bool, board: FailureBoard | None = None) -> list[int]:
    """How many ranks of ``group`` raised each flag (``device``: a ``Device`` or a device name)."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=_place(device))
    _all_reduce(t, dist.ReduceOp.SUM, group, board)
    return [int(v) for v in t.tolist()]


def agreed_warm_up(
    step: Callable[[], object],
    sync: Callable[[], None],
    group,
    device,
    limits,
    *,
    deadline: float | None = None,
    board: FailureBoard | None = None,
) -> WarmupResult:
    """Warm up until every rank's step time has stopped falling; all ranks run the same number of steps.

    The test of stability is the single-process one (the median of the last ``window`` step times is no more
    than ``tolerance`` below the median of the ``window`` before), taken by each rank on its own times; the
    phase ends when all ranks pass it, or as soon as one rank reaches ``max_iters``/``max_seconds``. A rank
    past the case's deadline makes every rank raise TimeoutError together. ``limits`` are the case's warm-up
    settings (``harness.suite.case.Warmup``: min_iters, max_iters, max_seconds, window, tolerance).
    """
    import torch.distributed as dist

    min_iters, max_iters, max_seconds = limits.min_iters, limits.max_iters, limits.max_seconds
    window, tolerance = limits.window, limits.tolerance

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
        n_stable, n_bound, n_late = _votes(group, device, stable, bound, late, board=board)
        if n_late:
            raise TimeoutError("the case's timeout passed during warm-up (on at least one rank)")
        if n_stable == size:
            reason = "stable"
            break
        if n_bound:
            reason = "max_iters" if n >= max_iters else "max_seconds"
            break
    return WarmupResult(len(times), time.perf_counter() - start, reason, times)


def agreed_timed_iters(warm: WarmupResult, measure, window: int, group, device, board=None) -> int:
    """The timed step count every rank runs: the most any rank needs for ``min_iters`` and ``min_seconds``.

    A rank's need is estimated from the median of its last ``window`` warm-up steps (ms); the count is capped
    by ``max_iters``.
    """
    import torch
    import torch.distributed as dist

    recent = statistics.median(warm.step_ms[-window:]) if warm.step_ms else 1.0
    need = max(measure.min_iters, math.ceil(measure.min_seconds * 1000.0 / max(recent, 1e-6)))
    need = min(need, measure.max_iters)
    t = torch.tensor([need], dtype=torch.int64, device=_place(device))
    _all_reduce(t, dist.ReduceOp.MAX, group, board)
    return int(t.item())


def deadline_vote(group, device, deadline: float | None, board: FailureBoard | None = None):
    """An ``after_step`` for ``time_steps``: after every timed step the ranks vote on the case's deadline, so a
    rank past it stops together with its peers instead of leaving them in the next step's all-reduce."""

    def after_step(n: int, now: float) -> None:
        late = deadline is not None and now > deadline
        if _votes(group, device, late, board=board)[0]:
            raise TimeoutError("the case's timeout passed during the timed window (on at least one rank)")

    return after_step


def synchronised_start(group, device="cpu", board: FailureBoard | None = None) -> None:
    """Wait for every rank of ``group``, so the timed windows of all ranks begin together (a watched all-reduce:
    the same meeting as a barrier, which a peer's posted failure can end)."""
    import torch
    import torch.distributed as dist

    _all_reduce(torch.zeros(1, device=_place(device)), dist.ReduceOp.SUM, group, board)


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def write_checksum(run_dir: Path, case, ctx, model, inputs, steps: int) -> None:
    """Append this rank's parameter and input digests for ``case`` to its checksums file in the run folder."""
    RunFolder(run_dir).append_checksum(
        ctx.rank,
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
