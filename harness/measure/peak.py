"""Peak FLOP/s and copy bandwidth measured on the device itself, the run's health probes, and model FLOP utilisation
(MFU) against that peak.

``measure_peak(device)`` measures, for each dtype the device supports (CUDA: fp32 with TF32 off, TF32, bf16, fp16;
CPU: fp32, bf16), what the models spend their time in:

- a square matmul (``torch.mm``, sizes tried smallest first, 2 n^3 FLOPs), in the dtype itself;
- a ResNet 3x3 convolution, 64 -> 64 channels at 56 x 56 (ResNet's first stage; 2 FLOPs per multiply-add), under
  the case's flags, and for fp16/bf16 under autocast (input in that dtype, fp32 weight), as the cases run their
  convolutions; once in NCHW and once with input and weight in channels_last (keys ``"<dtype>"`` and
  ``"<dtype>_cl"``);

and the copy bandwidth. Each figure is the best timed block of repeated calls within its share of the budget, with
the device synchronised before and after every block, so the clock never stops before the work does.

The peak is a roofline: the best the device was seen to do. A probe taken while something else used the machine
reads low, so a run probes twice, at its start and at its end (``RunSession.peak`` and ``RunSession.end_probe``),
records both with their spread in its manifest's ``health`` (``health``), and takes the best of the two, key by
key, as the peak its MFU is computed against (``best_of``). MFU of a case is achieved TFLOP/s over the larger of
the matmul and the convolution peak of its dtype and memory format (``peak_for_case``); where the case achieved
more than that, its MFU is unknown (null, and the record's message says so), never a number above 1.

Budget: one probe takes about ``PROBE_BUDGET_S`` seconds of measuring (1.5 s on the CPU, 6 s on CUDA), split evenly
between the matmul and the two convolutions of every dtype and the copy, plus the set-up of its tensors; the
seconds it took are recorded in the probe (``seconds``). A run pays it twice. On the CPU each figure then has about
0.2 s: ten blocks of 20 ms, of which the best is kept (the probe wants the quietest moment, which more blocks of
the same length would only look for longer). Three probes at 1.5 s and three at 3.5 s, interleaved on a 2-core
VM, gave medians within 3% of each other on every figure, inside one run's start-to-end spread there (6-12%); a
probe took 1.8 s instead of 3.9 s.
"""

from __future__ import annotations

import math
import time
from typing import Any

from harness.errors import HarnessError

#: Case precision -> the dtype whose peak bounds it.
PRECISION_DTYPE = {"fp32": "fp32", "tf32": "tf32", "amp_fp16": "fp16", "amp_bf16": "bf16"}
#: Probe dtype -> the case precision whose flags and autocast it is measured under.
DTYPE_PRECISION = {dtype: precision for precision, dtype in PRECISION_DTYPE.items()}

CUDA_DTYPES = ("fp32", "tf32", "bf16", "fp16")
CPU_DTYPES = ("fp32", "bf16")
CUDA_SIZES = (2048, 4096, 8192)
CPU_SIZES = (512, 1024, 2048)
CUDA_COPY_MIB = 512
CPU_COPY_MIB = 64

#: Seconds of measuring in one probe when the caller does not say, by device type (see the module docstring).
PROBE_BUDGET_S = {"cpu": 1.5, "cuda": 6.0}

#: The convolution probe: ResNet's 3x3 convolution of its first stage (channels in = out, square input).
CONV_CHANNELS = 64
CONV_SIZE = 56
CONV_KERNEL = 3
CPU_CONV_BATCH = 8
CUDA_CONV_BATCH = 128

#: The groups of numbers a probe holds per key, and its one plain number (see ``probe_values``).
KEYED = ("matmul_tflops", "conv_tflops")
PLAIN = ("copy_gbps",)


def _best_rate(fn, work: float, budget_s: float, sync) -> float:
    """The best ``work`` per second over timed blocks of ``fn()`` calls that fill ``budget_s`` in total.

    One untimed-for-the-result call first absorbs one-time costs (kernel selection, handle creation) and sizes
    the blocks so each lasts about a tenth of the budget: short enough to see the quietest moment, long enough
    that timer resolution does not matter.
    """
    sync()
    t = time.perf_counter()
    fn()
    sync()
    single = max(time.perf_counter() - t, 1e-9)
    calls = max(1, int(budget_s / 10 / single))
    best = work / single
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline:
        sync()
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        best = max(best, work * calls / (time.perf_counter() - t))
    return best


def _free_bytes(dev) -> float | None:
    import torch

    if dev.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(dev)
    return float(free)


def _sizes_that_fit(dev, dtype_bytes: int, sizes: tuple[int, ...]) -> list[int]:
    free = _free_bytes(dev)
    if free is None:
        return list(sizes)
    # three matrices, and leave three quarters of free memory to whatever else lives on the device
    return [n for n in sizes if 3 * n * n * dtype_bytes <= free / 4] or [min(sizes)]


def _matmul_tflops(seam, name: str, budget_s: float, sizes: tuple[int, ...]) -> tuple[float, int]:
    """Best TFLOP/s of ``name`` over ``sizes`` within ``budget_s`` and the size that gave it.

    Sizes run smallest first; a size whose single matmul would take longer than its share of the budget
    (predicted from the last rate) is skipped, so a dtype the hardware emulates slowly cannot stall the run.
    """
    import torch

    dev = seam.torch_device
    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    fits = _sizes_that_fit(dev, torch.finfo(dtype).bits // 8, sizes)
    per_size = budget_s / len(fits)
    best, best_n, rate = 0.0, 0, None
    gen = torch.Generator(device=dev).manual_seed(0)
    with seam.flags(DTYPE_PRECISION[name]):
        for n in fits:
            flops = 2.0 * n**3
            if rate is not None and flops / rate > per_size:
                break
            a = torch.randn(n, n, generator=gen, device=dev, dtype=dtype)
            b = torch.randn(n, n, generator=gen, device=dev, dtype=dtype)
            c = torch.empty(n, n, device=dev, dtype=dtype)
            rate = _best_rate(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), flops, per_size, seam.sync)
            if rate > best:
                best, best_n = rate, n
            del a, b, c
    return best / 1e12, best_n


def _conv_batch(dev) -> int:
    """Images per convolution call: a batch the cases would run, halved until input and output fit in a quarter of
    the free device memory."""
    free = _free_bytes(dev)
    if free is None:
        return CPU_CONV_BATCH
    batch = CUDA_CONV_BATCH
    per_image = 2 * CONV_CHANNELS * CONV_SIZE * CONV_SIZE * 4  # fp32 input and output
    while batch > 1 and batch * per_image > free / 4:
        batch //= 2
    return batch


def conv_flops(batch: int) -> float:
    """FLOPs of one call of the convolution probe on ``batch`` images (2 per multiply-add, stride 1, padded)."""
    return 2.0 * batch * CONV_CHANNELS * CONV_CHANNELS * CONV_KERNEL**2 * CONV_SIZE**2


def _conv_tflops(seam, name: str, channels_last: bool, batch: int, budget_s: float) -> float:
    """Best TFLOP/s of the convolution probe at dtype ``name`` and the memory format, as a case of that precision
    runs a convolution inside the model: its flags (TF32 exactly for tf32, cuDNN's autotuner on CUDA), no autograd,
    and for fp16/bf16 under autocast with the input already in that dtype (the previous layer's output) and an fp32
    weight that autocast casts."""
    import torch
    import torch.nn.functional as F

    from harness.measure.precision import autocast, autocast_dtype, memory_format

    dev = seam.torch_device
    precision = DTYPE_PRECISION[name]
    fmt = memory_format(channels_last)
    gen = torch.Generator(device=dev).manual_seed(0)
    shape = (batch, CONV_CHANNELS, CONV_SIZE, CONV_SIZE)
    x = torch.randn(shape, generator=gen, device=dev).to(autocast_dtype(precision) or torch.float32)
    x = x.contiguous(memory_format=fmt)
    w = torch.randn(CONV_CHANNELS, CONV_CHANNELS, CONV_KERNEL, CONV_KERNEL, generator=gen, device=dev)
    w = (w / math.sqrt(CONV_CHANNELS * CONV_KERNEL**2)).contiguous(memory_format=fmt)
    with torch.inference_mode(), seam.flags(precision), autocast(seam, precision):
        rate = _best_rate(lambda: F.conv2d(x, w, padding=CONV_KERNEL // 2), conv_flops(batch), budget_s, seam.sync)
    return rate / 1e12


def _copy_gbps(seam, budget_s: float) -> tuple[float, int]:
    """Copy bandwidth in GB/s (1e9 bytes) of ``dst.copy_(src)``, counting bytes read plus bytes written."""
    import torch

    dev = seam.torch_device
    mib = CUDA_COPY_MIB if dev.type == "cuda" else CPU_COPY_MIB
    free = _free_bytes(dev)
    while free is not None and mib > 16 and 2 * mib * 2**20 > free / 4:
        mib //= 2
    src = torch.ones(mib * 2**20 // 4, device=dev)
    dst = torch.empty_like(src)  # allocated and touched before timing, so page faults are not counted
    dst.zero_()
    rate = _best_rate(lambda: dst.copy_(src), 2.0 * src.numel() * src.element_size(), budget_s, seam.sync)
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


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def measure_peak(device: str, budget_s: float | None = None) -> dict[str, Any]:
    """Measure matmul and convolution TFLOP/s per dtype and copy bandwidth on ``device`` ("cpu", "cuda", "cuda:N").

    Returns ``{"matmul_tflops": {dtype: TFLOP/s}, "conv_tflops": {"<dtype>" | "<dtype>_cl": TFLOP/s},
    "copy_gbps": GB/s, "method": str, "device": str, "matrix_size": {dtype: n}, "conv_batch": int,
    "skipped": {dtype: reason}, "conv_skipped": {key: reason}, "budget_s": float, "seconds": float}``.

    ``budget_s`` (default ``PROBE_BUDGET_S`` of the device type) is split evenly between each dtype's matmul, its
    two convolutions and the copy. A measurement that raises, or whose single call takes longer than its share, is
    left out of its group and listed with the reason (``skipped`` for matmuls, ``conv_skipped`` for convolutions);
    a dtype the device cannot run (bf16 and TF32 before Ampere) is left out of both.
    """
    import torch

    from harness.measure import device as devices

    dev = _resolve(device)
    started = time.perf_counter()
    seam = devices.get(str(dev))
    cuda = dev.type == "cuda"
    budget = float(budget_s if budget_s is not None else PROBE_BUDGET_S[dev.type])
    names, sizes = (CUDA_DTYPES, CUDA_SIZES) if cuda else (CPU_DTYPES, CPU_SIZES)
    part = budget / (3 * len(names) + 1)
    batch = _conv_batch(dev)
    tflops: dict[str, float] = {}
    conv: dict[str, float] = {}
    matrix_size: dict[str, int] = {}
    skipped: dict[str, str] = {}
    conv_skipped: dict[str, str] = {}
    for name in names:
        reason = seam.unsupported_reason(DTYPE_PRECISION[name]) if cuda else None
        if reason:
            skipped[name] = conv_skipped[name] = conv_skipped[f"{name}_cl"] = reason
            continue
        try:
            value, n = _matmul_tflops(seam, name, part, sizes)
        except (RuntimeError, NotImplementedError) as exc:
            skipped[name] = f"matmul failed: {_first_line(exc)}"
        else:
            if value * 1e12 * part < 2.0 * min(sizes) ** 3:
                skipped[name] = f"too slow: under one {min(sizes)}x{min(sizes)} matmul per {part:.3g} s"
            else:
                tflops[name], matrix_size[name] = value, n
        for channels_last in (False, True):
            key = f"{name}_cl" if channels_last else name
            try:
                value = _conv_tflops(seam, name, channels_last, batch, part)
            except (RuntimeError, NotImplementedError) as exc:
                conv_skipped[key] = f"convolution failed: {_first_line(exc)}"
                continue
            if value * 1e12 * part < conv_flops(batch):
                conv_skipped[key] = f"too slow: under one batch-{batch} convolution per {part:.3g} s"
                continue
            conv[key] = value
    copy, copy_mib = _copy_gbps(seam, min(part, 1.0))
    threads = "" if cuda else f", {torch.get_num_threads()} threads"
    method = (
        f"best timed block, synchronised, ~{part:.2g} s each{threads}. matmul: torch.mm(out=) on n x n matrices, "
        f"n in {list(sizes)}, 2n^3 FLOP, fp32 with TF32 off. conv: F.conv2d {CONV_CHANNELS}->{CONV_CHANNELS} "
        f"channels, {CONV_KERNEL}x{CONV_KERNEL}, {CONV_SIZE}x{CONV_SIZE}, batch {batch}, 2 FLOP per MAC, under "
        "the case's flags (fp16/bf16: autocast, input in that dtype), NCHW and channels_last (_cl). "
        f"copy: dst.copy_(src) of {copy_mib} MiB, read+write bytes"
    )
    return {
        "matmul_tflops": tflops,
        "conv_tflops": conv,
        "copy_gbps": copy,
        "method": method,
        "device": str(dev),
        "matrix_size": matrix_size,
        "conv_batch": batch,
        "skipped": skipped,
        "conv_skipped": conv_skipped,
        "budget_s": budget,
        "seconds": round(time.perf_counter() - started, 3),
    }


# --- the run's health: two probes, their spread, and the best of them --------------------------------------------


def probe(device: str, budget_s: float | None = None) -> dict[str, Any]:
    """One health probe: ``measure_peak`` of ``device`` with ``"at"``, the UTC time it began."""
    from harness.store.manifest import utc_now

    at = utc_now()
    return {**measure_peak(device, budget_s), "at": at}


def probe_values(peak: dict[str, Any] | None) -> dict[str, float]:
    """Every number of a probe or a peak as ``{"matmul_tflops.<dtype>": ..., "conv_tflops.<key>": ...,
    "copy_gbps": ...}``: finite and above 0 only (what was not measured is not a zero)."""
    out: dict[str, float] = {}
    if not isinstance(peak, dict):
        return out

    def keep(key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
            out[key] = float(value)

    for group in KEYED:
        numbers = peak.get(group)
        for key, value in numbers.items() if isinstance(numbers, dict) else ():
            keep(f"{group}.{key}", value)
    for key in PLAIN:
        keep(key, peak.get(key))
    return out


def spread(start: dict[str, Any] | None, end: dict[str, Any] | None) -> dict[str, float]:
    """How far two probes of one run disagree, per number both have: ``|start - end| / max(start, end)``, a fraction
    (0: the same; 0.5: one read half the other). Empty when either probe is missing."""
    a, b = probe_values(start), probe_values(end)
    return {key: round(abs(a[key] - b[key]) / max(a[key], b[key]), 4) for key in a if key in b}


def health(start: dict[str, Any] | None, end: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's ``health`` of a run (or of one rank): ``{"start": PROBE, "end": PROBE | None, "spread":
    {key: fraction}}`` (``spread``)."""
    return {"start": start, "end": end, "spread": spread(start, end)}


def best_of(*probes: dict[str, Any] | None) -> dict[str, Any] | None:
    """The peak of a run: the first probe with every number replaced by the best any probe measured for it (a probe
    taken while the machine was busy reads low; none reads higher than the device can do). ``probes`` lists when
    the probes it is the best of were taken. None without a probe."""
    taken = [p for p in probes if isinstance(p, dict)]
    if not taken:
        return None
    peak = {k: v for k, v in taken[0].items() if k not in ("at", "seconds")}
    for group in (*KEYED, *PLAIN):
        values = [probe_values({group: p.get(group)}) for p in taken]
        best: dict[str, float] = {}
        for found in values:
            for key, value in found.items():
                best[key] = max(best.get(key, 0.0), value)
        if group in PLAIN:
            peak[group] = best.get(group, peak.get(group))
        else:
            peak[group] = {key.split(".", 1)[1]: value for key, value in best.items()}
    peak["probes"] = [p.get("at") for p in taken]
    return peak


# --- MFU against the peak -----------------------------------------------------------------------------------------


def peak_for_precision(peak: dict[str, Any] | None, precision: str) -> float | None:
    """The matmul peak TFLOP/s of ``precision``'s dtype (fp32, tf32, amp_fp16, amp_bf16), or None if unmeasured.

    The matmul figure alone is what datasheets quote; MFU uses ``peak_for_case``."""
    if not peak:
        return None
    dtype = PRECISION_DTYPE.get(precision)
    value = (peak.get("matmul_tflops") or {}).get(dtype) if dtype else None
    return float(value) if value is not None else None


def peak_for_case(peak: dict[str, Any] | None, precision: str, channels_last: bool) -> float | None:
    """The peak TFLOP/s that bounds a case: the larger of the matmul peak of its precision's dtype and the
    convolution peak of that dtype in its memory format (``conv_tflops["<dtype>_cl"]`` for channels_last). A peak
    without convolutions (a run before they were probed) gives the matmul peak. None when neither was measured."""
    dtype = PRECISION_DTYPE.get(precision)
    if not isinstance(peak, dict) or dtype is None:
        return None
    values = probe_values(peak)
    found = [
        values[key]
        for key in (f"matmul_tflops.{dtype}", f"conv_tflops.{dtype}{'_cl' if channels_last else ''}")
        if key in values
    ]
    return max(found) if found else None


def mfu(achieved_tflops: float | None, peak_tflops: float | None) -> float | None:
    """Model FLOP utilisation: achieved over peak TFLOP/s (a fraction), or None when either is unknown or not > 0."""
    if achieved_tflops is None or peak_tflops is None:
        return None
    if not (math.isfinite(achieved_tflops) and math.isfinite(peak_tflops)) or peak_tflops <= 0:
        return None
    return achieved_tflops / peak_tflops


#: How a record's message begins when it is about MFU (``case_mfu``); earlier versions said "MFU 1.13 > 1: ...".
MFU_NOTE = "MFU "


def case_mfu(
    achieved_tflops: float | None, peak: dict[str, Any] | None, precision: str, channels_last: bool
) -> tuple[float | None, str | None]:
    """A case's MFU (rounded to 6 places) against ``peak_for_case``, and the note for its record's message.

    Above 1 the figure cannot be trusted (the peak was measured low: a busy machine, a clock change, or an operation
    faster than the probes), so the MFU is None and the note says ``"MFU unknown for <dtype>: achieved X TFLOP/s
    exceeds the measured peak Y"``. Otherwise the note is None.
    """
    bound = peak_for_case(peak, precision, channels_last)
    value = mfu(achieved_tflops, bound)
    if value is None:
        return None, None
    if value > 1:
        dtype = PRECISION_DTYPE[precision]
        note = f"MFU unknown for {dtype}: achieved {achieved_tflops:.4g} TFLOP/s exceeds the measured peak {bound:.4g}"
        return None, note
    return round(value, 6), None


def with_mfu(record: dict[str, Any], peak: dict[str, Any] | None) -> dict[str, Any]:
    """``record`` (a dict) with its MFU and MFU note computed again against ``peak`` (``case_mfu``), as a run does
    when it closes with the best of its start and end probes. A record that is not ``ok``, has no achieved TFLOP/s,
    or a ``peak`` of None is returned unchanged; a message that is not an MFU note is kept."""
    if peak is None or record.get("status") != "ok" or record.get("achieved_tflops") is None:
        return record
    value, note = case_mfu(
        record["achieved_tflops"], peak, str(record.get("precision")), bool(record.get("channels_last"))
    )
    message = record.get("message")
    if message is None or str(message).startswith(MFU_NOTE):
        message = note
    return {**record, "mfu": value, "message": message}
