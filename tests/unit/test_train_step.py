"""The training step's optimizer: torch.optim.SGD's update, without importing the compiler stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from harness.measure.scenarios import MomentumSGD, train_scenario
from harness.zoo import build_model

ROOT = Path(__file__).resolve().parents[2]


def _steps_with_torch_sgd(model, x, y, precision: str, n: int):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu") if precision == "amp_fp16" else None
    dtype = {"amp_fp16": torch.float16, "amp_bf16": torch.bfloat16}.get(precision)
    for _ in range(n):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    return optimizer


@pytest.mark.parametrize("precision", ["fp32", "amp_bf16", "amp_fp16"])
def test_the_training_step_updates_the_weights_as_torch_optim_sgd_does(precision):
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 1000, (2,))
    ours, theirs = build_model("resnet18"), build_model("resnet18")
    theirs.load_state_dict(ours.state_dict())
    scenario = train_scenario(ours, x, y, "cpu", precision)
    for _ in range(3):
        scenario.step()
    theirs.train()
    reference = _steps_with_torch_sgd(theirs, x, y, precision, 3)
    differ = [k for k, v in ours.state_dict().items() if not torch.equal(v, theirs.state_dict()[k])]
    assert differ == []
    # The momentum is kept per parameter as torch keeps it (none where a GradScaler skipped every step).
    kept = [scenario.optimizer.state.get(p, {}).get("momentum_buffer") for p in ours.parameters()]
    expected = [reference.state[p].get("momentum_buffer") for p in theirs.parameters()]
    assert [k is None for k in kept] == [e is None for e in expected]
    assert all(k is None or torch.equal(k, e) for k, e in zip(kept, expected, strict=True))
    assert precision == "amp_fp16" or all(k is not None for k in kept)


def test_zero_grad_keeps_or_drops_the_gradients():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    optimizer = MomentumSGD([p], lr=0.1)
    optimizer.zero_grad(set_to_none=False)
    assert torch.equal(p.grad, torch.zeros(3))
    optimizer.zero_grad()
    assert p.grad is None


def test_a_training_case_does_not_import_the_compiler():
    """Building a torch.optim optimizer imports torch._dynamo, which then stays resident for the whole run (73 MiB
    on the CPU); an eager training case of the harness must not."""
    code = (
        "import sys, torch\n"
        "from harness.measure.scenarios import synthetic_batch, train_scenario\n"
        "from harness.zoo import build_model\n"
        "x, y = synthetic_batch(2, 32, 'cpu', False)\n"
        "scenario = train_scenario(build_model('resnet18'), x, y, 'cpu', 'amp_bf16')\n"
        "scenario.step(); scenario.step()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr
