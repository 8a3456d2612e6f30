"""Scenarios: the step that is timed. Inference is a forward under ``inference_mode``; training is forward,
cross-entropy, backward and an SGD-momentum step (with a GradScaler for fp16).

Inputs are synthetic, seeded and already on the device, so the step measures the model and nothing else
(no data loading, no host-to-device copies).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.measure.precision import autocast, memory_format


@dataclass
class Scenario:
    """A ready-to-time step for one case, and what it holds (for the profiler and numerics)."""

    step: Callable[[], object]
    inputs: object
    targets: object
    optimizer: object | None


def _place(device):
    """Where tensors of ``device`` (a ``Device`` or a device name) live."""
    from harness.measure import device as devices

    return (devices.get(device) if isinstance(device, str) else device).torch_device


def synthetic_batch(batch_size: int, resolution: int, device, channels_last: bool, seed: int = 0):
    """A seeded batch of normal images (N, 3, H, W) and uniform labels in [0, 1000), on ``device``."""
    import torch

    device = _place(device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, resolution, resolution, generator=gen)
    y = torch.randint(0, 1000, (batch_size,), generator=gen)
    x = x.to(device).contiguous(memory_format=memory_format(channels_last))
    return x, y.to(device)


def inference_scenario(model, x, y, device, precision: str) -> Scenario:
    """A forward pass under ``inference_mode`` and the precision's autocast."""
    import torch

    model.eval()

    def step():
        with torch.inference_mode(), autocast(device, precision):
            return model(x)

    return Scenario(step, x, y, None)


def train_scenario(model, x, y, device, precision: str, lr: float = 0.01) -> Scenario:
    """One training step: forward, cross-entropy, backward, SGD with momentum 0.9; GradScaler for fp16."""
    import torch
    import torch.nn.functional as F

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    from harness.measure import device as devices

    dev = devices.get(device) if isinstance(device, str) else device
    scaler = torch.amp.GradScaler(dev.autocast_type) if precision == "amp_fp16" else None

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = F.cross_entropy(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return loss

    return Scenario(step, x, y, optimizer)


def make_scenario(mode: str, model, x, y, device, precision: str) -> Scenario:
    """The scenario of ``mode`` (``inference`` or ``train``)."""
    if mode == "train":
        return train_scenario(model, x, y, device, precision)
    return inference_scenario(model, x, y, device, precision)
