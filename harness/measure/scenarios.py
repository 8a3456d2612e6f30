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


class MomentumSGD:
    """SGD with momentum 0.9 as ``torch.optim.SGD(params, lr, momentum=0.9)`` runs it: the same update, torch's own
    (the functional ``torch.optim.sgd.sgd`` that ``SGD.step`` calls, with its choice of the for-loop, foreach or
    fused kernels), the same ``param_groups`` and ``state`` (``momentum_buffer`` per parameter), so a GradScaler
    steps it as it steps a torch optimizer.

    It is not a ``torch.optim.Optimizer`` because building one imports ``torch._dynamo`` (its ``add_param_group``
    and ``zero_grad`` are dynamo-disabled, and ``SGD.step`` calls ``graph_break``): 73 MiB that stay resident for
    the rest of the run on the CPU, for a compiler no eager case uses. A compiled case imports it anyway.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9) -> None:
        self.param_groups = [{"params": list(params), "lr": lr, "momentum": momentum, "dampening": 0.0}]
        self.state: dict = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_().zero_()

    def step(self, closure=None):
        import torch
        from torch.optim.sgd import sgd

        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                grads = [p.grad for p in params]
                buffers = [self.state.get(p, {}).get("momentum_buffer") for p in params]
                sgd(
                    params,
                    grads,
                    buffers,
                    weight_decay=0.0,
                    momentum=group["momentum"],
                    lr=group["lr"],
                    dampening=group["dampening"],
                    nesterov=False,
                    maximize=False,
                    grad_scale=getattr(self, "grad_scale", None),
                    found_inf=getattr(self, "found_inf", None),
                )
                for p, buffer in zip(params, buffers, strict=True):
                    self.state.setdefault(p, {})["momentum_buffer"] = buffer
        return loss


def train_scenario(model, x, y, device, precision: str, lr: float = 0.01) -> Scenario:
    """One training step: forward, cross-entropy, backward, SGD with momentum 0.9 (``MomentumSGD``); GradScaler for
    fp16."""
    import torch
    import torch.nn.functional as F

    model.train()
    optimizer = MomentumSGD(model.parameters(), lr=lr, momentum=0.9)
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
