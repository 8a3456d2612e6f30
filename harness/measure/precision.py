"""Devices, precisions and memory formats: what a device can run, and the context each precision runs in.

A combination a device cannot run is not an error in the suite: it becomes a ``skipped`` record whose message
says why (amp_fp16 and tf32 need CUDA here; a cuda case needs a visible GPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def resolve_device(device: str, local_rank: int | None = None) -> str:
    """``auto`` becomes ``cuda[:local_rank]`` when a GPU is visible, else ``cpu``; others pass through."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return f"cuda:{local_rank}" if local_rank is not None else "cuda"
        return "cpu"
    if device == "cuda" and local_rank is not None:
        return f"cuda:{local_rank}"
    return device


def unsupported_reason(device: str, precision: str) -> str | None:
    """Why ``precision`` cannot run on ``device``, or None when it can."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return "no CUDA device is visible on this machine (set device: cpu or auto to run on the CPU)"
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            return f"{device} does not exist: {torch.cuda.device_count()} CUDA device(s) visible"
        if precision == "amp_bf16" and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(index)} does not support bfloat16"
        if precision == "tf32" and torch.cuda.get_device_capability(index)[0] < 8:
            return f"{torch.cuda.get_device_name(index)} has no TF32 (needs compute capability 8.0+)"
        return None
    if precision == "amp_fp16":
        return "amp_fp16 runs on CUDA only here; use amp_bf16 on the CPU"
    if precision == "tf32":
        return "tf32 is a CUDA tensor-core mode; on the CPU it would measure fp32 under another name"
    return None


def autocast_dtype(precision: str):
    """The autocast dtype of an AMP precision, or None for fp32/tf32."""
    import torch

    return {"amp_fp16": torch.float16, "amp_bf16": torch.bfloat16}.get(precision)


@contextlib.contextmanager
def precision_flags(precision: str) -> Iterator[dict]:
    """Set the TF32 flags the precision asks for (off for everything but ``tf32``) and restore them after.

    Yields the flags in force, which go into the record: a tf32 number measured with TF32 silently off (or an
    fp32 number with it silently on) is the commonest mislabelled result in GPU benchmarks.
    """
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    on = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    try:
        yield {"tf32_matmul": on, "cudnn_benchmark": torch.backends.cudnn.benchmark}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def autocast(device: str, precision: str):
    """The autocast context of the precision on the device's type (a null context for fp32/tf32)."""
    import torch

    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def memory_format(channels_last: bool):
    """``torch.channels_last`` or ``torch.contiguous_format``."""
    import torch

    return torch.channels_last if channels_last else torch.contiguous_format


def sync_fn(device: str):
    """A function that waits for the device to finish queued work (a no-op on the CPU)."""
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index
        return lambda: torch.cuda.synchronize(index)
    return lambda: None
