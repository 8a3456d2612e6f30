"""Precisions and memory formats: what a device can run, and the context each precision runs in.

A combination a device cannot run is not an error in the suite: it becomes a ``skipped`` record whose message
says why (tf32 needs CUDA; bf16 and tf32 need an Ampere or newer GPU; a cuda case needs a visible GPU). Device
questions go to the device seam (``harness.measure.device``); these functions keep the string-named API the
launchers use.
"""

from __future__ import annotations

from harness.measure import device as devices


def resolve_device(device: str, local_rank: int | None = None, local_world_size: int = 1) -> str:
    """``auto``/``cuda``/``cuda:N``/``cpu`` as a concrete device name with an index (see ``device.resolve``)."""
    return devices.resolve(device, local_rank, local_world_size)


def unsupported_reason(device: str, precision: str) -> str | None:
    """Why ``precision`` cannot run on ``device``, or None when it can."""
    return devices.get(device).unsupported_reason(precision)


def autocast_dtype(precision: str):
    """The autocast dtype of an AMP precision, or None for fp32/tf32."""
    import torch

    return {"amp_fp16": torch.float16, "amp_bf16": torch.bfloat16}.get(precision)


def autocast(device, precision: str):
    """The autocast context of the precision on the device's type (a null context for fp32/tf32).

    ``device`` is a ``Device`` or a device name. fp16 autocast runs on the CPU too (slowly on most CPUs), so the
    fp16 path, GradScaler included, is exercised without a GPU.
    """
    import contextlib

    import torch

    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    dev = devices.get(device) if isinstance(device, str) else device
    return torch.autocast(device_type=dev.autocast_type, dtype=dtype)


def memory_format(channels_last: bool):
    """``torch.channels_last`` or ``torch.contiguous_format``."""
    import torch

    return torch.channels_last if channels_last else torch.contiguous_format


def sync_fn(device):
    """A function that waits for the device to finish queued work (a no-op on the CPU)."""
    dev = devices.get(device) if isinstance(device, str) else device
    return dev.sync
