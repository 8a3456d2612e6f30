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
    notes: dict = field(default_factory=dict)


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

    def get(self, name: str, impl: str, weights: str | None, device: str, seed: int = 0):
        import torch

        from harness.zoo import build_model

        key = (name, impl, weights, device, seed)
        if key != self.key:
            self.key, self.model, self.initial = None, None, None
            gc.collect()
            _trim_heap()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            torch.manual_seed(seed)
            model = build_model(name, weights=weights, impl=impl)
            self.initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.model = model.to(device)
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

    from harness.measure.precision import unsupported_reason

    t0 = time.perf_counter()
    rec = base_record(case, ctx)
    rec.num_threads = torch.get_num_threads()
    reason = unsupported_reason(ctx.device, case.precision)
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
            if _is_oom(exc):
                _release(ctx)
                if case.oom_reduce and batch > 1:
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


def _release(ctx: CaseContext) -> None:
    import gc

    import torch

    if ctx.model_cache is not None:
        ctx.model_cache.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _measure(case, ctx: CaseContext, rec: Record, batch: int) -> None:
    import torch

    from harness.measure.memory import MemoryTracker
    from harness.measure.precision import sync_fn

    deadline = time.perf_counter() + case.timeout_s if case.timeout_s else None
    device, sync = ctx.device, sync_fn(ctx.device)
    if ctx.device_name:
        rec.device_name = ctx.device_name
    torch.manual_seed(case.seed)
    cache = ctx.model_cache or ModelCache()
    # The cache frees the previous model before the memory marks are reset, so its memory is not this case's.
    model = cache.get(case.model, case.impl, case.weights, device, seed=case.seed)
    memory = MemoryTracker(device)
    memory.start()
    try:
        _run_phases(case, ctx, rec, batch, model, memory, deadline, sync)
    finally:
        if memory.running:
            memory.stop()


def _run_phases(case, ctx: CaseContext, rec: Record, batch: int, model, memory, deadline, sync) -> None:
    import torch

    from harness.measure import collective, hooks
    from harness.measure.ops import count_ops
    from harness.measure.precision import memory_format, precision_flags
    from harness.measure.scenarios import make_scenario, synthetic_batch
    from harness.measure.timing import summarise, time_steps, warm_up

    device = ctx.device
    with precision_flags(case.precision) as flags:
        rec.tf32_matmul, rec.cudnn_benchmark = flags["tf32_matmul"], flags["cudnn_benchmark"]
        model = model.to(memory_format=memory_format(case.channels_last))
        ddp = ctx.ddp_group is not None and case.mode == "train"
        # Data parallel: each rank trains on its own data (seed + rank), as it would on its shard of a dataset.
        seed = case.seed + ctx.rank if ddp else case.seed
        x, y = synthetic_batch(batch, case.resolution, device, case.channels_last, seed=seed)
        rec.numerics = hooks.numerics(model, x, case, device)
        runnable = hooks.wrap_ddp(model, ctx, case)
        if case.compile:
            runnable = torch.compile(runnable)
        scenario = make_scenario(case.mode, runnable, x, y, device, case.precision)
        w = case.warmup
        # DDP ranks must run equal step counts, so they agree on the warm-up's end and the timed window's length.
        warm = (collective.agreed_warm_up if ddp else warm_up)(
            scenario.step,
            sync,
            *((ctx.ddp_group, device) if ddp else ()),
            min_iters=w.min_iters,
            max_iters=w.max_iters,
            max_seconds=w.max_seconds,
            window=w.window,
            tolerance=w.tolerance,
            deadline=deadline,
        )
        rec.warmup_iters, rec.warmup_s = warm.iters, round(warm.seconds, 3)
        rec.warmup_reason = getattr(warm, "reason", None)
        m = case.measure
        sampler = hooks.telemetry_sampler(ctx)
        samples: list[float] = []
        wall: list[float] = []
        if sampler:
            sampler.start()
        try:
            agreed = collective.agreed_timed_iters(warm, m, w.window, ctx.ddp_group, device) if ddp else None
            for _ in range(max(1, m.repeats)):
                if ddp:
                    collective.synchronised_start(ctx.ddp_group)
                timed = time_steps(
                    scenario.step,
                    sync,
                    min_iters=agreed or m.min_iters,
                    min_seconds=0.0 if ddp else m.min_seconds,
                    max_iters=agreed or m.max_iters,
                    cuda_events=device.startswith("cuda"),
                    deadline=deadline,
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
        rec.wall_ms = [round(s, 4) for s in wall] if device.startswith("cuda") else None
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
