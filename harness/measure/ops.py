"""Operation counts with torch's FlopCounterMode, on the meta device so counting costs no compute.

FlopCounterMode counts 2 FLOPs per multiply-accumulate for convolutions and matmuls, so MACs = FLOPs / 2, the unit
of torchvision's ``_ops``. Counting runs once per (model, resolution), outside any timed loop.
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
def _forward_flops(model_name: str, resolution: int) -> float:
    """FlopCounterMode's forward FLOPs per image (convolutions and the fc layer, 2 per multiply-accumulate), counted
    once per (model, resolution): per image they depend on neither precision, memory format, batch nor mode (a
    training step's count is derived from it in ``count_ops``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from harness.zoo import build_model

    with torch.device("meta"):
        model = build_model(model_name).eval()
        x = torch.empty(2, 3, resolution, resolution)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops()) / 2


def stem_flops(resolution: int) -> float:
    """FLOPs per image of the 7x7 stride-2 stem convolution (3 -> 64 channels) at ``resolution``."""
    out = (resolution + 2 * 3 - 7) // 2 + 1
    return 2.0 * 64 * 3 * 7 * 7 * out * out


@cache
def count_ops(model_name: str, resolution: int = 224, mode: str = "inference") -> OpCount:
    """Count FLOPs per image of ``model_name`` at ``resolution`` (forward only, or forward+backward for train).

    The forward is counted by FlopCounterMode on the meta device: shapes propagate and every op is seen, but no
    memory is allocated and nothing is computed. A training step's FLOPs are derived from it: the backward of each
    convolution and matmul costs two forwards (the input gradient and the weight gradient) except the stem, whose
    input needs no gradient. FlopCounterMode's own backward count is not used, because it ignores ``groups`` in
    the convolution backward and overcounts ResNeXt's grouped 3x3 convolutions by the group count.
    """
    from harness.zoo import get_entry

    entry = get_entry(model_name)
    forward = _forward_flops(model_name, resolution)
    flops = 3 * forward - stem_flops(resolution) if mode == "train" else forward
    return OpCount(flops_per_img=flops, macs_per_img=forward / 2, stated_gmacs=entry.stated_gmacs(resolution))
