"""Measuring one case, start to finish, into a record. Failures are data: this function does not raise for them.

Order of work for a case: check the device can run it (else ``skipped``); take the model from the cache,
restored to its initial weights; then the recipe of phases (``harness.measure.phases``): inputs and numerics
against fp32 for AMP/TF32 cases, (DDP) a trial step, warm-up until stable, the timed window with the trackers
(memory, telemetry, contention) around it, the record's statistics and noisy mark, ops (cached, on the meta
device), MFU, and the profiler and accuracy for the cases that ask. Single-rank and DDP timing differ only in the
case's timing strategy (``harness.measure.rank_timing``). OOM, an exception, or the case's timeout become a record
with that status.
"""

from __future__ import annotations

import gc
import os
import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.store.record import Record
from harness.store.rundir import utc_now


@dataclass
class CaseContext:
    """What every case of a run shares: identity, the rank's device, the model cache and run-level peaks."""

    run_id: str
    suite: str
    run_dir: Path
    device: str
    rank: int = 0
    world_size: int = 1
    peak: dict | None = None
    telemetry: bool = True
    telemetry_interval_ms: int = 50
    model_cache: Any = None
    device_name: str | None = None
    extra_profile: Any = None  # callable(case) -> bool, from `harness run --profile GLOB`
    accuracy: Any = None  # the suite's accuracy block (data, limit) or None
    ddp_group: Any = None  # a process group: all its ranks train the case together
    ddp_board: Any = None  # collective.FailureBoard of the DDP unit: how a rank's failure reaches its peers
    dev: Any = None  # the device seam (harness.measure.device.Device) of ``device``; made from it when not given

    #: Set by a case whose failure left the device unusable in this process (a sticky CUDA error, or a GPU group that
    #: could not be aborted): why. The worker records the case, then stops so the rest run in a fresh process.
    device_lost: str | None = field(default=None, init=False)
    #: Set by a DDP case whose rank left its process group after a failure: the DDP loop builds a new group.
    ddp_abandoned: bool = field(default=False, init=False)
    #: The ``warm_group`` of the last case, when it was measured and its warm-up ended stable: the next case of that
    #: group carries its warm state (``timing.warm_up``'s ``carried``). None after any other outcome.
    warm: tuple | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.dev is None:
            from harness.measure import device as devices

            self.dev = devices.get(self.device)


def warm_group(case) -> tuple | None:
    """The cases that carry their warm state to the next of the same group: one model (built the same way) in one
    memory format on one device. None for a case that carries nothing (compiled: its graphs are reset after it)."""
    if case.compile:
        return None
    return (case.model, case.impl, case.weights, case.channels_last, case.device, case.seed)


class ModelCache:
    """Keeps the last built model, so consecutive cases of one model skip the build, without a copy of its weights.

    Each case gets the model in the same initial state, so it measures what it would measure alone while
    wide_resnet101_2's 2 s build happens once. When a case may have changed the state (any parameter or buffer
    written since the last restore: a training step, a BatchNorm update; seen in the tensors' version counters),
    the next case restores it in place: random weights are re-initialised from the seed
    (``harness.zoo.resnet.reinitialise``, bit-identical to a fresh build; on an accelerator, whose generator draws
    other numbers, a host build is copied in and let go) and get back their calibrated BatchNorm statistics (the
    one thing kept aside: a few hundred KB even for wide_resnet101_2); loaded weights are read again from their
    file. A model the zoo cannot re-initialise (``impl: torchvision``) is built again.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.model = None
        self.norm_stats: dict | None = None  # calibrated BatchNorm buffers of a random-weights model
        self.versions: list[int] | None = None  # the tensors' version counters just after the last restore
        #: A training case stepped the model since the last restore (its writes may bypass the version counters).
        self.trained = False
        #: (input, fp32 output) pairs of the model in its initial state, for the numerics of AMP and TF32 cases
        self.references: list = []

    def get(self, name: str, impl: str, weights: str | None, device, seed: int = 0, resolution: int = 224):
        """The model on ``device`` (a ``Device`` or a device name) in its initial state.

        A model without loaded weights has its BatchNorm statistics calibrated once, when it is built
        (``numerics.calibrate_batchnorm`` at ``resolution``), and that state is what every case starts from: its
        eval-mode activations stay normalised, so amp_fp16 outputs are finite and numerics compare real values.
        """
        from harness.measure import device as devices

        dev = devices.get(device) if isinstance(device, str) else device
        # The calibration depends on the resolution, so a random-weights model is keyed by it too.
        key = (name, impl, weights, dev.name, seed, None if weights else resolution)
        if key != self.key or not self._restore(name, impl, weights, seed):
            self._build(key, name, impl, weights, dev, seed, resolution)
        self.versions = self._versions()
        return self.model

    def _build(self, key, name, impl, weights, dev, seed, resolution) -> None:
        import torch

        from harness.measure.memory import trim_heap
        from harness.measure.numerics import calibrate_batchnorm
        from harness.zoo import build_model

        self.clear()
        gc.collect()
        trim_heap()
        dev.empty_cache()
        torch.manual_seed(seed)
        model = build_model(name, weights=weights, impl=impl).to(dev.torch_device)
        if weights is None:
            calibrate_batchnorm(model, dev, resolution, seed=seed)
            self.norm_stats = _norm_stats(model, copy=True)
        self.model, self.key = model, key

    def _restore(self, name, impl, weights, seed) -> bool:
        """Bring the cached model back to its initial state in place; False when only a new build can."""
        model = self.model
        for p in model.parameters():
            p.grad = None
        if not self.trained and self._versions() == self.versions:
            return True  # nothing written since the last restore
        self.trained = False
        if weights:
            from harness.zoo.weights import load_weights

            load_weights(model, name, weights)
            return True
        from harness.zoo.resnet import ResNet, reinitialise

        if impl != "harness" or not isinstance(model, ResNet):
            return False
        import torch

        if next(model.parameters()).device.type != "cpu":
            # On an accelerator the fills would draw from its own generator: build on the host as the cache did,
            # copy in place, and let the host build go (for the time of the copy, not kept).
            from harness.zoo import build_model

            torch.manual_seed(seed)
            model.load_state_dict(build_model(name, impl=impl).state_dict())
        else:
            # The fills draw in memory order: the weights take the build's layout first (the case sets its own).
            model.to(memory_format=torch.contiguous_format)
            reinitialise(model, seed)
        with torch.no_grad():
            for k, t in _norm_stats(model).items():
                t.copy_(self.norm_stats[k])
        return True

    def _versions(self) -> list[int]:
        m = self.model
        return [t._version for t in (*m.parameters(), *m.buffers())]

    def clear(self) -> None:
        self.key, self.model, self.norm_stats, self.versions, self.references = None, None, None, None, []
        self.trained = False


def _norm_stats(model, copy: bool = False) -> dict:
    """The running statistics of every BatchNorm layer of ``model`` (by state_dict key), copied to the host or live."""
    import torch

    out = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            for attr in ("running_mean", "running_var", "num_batches_tracked"):
                t = getattr(m, attr, None)
                if t is not None:
                    out[f"{name}.{attr}"] = t.detach().to("cpu", copy=True) if copy else t
    return out


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _short(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:500]


def base_record(case, ctx: CaseContext) -> Record:
    """A record holding the case's identity, before anything is measured."""
    return Record(
        run_id=ctx.run_id,
        case_id=case.id,
        suite=ctx.suite,
        model=case.model,
        weights=case.weights,
        mode=case.mode,
        batch_size=case.batch_size,
        requested_batch_size=case.batch_size,
        resolution=case.resolution,
        precision=case.precision,
        channels_last=case.channels_last,
        compile=case.compile,
        device=ctx.device,
        rank=ctx.rank,
        world_size=ctx.world_size,
        tags=list(case.tags),
        started_at=utc_now(),
    )


def measure_case(case, ctx: CaseContext) -> dict[str, Any]:
    """Measure ``case`` on ``ctx.device`` and return its record as a dict (every field present)."""
    import torch

    t0 = time.perf_counter()
    rec = base_record(case, ctx)
    rec.num_threads = torch.get_num_threads()
    reason = ctx.dev.unsupported_reason(case.precision)
    if reason:
        ctx.warm = None
        rec.status, rec.message = "skipped", reason
        rec.duration_s = 0.0
        return rec.to_dict()
    batch = case.batch_size
    while True:
        try:
            _measure(case, ctx, rec, batch)
            break
        except TimeoutError as exc:
            rec.status, rec.message = "timeout", f"{exc} (timeout_s={case.timeout_s})"
            break
        except Exception as exc:  # a failing case is data; the sweep goes on
            peer = _peer_failure(exc, ctx)
            if peer is not None:
                # Another rank of the DDP group failed: this rank records that rank's outcome, not a side effect.
                rec.status, rec.message = peer
                _note_abandoned(ctx)
                break
            if ctx.ddp_board is not None and not getattr(exc, "agreed", False):
                # Failed among the group's collectives: tell the peers, and leave the group (a new one is built).
                ctx.ddp_board.publish(_outcome(exc, case), exc)
                ctx.ddp_board.abandon(ctx.ddp_group)
            _note_abandoned(ctx)
            if ctx.dev.is_sticky_error(exc):
                rec.status = "error"
                rec.message = (
                    f"{_short(exc)} (a sticky CUDA error: the device is unusable in this process; the remaining "
                    "cases run in a fresh one)"
                )
                ctx.device_lost = rec.message
                break
            if _is_oom(exc):
                _release(ctx)
                if case.oom_reduce and batch > 1 and ctx.ddp_group is None:
                    batch //= 2
                    continue
                rec.status = "oom"
                rec.message = _short(exc) + (f" (reduced down to batch {batch})" if batch != case.batch_size else "")
            else:
                rec.status, rec.message = "error", _short(exc)
                if os.environ.get("HARNESS_DEBUG"):
                    traceback.print_exc()
            break
    rec.batch_size = batch
    rec.duration_s = round(time.perf_counter() - t0, 3)
    stable = rec.status == "ok" and rec.warmup_reason in ("stable", "stable_carried")
    ctx.warm = warm_group(case) if stable and ctx.ddp_group is None else None
    return rec.to_dict()


def _outcome(exc: BaseException, case) -> str:
    """The status a failure gives its case: timeout, oom or error."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "oom" if _is_oom(exc) else "error"


def _note_abandoned(ctx: CaseContext) -> None:
    """Tell the DDP loop that this rank left its group (it builds a new one), and stop the worker when a GPU group
    could not be aborted (a kernel may still wait for the failed peer)."""
    board = ctx.ddp_board
    if board is None or board.abandoned is None:
        return
    ctx.ddp_abandoned = True
    if board.abandoned is False and ctx.dev.is_cuda:
        ctx.device_lost = (
            "this torch cannot abort a process group (torch 2.5+ can), so after a peer's failure a collective may "
            "still wait on the GPU; the remaining cases run in a fresh process"
        )


def _is_communication_error(exc: BaseException) -> bool:
    """Whether ``exc`` came out of a collective (a peer gone, a timeout) rather than this rank's own work."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "connection closed", "connection reset", "timed out waiting"))


def _peer_failure(exc: BaseException, ctx: CaseContext) -> tuple[str, str] | None:
    """(status, message) when ``exc`` on this rank is the echo of a failure on another rank of its DDP group."""
    from harness.measure.collective import PeerFailure

    if isinstance(exc, PeerFailure):
        return exc.status, exc.message
    if ctx.ddp_board is None:
        return None
    if not _is_communication_error(exc):
        return None  # this rank's own failure
    # A collective that broke because a peer stopped: that peer says why on the board (give it a moment to).
    found = ctx.ddp_board.failure(exclude=ctx.rank, wait_s=5.0)
    return None if found is None else (found["status"], f"rank {found['rank']} failed: {found['message']}")


def _release(ctx: CaseContext) -> None:
    ctx.warm = None
    if ctx.model_cache is not None:
        ctx.model_cache.clear()
    gc.collect()
    ctx.dev.empty_cache()


def _measure(case, ctx: CaseContext, rec: Record, batch: int) -> None:
    """One attempt at ``case`` with ``batch`` images per step: the model from the cache, then the recipe."""
    import torch

    from harness.measure import phases, trackers
    from harness.measure.rank_timing import timing_for

    deadline = time.perf_counter() + case.timeout_s if case.timeout_s else None
    if ctx.device_name:
        rec.device_name = ctx.device_name
    torch.manual_seed(case.seed)
    cache = ctx.model_cache or ModelCache()
    # The cache frees the previous model before the memory marks are reset, so its memory is not this case's.
    model = cache.get(case.model, case.impl, case.weights, ctx.dev, seed=case.seed, resolution=case.resolution)
    run = phases.CaseRun(case, ctx, rec, batch, model, deadline, timing=timing_for(case, ctx))
    run.carried = ctx.warm is not None and ctx.warm == warm_group(case) and not run.timing.ddp
    run.trackers = trackers.build(run)
    try:
        _run_phases(run)
    finally:
        drop_training_state(run)
        if case.compile:
            ctx.dev.reset_compile()  # the next case compiles for its own shapes, not on top of this one's graphs


def drop_training_state(run) -> None:
    """Free what a training case leaves behind as soon as it ends: the optimizer's state (momentum buffers, one
    more copy of the weights), the gradients, and the step that holds them (a DDP wrapper's buckets too). The
    next case starts without them, and the memory is not held until a garbage collection finds the case."""
    optimizer = getattr(run.scenario, "optimizer", None)
    if optimizer is not None and run.ctx.model_cache is not None:
        run.ctx.model_cache.trained = True
    if optimizer is not None:
        optimizer.state.clear()
        optimizer.param_groups.clear()
    run.scenario = run.step = None
    for p in run.model.parameters():
        p.grad = None


def _run_phases(run) -> None:
    """The recipe of a case (``harness.measure.phases``), under the case's precision flags.

    What a rank can fail at alone comes first, inside the strategy's ``alone`` block (DDP ranks agree on its
    outcome before any collective); the ``case`` trackers (memory) start in it, after the numerics reference passes,
    and stop after the timed window.
    """
    from harness.measure import phases, trackers

    with run.dev.flags(run.case.precision) as flags:
        run.rec.tf32_matmul, run.rec.cudnn_benchmark = flags["tf32_matmul"], flags["cudnn_benchmark"]
        with ExitStack() as case_window:
            with run.timing.alone():
                phases.prepare(run)
                case_window.enter_context(trackers.window(run.trackers, "case"))
                run.timing.trial(run)
            phases.build(run)
            phases.warm_up(run)
            phases.timed(run)
        phases.record(run)
        phases.ops(run)
        phases.mfu(run)
        if phases.wants_profile(run):
            phases.profile(run)
        if phases.wants_accuracy(run):
            phases.accuracy(run)
