"""Operation counts with torch's FlopCounterMode, on the meta device so counting costs no compute.

FlopCounterMode counts 2 FLOPs per multiply-accumulate for convolutions and matmuls, so MACs = FLOPs / 2, the unit
of torchvision's ``_ops``. Counting runs once per (model, resolution, mode), outside any timed loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class OpCount:
    """FLOPs and MACs for one image, and the stated GMACs scaled to the same resolution."""

    flops_per_img: float
    macs_per_img: float
    stated_gmacs: float

    @property
    def ops_deviation(self) -> float:
        """Measured GMACs over stated GMACs, minus one (0.0 means exact agreement)."""
        return (self.macs_per_img / 1e9) / self.stated_gmacs - 1.0


@cache
def count_ops(model_name: str, resolution: int = 224, mode: str = "inference") -> OpCount:
    """Count FLOPs per image of ``model_name`` at ``resolution`` (forward only, or forward+backward for train).

    The model is built on the meta device: shapes propagate and FlopCounterMode sees every op, but no memory is
    allocated and nothing is computed, so even wide_resnet101_2 counts in well under a second.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from harness.zoo import build_model, get_entry

    entry = get_entry(model_name)
    with torch.device("meta"):
        model = build_model(model_name)
        # Two images: training-mode BatchNorm refuses a batch of one at 1x1 spatial size (32 px inputs).
        x = torch.empty(2, 3, resolution, resolution)
    if mode == "train":
        model.train()
    else:
        model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        if mode == "train":
            out = model(x)
            out.sum().backward()
        else:
            with torch.no_grad():
                model(x)
    flops = float(counter.get_total_flops()) / 2
    return OpCount(flops_per_img=flops, macs_per_img=flops / 2, stated_gmacs=entry.stated_gmacs(resolution))
