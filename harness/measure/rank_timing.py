"""How a case's steps are timed: by one rank alone, or by the ranks of a DDP group in lockstep.

The phases of a case (``harness.measure.phases``) ask the case's timing strategy, chosen once per case by
``timing_for``, everything in which the two differ:

- ``input_seed``: a DDP rank trains on its own data (seed + rank), as it would on its shard of a data set;
- ``alone()``: the block before the first timed step that a rank can fail at alone (inputs, numerics, the trial
  step); DDP ranks vote on its outcome (``collective.agreement``) before any of them enters a collective;
- ``trial``: DDP only, a first training step of the bare model, where an out-of-memory shows before any collective;
- ``runnable``: the model to step (DDP: wrapped in DistributedDataParallel over the case's group);
- ``sync``: the device sync after each step (DDP on a GPU: one that watches the failure board for a failed peer);
- ``warm_up`` and ``timed``: alone, each rank decides the lengths from its own clock; in DDP every rank must run
  as many steps as the others (each step all-reduces the gradients), so the ranks vote after every warm-up step,
  agree on one timed step count, start each timed window together, and vote on the case's deadline after every
  timed step (see ``harness.measure.collective``).

Stalls (``timing.stalls``): a rank alone replaces its stalled steps, its window running on within its bounds until
it holds ``min_iters`` steps that are not stalls (``timing.time_steps``). DDP windows run the step count the ranks
agreed on and cannot extend (one rank running on would leave its peers in an all-reduce), so a DDP record counts
and marks its stalls (``stalled_steps``, ``noisy``) without replacing them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from harness.measure import collective
from harness.measure.phases import announce
from harness.measure.timing import TimedSamples, WarmupResult, steady_steps, time_steps, warm_up


class AloneTiming:
    """One rank times the case by itself: its own warm-up, ``min_iters``/``min_seconds`` windows, its device sync."""

    ddp = False

    def __init__(self, dev) -> None:
        self.dev = dev

    def input_seed(self, case, rank: int) -> int:
        """The seed of the case's synthetic inputs on this rank."""
        return case.seed

    def alone(self) -> AbstractContextManager:
        """The block before the first timed step that a rank can fail at alone (nothing to agree on here)."""
        return nullcontext()

    def trial(self, run) -> None:
        """Nothing: a rank alone finds its out-of-memory in the warm-up, where it costs no peer anything."""

    def runnable(self, model):
        """The model that the case's scenario steps."""
        return model

    @property
    def sync(self) -> Callable[[], None]:
        """The sync after each step, before the clock is read."""
        return self.dev.sync

    def warm_up(self, step, sync, warmup, deadline: float | None, carried: bool = False) -> WarmupResult:
        """Warm up until the step time stops falling (``timing.warm_up``, with the case's ``warmup`` settings);
        ``carried``: the case carries the warm state of the case before it (see ``timing.warm_up``)."""
        warm = warm_up(step, sync, deadline=deadline, carried=carried, **_warmup_limits(warmup))
        # On the CPU the wall clock times every step, so the steady end of the warm-up opens the timed window; on
        # CUDA the window's steps carry device events, which the warm-up's do not.
        warm.steady = 0 if self.dev.is_cuda else steady_steps(warm, warmup.window)
        return warm

    def timed(self, step, sync, warm: WarmupResult, case, deadline: float | None, events=None) -> list[TimedSamples]:
        """Run the case's ``measure.repeats`` timed windows; returns each window's samples (device ms, wall ms) and
        stalls."""
        limits = self._window_limits(warm, case, deadline)
        windows = []
        for i in range(max(1, case.measure.repeats)):
            self._before_window()
            prior = warm.steady_ms() if i == 0 and events is None else None
            windows.append(time_steps(step, sync, events=events, deadline=deadline, prior_ms=prior, **limits))
        return windows

    def _window_limits(self, warm: WarmupResult, case, deadline: float | None) -> dict[str, Any]:
        m = case.measure
        return {"min_iters": m.min_iters, "min_seconds": m.min_seconds, "max_iters": m.max_iters, "after_step": None}

    def _before_window(self) -> None:
        pass


class DdpTiming(AloneTiming):
    """The ranks of a DDP group time the case in lockstep, every count agreed, every wait watched by the board."""

    ddp = True

    def __init__(self, ctx) -> None:
        super().__init__(ctx.dev)
        self.group = ctx.ddp_group
        self.board = ctx.ddp_board
        self.rank = ctx.rank

    def input_seed(self, case, rank: int) -> int:
        return case.seed + rank

    def alone(self) -> AbstractContextManager:
        """A rank that fails in the block tells the others before any of them waits for it in a collective."""
        return collective.agreement(self.group, self.dev, self.board, self.rank)

    def trial(self, run) -> None:
        """One training step of the bare model (no collective), where an out-of-memory shows on this rank alone;
        its gradients are dropped, so the timed steps start from the same state."""
        from harness.measure import scenarios

        announce("trial", run)
        case = run.case
        scenarios.make_scenario("train", run.model, run.inputs, run.targets, self.dev, case.precision).step()
        self.dev.sync()
        for p in run.model.parameters():
            p.grad = None

    def runnable(self, model):
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=self.dev.ddp_device_ids(), process_group=self.group)

    @property
    def sync(self) -> Callable[[], None]:
        return collective.watched_sync(self.dev, self.board, self.rank, self.group)

    def warm_up(self, step, sync, warmup, deadline: float | None, carried: bool = False) -> WarmupResult:
        """Warm up until every rank is stable (``collective.agreed_warm_up``); all ranks run the same steps. A DDP
        case carries no warm state: its ranks agree on the two-window test alone."""
        return collective.agreed_warm_up(step, sync, self.group, self.dev, warmup, deadline=deadline, board=self.board)

    def _window_limits(self, warm: WarmupResult, case, deadline: float | None) -> dict[str, Any]:
        # The one step count every rank runs (min_seconds is already in it): max_iters = min_iters, so the window
        # never extends to replace stalls.
        agreed = collective.agreed_timed_iters(
            warm, case.measure, case.warmup.window, self.group, self.dev, board=self.board
        )
        vote = collective.deadline_vote(self.group, self.dev, deadline, board=self.board)
        return {"min_iters": agreed, "min_seconds": 0.0, "max_iters": agreed, "after_step": vote}

    def _before_window(self) -> None:
        collective.synchronised_start(self.group, self.dev, board=self.board)


def _warmup_limits(warmup) -> dict[str, Any]:
    w = warmup
    return {
        "min_iters": w.min_iters,
        "max_iters": w.max_iters,
        "max_seconds": w.max_seconds,
        "window": w.window,
        "tolerance": w.tolerance,
    }


def timing_for(case, ctx) -> AloneTiming:
    """The timing strategy of ``case`` in ``ctx``: DDP when the case trains across the context's process group."""
    if ctx.ddp_group is not None and case.mode == "train":
        return DdpTiming(ctx)
    return AloneTiming(ctx.dev)
