"""The phases of one case's measurement and the state they share; ``runner.py`` runs them as a recipe.

Each phase is a small function of a ``CaseRun``: it reads what the phases before it left there and writes its
record fields. In the recipe's order:

``prepare``   inputs on the device, numerics against fp32 (for AMP and TF32 cases)
``trial``     DDP only: a first training step of the bare model (``rank_timing.DdpTiming.trial``)
``build``     the step to time: the model (DDP-wrapped, compiled) in its scenario, and the sync after each step
``warmup``    until the step time stops falling (record: warmup_iters, warmup_s, warmup_reason)
``timed``     the timed window, with the ``timed`` trackers around it (single rank: extended to replace stalls)
``record``    the samples and their statistics, every tracker's fields, stalls and the noisy mark
``ops``       FLOPs and MACs per image against the stated ops, achieved TFLOP/s
``mfu``       against the run's measured peak of the case's precision
``profile``   torch.profiler trace and operator table, for the cases a suite (or ``--profile``) names
``accuracy``  top-1/top-5 on the suite's data set, on rank 0, when the suite asks

Where the single-rank and the DDP timing differ, a phase asks the case's strategy (``run.timing``, see
``rank_timing``); what watches the case (memory, telemetry, contention) are its trackers (``run.trackers``, see
``trackers``).

Phase hooks: ``PHASE_HOOKS`` is a list of callables ``hook(phase, run)``, empty unless something installs one. Each
is called just before a phase begins, with the phase's name from the table above (only phases that run: no
``trial`` outside DDP, no ``profile`` for a case nobody asked to profile) and the live ``CaseRun``. A hook may read
the state (tracing, a digest of the parameters at ``record``, just after the timed window) or change it (wrap
``run.step`` at ``warmup``); an exception it raises fails the case as the phase's own would. The tests install
their fault injection and the DDP replica checksums this way (``tests/support/inject``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.store.record import NUMERICS_FIELDS, Record
from harness.store.rundir import RunFolder

#: Called as ``hook(phase name, CaseRun)`` just before each phase of every case (see the module docstring).
PHASE_HOOKS: list[Callable[[str, Any], None]] = []


def announce(name: str, run: CaseRun) -> None:
    """Tell every phase hook that phase ``name`` of ``run`` begins."""
    for hook in PHASE_HOOKS:
        hook(name, run)


def phase(name: str):
    """Make a function of a ``CaseRun`` the phase ``name``: the phase hooks hear of it just before it runs."""

    def wrap(fn: Callable[[CaseRun], None]) -> Callable[[CaseRun], None]:
        @functools.wraps(fn)
        def run_phase(run: CaseRun) -> None:
            announce(name, run)
            fn(run)

        return run_phase

    return wrap


@dataclass
class CaseRun:
    """One case's measurement in progress: what it measures with, and what each phase leaves for the next.

    ``batch`` is the batch size of this attempt (smaller than the case's after an out-of-memory, when the case
    allows reduction); ``deadline`` is the ``perf_counter`` time the case's timeout passes (None: no timeout).
    """

    case: Any
    ctx: Any  # the run's CaseContext
    rec: Record
    batch: int
    model: Any
    deadline: float | None
    timing: Any  # rank_timing.AloneTiming or DdpTiming, chosen once for the case
    trackers: list = field(default_factory=list)
    carried: bool = False  # the case carries the warm state of the case before it (``runner.warm_group``)
    inputs: Any = None
    targets: Any = None
    scenario: Any = None  # the scenario of the step to time (its model DDP-wrapped and compiled as the case asks)
    step: Callable[[], object] | None = None  # the step the warm-up and the timed window run
    sync: Callable[[], None] | None = None
    warm: Any = None  # timing.WarmupResult
    samples: list[float] = field(default_factory=list)  # device time of each timed step, ms
    wall: list[float] = field(default_factory=list)  # synced wall time of each timed step, ms
    stalled: list[int] = field(default_factory=list)  # indices into ``samples`` of the stalled steps
    stats: Any = None  # timing.Summary of the samples

    @property
    def dev(self):
        """The device seam of the case's device."""
        return self.ctx.dev


def numerics(model, x, case, device) -> dict[str, Any]:
    """Top-1 agreement and max relative error against fp32 for AMP and TF32 cases (nulls for fp32).

    A NaN or Inf in the case's output raises, so the case is recorded as ``error`` with that message.
    """
    if case.precision == "fp32":
        return {k: None for k in NUMERICS_FIELDS}
    from harness.measure.numerics import compare_with_fp32

    return compare_with_fp32(model, x, case.precision, device, channels_last=case.channels_last)


def profile_dir(run_dir: Path, case_id: str) -> Path:
    """The trace folder of one profiled case in the run folder (``RunFolder.profile_dir``)."""
    return RunFolder(run_dir).profile_dir(case_id)


@phase("prepare")
def prepare(run: CaseRun) -> None:
    """Inputs on the device in the case's layout, and numerics against fp32 on them. The fp32 reference forward is
    not the case's memory: the ``case`` trackers start after this phase, with freed heap returned to the OS."""
    from harness.measure.memory import trim_heap
    from harness.measure.precision import memory_format
    from harness.measure.scenarios import synthetic_batch

    case = run.case
    run.model.to(memory_format=memory_format(case.channels_last))
    seed = run.timing.input_seed(case, run.ctx.rank)
    run.inputs, run.targets = synthetic_batch(run.batch, case.resolution, run.dev, case.channels_last, seed=seed)
    from harness.measure.numerics import reusing

    # The model is in its initial state here: fp32 outputs the cache holds for it stand for a new fp32 pass.
    with reusing(getattr(run.ctx.model_cache, "references", None)):
        run.rec.numerics = numerics(run.model, run.inputs, case, run.dev)
    trim_heap()


@phase("build")
def build(run: CaseRun) -> None:
    """The step to time: the strategy's runnable model (compiled from a clean dynamo state when the case asks) in
    the scenario of the case's mode, and the strategy's sync."""
    import torch

    from harness.measure import scenarios

    case = run.case
    runnable = run.timing.runnable(run.model)
    if case.compile:
        run.dev.reset_compile()
        runnable = torch.compile(runnable)
    run.scenario = scenarios.make_scenario(case.mode, runnable, run.inputs, run.targets, run.dev, case.precision)
    run.step = run.scenario.step
    run.sync = run.timing.sync


@phase("warmup")
def warm_up(run: CaseRun) -> None:
    """Warm up until the step time stops falling (DDP: on every rank), within the case's bounds and deadline; a case
    that carries the warm state of the case before it may stop at its first flat window (``timing.warm_up``)."""
    run.warm = warm = run.timing.warm_up(run.step, run.sync, run.case.warmup, run.deadline, carried=run.carried)
    # Steady steps that open the timed window are timed steps, not warm-up: the record counts each step once.
    run.rec.warmup_iters = warm.iters - warm.steady
    run.rec.warmup_s = round(max(0.0, warm.seconds - sum(warm.steady_ms()) / 1000.0), 3)
    run.rec.warmup_reason = warm.reason


@phase("timed")
def timed(run: CaseRun) -> None:
    """The case's timed windows, with the ``timed`` trackers around them; on CUDA each step is also bracketed by
    device events (``samples``: the GPU's time; ``wall``: the synced wall clock). ``stalled`` indexes the steps
    the stall rule flagged, each against the median of its own window."""
    from harness.measure import trackers

    events = run.dev.step_events if run.dev.is_cuda else None
    with trackers.window(run.trackers, "timed"):
        windows = run.timing.timed(run.step, run.sync, run.warm, run.case, run.deadline, events)
    run.samples, run.wall, run.stalled = [], [], []
    for window in windows:
        run.stalled.extend(len(run.samples) + i for i in window.stalled)
        run.samples.extend(window.step_ms)
        run.wall.extend(window.wall_ms)


@phase("record")
def record(run: CaseRun) -> None:
    """The samples, their statistics and every tracker's fields into the record, then the noisy mark: the
    trackers' reasons (contention) and the stalls. A non-finite throughput raises."""
    from harness.measure.timing import stall_reason, summarise

    rec, samples = run.rec, run.samples
    rec.iters = len(samples)
    rec.samples_ms = [round(s, 4) for s in samples]
    rec.wall_ms = [round(s, 4) for s in run.wall] if run.dev.is_cuda else None
    rec.noise = []
    for tracker in run.trackers:
        tracker.fill(rec)
    stats = run.stats = summarise(samples, run.batch)
    if not all(math.isfinite(v) for v in (stats.throughput_img_s, stats.step_ms_median)):
        raise RuntimeError("timing produced a non-finite throughput")
    rec.stalled_steps = len(run.stalled)
    stalled = stall_reason(samples, run.stalled)
    if stalled:
        rec.noise.append(stalled)
    rec.noisy = bool(rec.noise)
    rec.throughput_img_s = round(stats.throughput_img_s, 4)
    rec.throughput_total_img_s = round(stats.throughput_total_img_s, 4)
    rec.step_ms_median = round(stats.step_ms_median, 4)
    rec.step_ms_mean = round(sum(samples) / len(samples), 4)
    rec.step_ms_p10, rec.step_ms_p90, rec.step_ms_p99 = (
        round(stats.step_ms_p10, 4),
        round(stats.step_ms_p90, 4),
        round(stats.step_ms_p99, 4),
    )
    rec.throughput_ci95 = [round(v, 4) for v in stats.throughput_ci95]


@phase("ops")
def ops(run: CaseRun) -> None:
    """FLOPs per image of the case's step, forward MACs against the stated ops, and the achieved TFLOP/s."""
    from harness.measure.ops import count_ops

    case, rec = run.case, run.rec
    step = count_ops(case.model, case.resolution, case.mode)
    fwd = count_ops(case.model, case.resolution, "inference")
    rec.flops_per_img = step.flops_per_img
    rec.macs_per_img = fwd.macs_per_img
    rec.stated_gmacs = round(fwd.stated_gmacs, 6)
    rec.ops_deviation = round(fwd.ops_deviation, 6)
    rec.achieved_tflops = round(step.flops_per_img * run.stats.throughput_img_s / 1e12, 6)


@phase("mfu")
def mfu(run: CaseRun) -> None:
    """MFU against the rank's measured peak of the case's dtype and memory format (``peak.case_mfu``): never above
    1; where the case achieved more than the peak, the MFU is null and the record's message says it is unknown.
    The run computes it again when it closes, against the best of its start and end probes (``peak.with_mfu``)."""
    from harness.measure.peak import case_mfu

    rec, case = run.rec, run.case
    rec.mfu, note = case_mfu(rec.achieved_tflops, run.ctx.peak, case.precision, case.channels_last)
    if note is not None:
        rec.message = note


def profiled(ctx) -> Callable[[Any], bool]:
    """Whether a case of a rank with context ``ctx`` is profiled: its suite names it, or ``harness run --profile
    GLOB`` matches it (the case loop runs these last)."""
    extra = getattr(ctx, "extra_profile", None)
    return lambda case: bool(getattr(case, "profile", None) or (extra is not None and extra(case)))


def wants_profile(run: CaseRun) -> bool:
    """Whether the case is profiled (``profiled``)."""
    return profiled(run.ctx)(run.case)


@phase("profile")
def profile(run: CaseRun) -> None:
    """Profiler trace (``profile_dir``) and operator table of the case's step, after and outside the timed window."""
    from harness.measure.profiler import ProfileTracker

    ctx = run.ctx
    folder = profile_dir(ctx.run_dir, run.case.id)
    tracker = ProfileTracker(folder, rank=ctx.rank, device=ctx.device, relative_to=Path(ctx.run_dir))
    tracker.profile(run.scenario.step)
    tracker.fill(run.rec)


def wants_accuracy(run: CaseRun) -> bool:
    """Whether the suite asks for accuracy; rank 0 measures it for the run."""
    return run.ctx.accuracy is not None and run.ctx.rank == 0


@phase("accuracy")
def accuracy(run: CaseRun) -> None:
    """Top-1/top-5 on the suite's data set (``harness.accuracy``)."""
    from harness.accuracy import accuracy_for_case

    acc, ctx = run.ctx.accuracy, run.ctx
    run.rec.accuracy = accuracy_for_case(run.case, acc.data, acc.limit, device=ctx.device)
