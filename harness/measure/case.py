"""Measuring one case, start to finish, into a record. Failures are data: this function does not raise for them.

Order of work for a case: check the device can run it (else ``skipped``); take the model from the cache,
restored to its initial weights; count ops (cached, on the meta device); numerics against fp32 for AMP/TF32
cases; warm up until stable; the timed window with memory tracking and telemetry beside it; the profiler for
the cases a suite names. OOM, an exception, or the case's timeout become a record with that status.
"""

from __future__ import annotations

import gc
import math
import os
import time
import traceback
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
    notes: dict = field(default_factory=dict)
    dev: Any = None  # the device seam (harness.measure.device.Device) of ``device``; made from it when not given

    def __post_init__(self) -> None:
        if self.dev is None:
            from harness.measure import device as devices

            self.dev = devices.get(self.device)


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc's malloc_trim), so the next case's peak resident memory is not
    the previous model's: glibc keeps freed blocks mapped, and resnet18 after wide_resnet101_2 would read 1.1 GiB."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ModelCache:
    """Keeps the last built model and its initial weights, so consecutive cases of one model skip the build.

    Each case gets the model restored to the same initial state (``load_state_dict`` from a copy kept in host
    memory), so a case measures what it would measure alone while wide_resnet101_2's 2 s build happens once.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.model = None
        self.initial: dict | None = None

    def get(self, name: str, impl: str, weights: str | None, device, seed: int = 0, resolution: int = 224):
        """The model on ``device`` (a ``Device`` or a device name) in its initial state.

        A model without loaded weights has its BatchNorm statistics calibrated once, when it is built
        (``numerics.calibrate_batchnorm`` at ``resolution``), and that state is what every case starts from: its
        eval-mode activations stay normalised, so amp_fp16 outputs are finite and numerics compare real values.
        """
        import torch

        from harness.measure import device as devices
        from harness.measure.numerics import calibrate_batchnorm
        from harness.zoo import build_model

        dev = devices.get(device) if isinstance(device, str) else device
        key = (name, impl, weights, dev.name, seed)
        if key != self.key:
            self.key, self.model, self.initial = None, None, None
            gc.collect()
            _trim_heap()
            dev.empty_cache()
            torch.manual_seed(seed)
            model = build_model(name, weights=weights, impl=impl).to(dev.torch_device)
            if weights is None:
                calibrate_batchnorm(model, dev, resolution, seed=seed)
            self.initial = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.model = model
            self.key = key
        else:
            self.model.load_state_dict(self.initial)
        for p in self.model.parameters():
            p.grad = None
        return self.model

    def clear(self) -> None:
        self.key, self.model, self.initial = None, None, None


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
                ctx.notes["device_lost"] = rec.message
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
    ctx.notes["ddp_abandoned"] = True
    if board.abandoned is False and ctx.dev.is_cuda:
        ctx.notes["device_lost"] = (
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
    if ctx.model_cache is not None:
        ctx.model_cache.clear()
    gc.collect()
    ctx.dev.empty_cache()


def _measure(case, ctx: CaseContext, rec: Record, batch: int) -> None:
    import torch

    from harness.measure.memory import MemoryTracker

    deadline = time.perf_counter() + case.timeout_s if case.timeout_s else None
    dev = ctx.dev
    if ctx.device_name:
        rec.device_name = ctx.device_name
    torch.manual_seed(case.seed)
    cache = ctx.model_cache or ModelCache()
    # The cache frees the previous model before the memory marks are reset, so its memory is not this case's.
    model = cache.get(case.model, case.impl, case.weights, dev, seed=case.seed, resolution=case.resolution)
    memory = MemoryTracker(dev)
    try:
        _run_phases(case, ctx, rec, batch, model, memory, deadline)
    finally:
        if memory.running:
            memory.stop()
        if case.compile:
            dev.reset_compile()  # the next case compiles for its own shapes, not on top of this one's graphs


def _prepare(case, ctx: CaseContext, rec: Record, batch: int, model, memory, ddp: bool):
    """Everything before the first timed step that a rank can fail at alone: inputs, numerics against fp32 (whose
    full fp32 forward is not the case's memory: the marks start after it), and for DDP a first training step of
    the bare model, where an out-of-memory shows before any collective. Returns the inputs and targets."""
    from harness.measure import hooks
    from harness.measure.precision import memory_format
    from harness.measure.scenarios import make_scenario, synthetic_batch

    dev = ctx.dev
    model.to(memory_format=memory_format(case.channels_last))
    # Data parallel: each rank trains on its own data (seed + rank), as it would on its shard of a dataset.
    seed = case.seed + ctx.rank if ddp else case.seed
    x, y = synthetic_batch(batch, case.resolution, dev, case.channels_last, seed=seed)
    rec.numerics = hooks.numerics(model, x, case, dev)
    _trim_heap()
    memory.start()
    if ddp:
        hooks.fault_injection(case, ctx, "trial")
        make_scenario("train", model, x, y, dev, case.precision).step()
        dev.sync()
        for p in model.parameters():
            p.grad = None
    return x, y


def _run_phases(case, ctx: CaseContext, rec: Record, batch: int, model, memory, deadline) -> None:
    import torch

    from harness.measure import collective, hooks
    from harness.measure.ops import count_ops
    from harness.measure.scenarios import make_scenario
    from harness.measure.timing import summarise, time_steps, warm_up

    dev = ctx.dev
    with dev.flags(case.precision) as flags:
        rec.tf32_matmul, rec.cudnn_benchmark = flags["tf32_matmul"], flags["cudnn_benchmark"]
        ddp = ctx.ddp_group is not None and case.mode == "train"
        if ddp:
            # A rank that fails here tells the others before any of them waits for it in a collective.
            with collective.agreement(ctx.ddp_group, dev, ctx.ddp_board, ctx.rank):
                x, y = _prepare(case, ctx, rec, batch, model, memory, ddp)
        else:
            x, y = _prepare(case, ctx, rec, batch, model, memory, ddp)
        runnable = hooks.wrap_ddp(model, ctx, case)
        if case.compile:
            dev.reset_compile()
            runnable = torch.compile(runnable)
        scenario = make_scenario(case.mode, runnable, x, y, dev, case.precision)
        step = hooks.guarded_step(scenario.step, case, ctx) if ddp else scenario.step
        sync = collective.watched_sync(dev, ctx.ddp_board, ctx.rank, ctx.ddp_group) if ddp else dev.sync
        # Telemetry opens its device now, not between warm-up and the timed window where the GPU would idle.
        sampler = hooks.telemetry_sampler(ctx)
        w = case.warmup
        # DDP ranks must run equal step counts, so they agree on the warm-up's end and the timed window's length.
        watch = {"board": ctx.ddp_board} if ddp else {}
        warm = (collective.agreed_warm_up if ddp else warm_up)(
            step,
            sync,
            *((ctx.ddp_group, dev) if ddp else ()),
            min_iters=w.min_iters,
            max_iters=w.max_iters,
            max_seconds=w.max_seconds,
            window=w.window,
            tolerance=w.tolerance,
            deadline=deadline,
            **watch,
        )
        rec.warmup_iters, rec.warmup_s = warm.iters, round(warm.seconds, 3)
        rec.warmup_reason = getattr(warm, "reason", None)
        m = case.measure
        samples: list[float] = []
        wall: list[float] = []
        if sampler:
            sampler.start()
        try:
            agreed = collective.agreed_timed_iters(warm, m, w.window, ctx.ddp_group, dev, **watch) if ddp else None
            for _ in range(max(1, m.repeats)):
                if ddp:
                    collective.synchronised_start(ctx.ddp_group, dev, **watch)
                timed = time_steps(
                    step,
                    sync,
                    min_iters=agreed or m.min_iters,
                    min_seconds=0.0 if ddp else m.min_seconds,
                    max_iters=agreed or m.max_iters,
                    events=dev.step_events if dev.is_cuda else None,
                    deadline=deadline,
                    after_step=collective.deadline_vote(ctx.ddp_group, dev, deadline, **watch) if ddp else None,
                )
                samples.extend(timed.step_ms)
                wall.extend(timed.wall_ms)
        finally:
            # A case that fails mid-window must not leave its sampling thread running for the rest of the sweep.
            if sampler:
                summary = sampler.stop(images=batch * len(samples))
                if hasattr(sampler, "close"):
                    sampler.close()
        if sampler:
            rec.telemetry = summary
        if ddp and collective.checksum_requested():
            collective.write_checksum(ctx.run_dir, case, ctx, model, x, len(samples))
        for key, value in memory.stop().items():
            setattr(rec, key, value)
        rec.iters = len(samples)
        rec.samples_ms = [round(s, 4) for s in samples]
        rec.wall_ms = [round(s, 4) for s in wall] if dev.is_cuda else None
        stats = summarise(samples, batch)
        if not all(math.isfinite(v) for v in (stats.throughput_img_s, stats.step_ms_median)):
            raise RuntimeError("timing produced a non-finite throughput")
        rec.throughput_img_s = round(stats.throughput_img_s, 4)
        rec.step_ms_median = round(stats.step_ms_median, 4)
        rec.step_ms_mean = round(sum(samples) / len(samples), 4)
        rec.step_ms_p10, rec.step_ms_p90, rec.step_ms_p99 = (
            round(stats.step_ms_p10, 4),
            round(stats.step_ms_p90, 4),
            round(stats.step_ms_p99, 4),
        )
        rec.throughput_ci95 = [round(v, 4) for v in stats.throughput_ci95]
        ops = count_ops(case.model, case.resolution, case.mode)
        fwd = count_ops(case.model, case.resolution, "inference")
        rec.flops_per_img = ops.flops_per_img
        rec.macs_per_img = fwd.macs_per_img
        rec.stated_gmacs = round(fwd.stated_gmacs, 6)
        rec.ops_deviation = round(fwd.ops_deviation, 6)
        rec.achieved_tflops = round(ops.flops_per_img * stats.throughput_img_s / 1e12, 6)
        rec.mfu = hooks.mfu(ctx.peak, case.precision, rec.achieved_tflops)
        if rec.mfu is not None and rec.mfu > 1:
            # The model cannot beat the matmul peak: the peak was measured low (a busy machine, a clock change).
            rec.message = (
                f"MFU {rec.mfu:.2f} > 1: the run's measured {case.precision} peak looks low; "
                "treat MFU of this run with care"
            )
        hooks.after_measure(rec, scenario, case, ctx)
