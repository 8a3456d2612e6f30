"""Operation counts with torch's FlopCounterMode, on the meta device so counting costs no compute.

FlopCounterMode counts 2 FLOPs per multiply-accumulate for convolutions and matmuls, so MACs = FLOPs / 2, the unit
of torchvision's ``_ops``. Counting runs once per (model, resolution), outside any timed loop.

A run counts in a child process (``python -m harness.measure.ops MODEL:RESOLUTION ...``), once, for every pair its
cases will need (``plan``): FlopCounterMode is a TorchDispatchMode, and the first dispatch through one imports
``torch._dynamo`` and the fake-tensor machinery, 75 MiB or more that would then stay resident in the worker for
the rest of the run, through its largest case. Where the child cannot count, or the compiler is already loaded (a
compiled case ran), the count is made in this process; either way it is the same count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

#: (model, resolution) pairs the run's cases will ask for, and the counts a child process made for them.
_PLANNED: set[tuple[str, int]] = set()
_COUNTED: dict[tuple[str, int], float] = {}
CHILD_TIMEOUT_S = 300.0


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


def plan(pairs: Iterable[tuple[str, int]]) -> None:
    """Note the (model, resolution) pairs a run will count: the first count asked for then counts them all in one
    child process."""
    _PLANNED.update((str(m), int(r)) for m, r in pairs)


def _count_in_child(pairs: list[tuple[str, int]]) -> dict[tuple[str, int], float]:
    """The forward FLOPs of ``pairs`` counted by a child Python; {} where it fails (the caller counts here)."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "harness.measure.ops", *(f"{m}:{r}" for m, r in pairs)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT_S)
        counts = json.loads(done.stdout) if done.returncode == 0 else {}
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    return {(m, int(r)): float(v) for key, v in counts.items() for m, r in [key.rsplit(":", 1)]}


@cache
def _forward_flops(model_name: str, resolution: int) -> float:
    """FlopCounterMode's forward FLOPs per image (convolutions and the fc layer, 2 per multiply-accumulate), counted
    once per (model, resolution): per image they depend on neither precision, memory format, batch nor mode (a
    training step's count is derived from it in ``count_ops``). Planned pairs are counted in a child process."""
    key = (model_name, resolution)
    if key in _PLANNED and key not in _COUNTED and "torch._dynamo" not in sys.modules:
        _COUNTED.update(_count_in_child(sorted(_PLANNED - set(_COUNTED))))
        _PLANNED.difference_update(_COUNTED)
        _PLANNED.discard(key)  # counted here if the child could not
    if key in _COUNTED:
        return _COUNTED[key]
    return count_forward_here(model_name, resolution)


def count_forward_here(model_name: str, resolution: int) -> float:
    """FlopCounterMode's forward FLOPs per image of ``model_name`` at ``resolution``, counted in this process."""
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


def main(argv: list[str]) -> int:
    """Child entry: print a JSON object of forward FLOPs per image for each ``MODEL:RESOLUTION`` argument."""
    counts = {}
    for arg in argv:
        model, resolution = arg.rsplit(":", 1)
        counts[arg] = count_forward_here(model, int(resolution))
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
