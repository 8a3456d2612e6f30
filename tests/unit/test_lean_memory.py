"""Restoring a cached model between cases without a copy of its weights, and freeing a training case's state."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest
import torch

from harness.measure.runner import CaseContext, ModelCache, measure_case
from harness.measure.scenarios import MomentumSGD
from harness.zoo import build_model
from harness.zoo.resnet import reinitialise
from tests.synthetic import tiny_case


def _equal_states(a, b) -> list[str]:
    """The state_dict keys whose tensors differ (torch.equal), buffers included."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


@pytest.mark.parametrize("name", ["resnet18", "resnext50_32x4d", "wide_resnet50_2"])
def test_reinitialise_gives_a_fresh_builds_weights_bit_for_bit(name):
    torch.manual_seed(5)
    model = build_model(name)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-3.0).add_(1.0)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.add_(2.0)
                m.num_batches_tracked.add_(7)
    torch.manual_seed(123)  # whatever the generator held before, the seed decides
    reinitialise(model, 5)
    after = torch.get_rng_state()
    torch.manual_seed(5)
    fresh = build_model(name)
    assert _equal_states(model, fresh) == []
    assert torch.equal(after, torch.get_rng_state())  # the generator is left where a build leaves it
    # Again, from the generator states the first call noted (the convolutions' overwritten draws skipped).
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    torch.manual_seed(77)
    reinitialise(model, 5)
    assert _equal_states(model, fresh) == []
    assert torch.equal(after, torch.get_rng_state())


def test_reinitialise_keeps_zero_init_residual():
    torch.manual_seed(1)
    model = build_model("resnet18", zero_init_residual=True)
    with torch.no_grad():
        model.layer1[0].bn2.weight.fill_(4.0)
    reinitialise(model, 1)
    assert float(model.layer1[0].bn2.weight.detach().abs().sum()) == 0.0


@pytest.fixture
def ctx(tmp_path) -> CaseContext:
    return CaseContext(run_id="r", suite="s", run_dir=Path(tmp_path), device="cpu", model_cache=ModelCache())


@pytest.mark.parametrize("channels_last", [False, True])
def test_after_a_training_case_the_next_case_gets_a_fresh_builds_state(ctx, channels_last):
    case = tiny_case(mode="train", channels_last=channels_last)
    cache = ctx.model_cache
    model = cache.get(case.model, case.impl, case.weights, ctx.dev, seed=case.seed, resolution=case.resolution)
    fresh = ModelCache().get(case.model, case.impl, case.weights, "cpu", seed=case.seed, resolution=case.resolution)
    assert _equal_states(model, fresh) == []
    assert measure_case(case, ctx)["status"] == "ok"
    assert _equal_states(cache.model, fresh)  # the training steps changed weights and BatchNorm statistics
    again = cache.get(case.model, case.impl, case.weights, ctx.dev, seed=case.seed, resolution=case.resolution)
    assert again is model  # restored in place, not built again
    assert _equal_states(again, fresh) == []  # calibrated running statistics and counts included


def test_the_cache_holds_no_copy_of_the_weights(ctx):
    case = tiny_case()
    model = ctx.model_cache.get(case.model, case.impl, case.weights, ctx.dev, seed=0, resolution=32)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    kept = [v for v in vars(ctx.model_cache).values() if isinstance(v, dict)]
    held = sum(t.numel() * t.element_size() for d in kept for t in d.values() if isinstance(t, torch.Tensor))
    assert held < weights / 50  # the BatchNorm statistics only


def test_a_training_case_leaves_no_gradients_or_optimizer_state(ctx):
    rec = measure_case(tiny_case(mode="train"), ctx)
    assert rec["status"] == "ok"
    model = ctx.model_cache.model
    assert all(p.grad is None for p in model.parameters())
    # Reachable or waiting for a collection: no optimizer of the case holds state (its momentum buffers).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance on every object touches deprecated module attributes
        optimizers = [o for o in gc.get_objects() if isinstance(o, (torch.optim.Optimizer, MomentumSGD))]
    assert all(not o.state for o in optimizers)
    assert all(
        not any(p is q for g in o.param_groups for q in g["params"]) for o in optimizers for p in model.parameters()
    )


def test_amp_cases_of_one_model_and_input_share_one_fp32_reference(ctx, monkeypatch):
    from harness.measure import numerics

    runs: list[str] = []
    real = numerics._forward
    monkeypatch.setattr(numerics, "_forward", lambda m, x, p, d: (runs.append(p), real(m, x, p, d))[1])
    first = measure_case(tiny_case(precision="amp_bf16"), ctx)
    second = measure_case(tiny_case(precision="amp_bf16", mode="train"), ctx)  # restored after training
    third = measure_case(tiny_case(precision="amp_bf16", batch_size=4), ctx)  # another input
    assert runs == ["fp32", "amp_bf16", "amp_bf16", "fp32", "amp_bf16"]
    assert first["numerics"] == second["numerics"]  # the same model state, input and precision
    alone = CaseContext(run_id="r", suite="s", run_dir=ctx.run_dir, device="cpu", model_cache=ModelCache())
    assert measure_case(tiny_case(precision="amp_bf16", mode="train"), alone)["numerics"] == second["numerics"]
    assert third["status"] == "ok"
