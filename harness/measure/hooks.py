"""The optional parts of a case's measurement, each behind one small function so ``case.py`` stays a recipe.

Numerics (AMP against fp32), telemetry (NVML), MFU (against the run's measured peak), the profiler, DDP
wrapping and accuracy each live in their own module; these functions decide when they apply and turn their
results into record fields.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from harness.store.record import NUMERICS_FIELDS


def numerics(model, x, case, device) -> dict[str, Any]:
    """Top-1 agreement and max relative error against fp32 for AMP and TF32 cases (nulls for fp32).

    A NaN or Inf in the case's output raises, so the case is recorded as ``error`` with that message.
    """
    if case.precision == "fp32":
        return {k: None for k in NUMERICS_FIELDS}
    from harness.measure.numerics import compare_with_fp32

    return compare_with_fp32(model, x, case.precision, device, channels_last=case.channels_last)


def telemetry_sampler(ctx):
    """A telemetry sampler for the timed window when the run asks for it and the device is a GPU, else None."""
    if not ctx.telemetry or not ctx.device.startswith("cuda"):
        return None
    from harness.measure.telemetry import TelemetrySampler

    return TelemetrySampler(ctx.device, interval_ms=ctx.telemetry_interval_ms)


def mfu(peak: dict | None, precision: str, achieved_tflops: float | None) -> float | None:
    """Achieved TFLOP/s over the run's measured matmul peak of the case's precision (None when unknown)."""
    if not peak or achieved_tflops is None:
        return None
    from harness.measure.peak import mfu as ratio
    from harness.measure.peak import peak_for_precision

    value = ratio(achieved_tflops, peak_for_precision(peak, precision))
    return None if value is None else round(value, 6)


def wrap_ddp(model, ctx, case):
    """Wrap the model in DistributedDataParallel when the case trains across a process group."""
    if ctx.ddp_group is None or case.mode != "train":
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=ctx.dev.ddp_device_ids(), process_group=ctx.ddp_group)


#: Test-only fault injection: ``HARNESS_TEST_FAIL=<case id glob>@<rank>:<phase>:<kind>`` makes that rank fail the
#: case at ``phase`` (``trial``: before the DDP collectives; ``step<N>``: in the N-th step after them) with
#: ``kind`` (``oom`` or ``error``). It exists so that tests can check how one rank's failure reaches the others.
FAIL_ENV = "HARNESS_TEST_FAIL"


def _injected(case, ctx, phase: str) -> str | None:
    import fnmatch
    import os

    spec = os.environ.get(FAIL_ENV, "")
    if not spec:
        return None
    target, _, rest = spec.partition("@")
    rank, _, rest = rest.partition(":")
    where, _, kind = rest.partition(":")
    if fnmatch.fnmatchcase(case.id, target) and rank.isdigit() and int(rank) == ctx.rank and where == phase:
        return kind or "error"
    return None


def fault_injection(case, ctx, phase: str) -> None:
    """Raise the failure ``HARNESS_TEST_FAIL`` asks for at ``phase`` of this case on this rank (tests only)."""
    kind = _injected(case, ctx, phase)
    if kind is None:
        return
    import torch

    if kind == "oom":
        raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 20.00 GiB (injected at {phase})")
    raise RuntimeError(f"injected failure at {phase}")


def guarded_step(step, case, ctx):
    """``step``, with the test-only fault injection of ``HARNESS_TEST_FAIL`` at ``step<N>`` when it is asked for."""
    import os

    if not os.environ.get(FAIL_ENV):
        return step
    count = 0

    def counted():
        nonlocal count
        count += 1
        fault_injection(case, ctx, f"step{count}")
        return step()

    return counted


def profile_dir(run_dir: Path, case_id: str) -> Path:
    """``<run>/profiles/<case id>``, with characters outside [A-Za-z0-9_.-/] replaced."""
    return Path(run_dir) / "profiles" / re.sub(r"[^A-Za-z0-9_./-]", "_", case_id)


def after_measure(rec, scenario, case, ctx) -> None:
    """Profiler trace and operator table for profiled cases; accuracy when the suite asks for it."""
    wants_profile = case.profile or (ctx.extra_profile is not None and ctx.extra_profile(case))
    if wants_profile:
        from harness.measure.profiler import profile_case

        folder = profile_dir(ctx.run_dir, case.id)
        rec.profile = profile_case(scenario.step, folder, rank=ctx.rank, device=ctx.device)
        if rec.profile.get("trace_dir"):
            # Relative to the run folder, so the record stays right when the folder is moved or copied.
            rec.profile["trace_dir"] = str(folder.relative_to(ctx.run_dir))
    if ctx.accuracy is not None and ctx.rank == 0:
        from harness.accuracy import accuracy_for_case

        rec.accuracy = accuracy_for_case(case, ctx.accuracy.data, ctx.accuracy.limit, device=ctx.device)
