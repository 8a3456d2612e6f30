"""Peak FLOP/s and copy bandwidth measured on the device itself, and model FLOP utilisation (MFU) against them.

``measure_peak(device)`` runs a square matmul microbenchmark per dtype the device supports (CUDA: fp32 with TF32
off, TF32, bf16, fp16; CPU: fp32, bf16), at a few sizes, keeping the best rate: that is the roofline a case's
achieved TFLOP/s is divided by. It runs once per run, and the result is recorded in the run's manifest, so the MFU
of every case is relative to the same hardware in the same state (clocks, threads, driver) as its measurement.

A matmul of two n x n matrices counts 2 n^3 FLOPs. The device is synchronised before and after every timed block,
so the clock never stops before the work does.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any

from harness.errors import HarnessError

#: Case precision -> the matmul dtype whose peak bounds it.
PRECISION_DTYPE = {"fp32": "fp32", "tf32": "tf32", "amp_fp16": "fp16", "amp_bf16": "bf16"}

CUDA_DTYPES = ("fp32", "tf32", "bf16", "fp16")
CPU_DTYPES = ("fp32", "bf16")
CUDA_SIZES = (2048, 4096, 8192)
CPU_SIZES = (512, 1024, 2048)
CUDA_COPY_MIB = 512
CPU_COPY_MIB = 256


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _tf32(enabled: bool):
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def _best_rate(fn, work: float, budget_s: float, device) -> float:
    """The best ``work`` per second over timed blocks of ``fn()`` calls that fill ``budget_s`` in total.

    One untimed-for-the-result call first absorbs one-time costs (kernel selection, handle creation) and sizes
    the blocks so each lasts about a tenth of the budget: short enough to see the quietest moment, long enough
    that timer resolution does not matter.
    """
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    single = max(time.perf_counter() - t, 1e-9)
    calls = max(1, int(budget_s / 10 / single))
    best = work / single
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline:
        _sync(device)
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
        best = max(best, work * calls / (time.perf_counter() - t))
    return best


def _sizes_that_fit(device, dtype_bytes: int, sizes: tuple[int, ...]) -> list[int]:
    import torch

    if device.type != "cuda":
        return list(sizes)
    free, _ = torch.cuda.mem_get_info(device)
    # three matrices, and leave three quarters of free memory to whatever else lives on the device
    return [n for n in sizes if 3 * n * n * dtype_bytes <= free / 4] or [min(sizes)]


def _matmul_tflops(device, name: str, budget_s: float, sizes: tuple[int, ...]) -> tuple[float, int]:
    """Best TFLOP/s of ``name`` over ``sizes`` within ``budget_s`` and the size that gave it.

    Sizes run smallest first; a size whose single matmul would take longer than its share of the budget
    (predicted from the last rate) is skipped, so a dtype the hardware emulates slowly cannot stall the run.
    """
    import torch

    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    fits = _sizes_that_fit(device, torch.finfo(dtype).bits // 8, sizes)
    per_size = budget_s / len(fits)
    best, best_n, rate = 0.0, 0, None
    gen = torch.Generator(device=device).manual_seed(0)
    with _tf32(name == "tf32"):
        for n in fits:
            flops = 2.0 * n**3
            if rate is not None and flops / rate > per_size:
                break
            a = torch.randn(n, n, generator=gen, device=device, dtype=dtype)
            b = torch.randn(n, n, generator=gen, device=device, dtype=dtype)
            c = torch.empty(n, n, device=device, dtype=dtype)
            rate = _best_rate(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), flops, per_size, device)
            if rate > best:
                best, best_n = rate, n
            del a, b, c
    return best / 1e12, best_n


def _copy_gbps(device, budget_s: float) -> tuple[float, int]:
    """Copy bandwidth in GB/s (1e9 bytes) of ``dst.copy_(src)``, counting bytes read plus bytes written."""
    import torch

    mib = CUDA_COPY_MIB if device.type == "cuda" else CPU_COPY_MIB
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        while mib > 16 and 2 * mib * 2**20 > free / 4:
            mib //= 2
    src = torch.ones(mib * 2**20 // 4, device=device)
    dst = torch.empty_like(src)  # allocated and touched before timing, so page faults are not counted
    dst.zero_()
    rate = _best_rate(lambda: dst.copy_(src), 2.0 * src.numel() * src.element_size(), budget_s, device)
    return rate / 1e9, mib


def _resolve(device: str):
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise HarnessError(f"cannot measure peak FLOP/s on device {device!r}: {exc}; use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise HarnessError(f"cannot measure peak FLOP/s on {device!r}: no CUDA device is visible; use cpu")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise HarnessError(
                f"cannot measure peak FLOP/s on {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return torch.device("cuda", index)
    if dev.type != "cpu":
        raise HarnessError(f"cannot measure peak FLOP/s on {device!r}: only cpu and cuda devices are supported")
    return dev


def measure_peak(device: str, seconds_per_dtype: float = 1.0) -> dict[str, Any]:
    """Measure matmul TFLOP/s per dtype and copy bandwidth on ``device`` ("cpu", "cuda", "cuda:N").

    Returns ``{"matmul_tflops": {dtype: TFLOP/s}, "copy_gbps": GB/s, "method": str, "device": str,
    "matrix_size": {dtype: n}, "skipped": {dtype: reason}, "seconds": float}``. About ``seconds_per_dtype``
    seconds go to each dtype (and at most that to the copy). A dtype that raises, or whose smallest matmul takes
    longer than the whole budget, is left out of ``matmul_tflops`` and listed in ``skipped`` with the reason.
    """
    import torch

    dev = _resolve(device)
    started = time.perf_counter()
    cuda = dev.type == "cuda"
    names, sizes = (CUDA_DTYPES, CUDA_SIZES) if cuda else (CPU_DTYPES, CPU_SIZES)
    tflops: dict[str, float] = {}
    matrix_size: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for name in names:
        if cuda and name in ("bf16", "tf32") and torch.cuda.get_device_capability(dev)[0] < 8:
            # Before Ampere, bf16 runs by emulation (is_bf16_supported() counts it) and TF32 does not exist.
            skipped[name] = f"{name} needs compute capability 8.0+ (Ampere or newer)"
            continue
        try:
            value, n = _matmul_tflops(dev, name, seconds_per_dtype, sizes)
        except (RuntimeError, NotImplementedError) as exc:
            skipped[name] = f"matmul failed: {str(exc).splitlines()[0]}"
            continue
        if value * 1e12 * seconds_per_dtype < 2.0 * min(sizes) ** 3:
            skipped[name] = f"too slow: under one {min(sizes)}x{min(sizes)} matmul per {seconds_per_dtype:g} s"
            continue
        tflops[name], matrix_size[name] = value, n
    copy, copy_mib = _copy_gbps(dev, min(seconds_per_dtype, 1.0))
    threads = "" if cuda else f", {torch.get_num_threads()} threads"
    method = (
        f"torch.mm(out=) on n x n matrices, n in {list(sizes)}, best timed block per dtype, ~{seconds_per_dtype:g} s"
        f" per dtype, synchronised, 2n^3 FLOP{threads}; fp32 with TF32 off; copy: dst.copy_(src) of {copy_mib} MiB,"
        " read+write bytes"
    )
    return {
        "matmul_tflops": tflops,
        "copy_gbps": copy,
        "method": method,
        "device": str(dev),
        "matrix_size": matrix_size,
        "skipped": skipped,
        "seconds": time.perf_counter() - started,
    }


def peak_for_precision(peak: dict[str, Any] | None, precision: str) -> float | None:
    """The peak TFLOP/s that bounds a case of ``precision`` (fp32, tf32, amp_fp16, amp_bf16), or None if unmeasured."""
    if not peak:
        return None
    dtype = PRECISION_DTYPE.get(precision)
    value = (peak.get("matmul_tflops") or {}).get(dtype) if dtype else None
    return float(value) if value is not None else None


def mfu(achieved_tflops: float | None, peak_tflops: float | None) -> float | None:
    """Model FLOP utilisation: achieved over peak TFLOP/s (a fraction), or None when either is unknown or not > 0."""
    if achieved_tflops is None or peak_tflops is None:
        return None
    if not (math.isfinite(achieved_tflops) and math.isfinite(peak_tflops)) or peak_tflops <= 0:
        return None
    return achieved_tflops / peak_tflops
