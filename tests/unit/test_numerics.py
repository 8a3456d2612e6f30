"""Numerics against fp32 on CPU: resnet18 under bf16 autocast, overflow and NaN detection, state left untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.errors import HarnessError
from harness.measure.numerics import NumericsError, compare_with_fp32
from harness.zoo import build_model


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return build_model("resnet18")


@pytest.fixture
def x():
    return torch.randn(4, 3, 48, 48, generator=torch.Generator().manual_seed(1))


def test_bf16_resnet18_agreement_and_error(resnet18, x):
    out = compare_with_fp32(resnet18, x, "amp_bf16", "cpu")
    assert set(out) == {"top1_agreement", "max_rel_err"}
    assert 0.0 <= out["top1_agreement"] <= 1.0
    assert out["top1_agreement"] * x.shape[0] == pytest.approx(round(out["top1_agreement"] * x.shape[0]))
    # bf16 keeps 8 mantissa bits: the error is visible but far below the output's own scale
    assert 0 < out["max_rel_err"] < 0.5


def test_channels_last_gives_the_same_kind_of_answer(resnet18, x):
    out = compare_with_fp32(resnet18.to(memory_format=torch.channels_last), x, "amp_bf16", "cpu", channels_last=True)
    resnet18.to(memory_format=torch.contiguous_format)
    assert 0.0 <= out["top1_agreement"] <= 1.0 and out["max_rel_err"] > 0


def test_tf32_on_cpu_is_exact_because_cpus_ignore_tf32(resnet18, x):
    out = compare_with_fp32(resnet18, x, "tf32", "cpu")
    assert out == {"top1_agreement": 1.0, "max_rel_err": 0.0}


def test_fp32_case_has_no_numerics(resnet18, x):
    assert compare_with_fp32(resnet18, x, "fp32", "cpu") == {"top1_agreement": None, "max_rel_err": None}


def test_model_mode_stats_and_flags_are_restored(resnet18, x):
    resnet18.train()
    before = resnet18.bn1.running_mean.clone()
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    compare_with_fp32(resnet18, x, "tf32", "cpu")
    assert resnet18.training
    assert torch.equal(resnet18.bn1.running_mean, before)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, True)
    resnet18.eval()


class NaNModel(nn.Module):
    def forward(self, x):
        out = x.flatten(1)[:, :10].clone()
        out[0, 3] = float("nan")
        return out


def test_nan_output_is_a_numerics_error(x):
    with pytest.raises(NumericsError, match="1 NaN"):
        compare_with_fp32(NaNModel(), x, "amp_bf16", "cpu")


def test_fp16_overflow_is_caught_where_fp32_is_fine():
    # 64 inputs of 100 times weights of 100: 640000 per logit, finite in fp32, beyond fp16's 65504
    model = nn.Linear(64, 10, bias=False)
    nn.init.constant_(model.weight, 100.0)
    inp = torch.full((2, 64), 100.0)
    with pytest.raises(NumericsError, match=r"amp_fp16 output has 0 NaN and \d+ Inf"):
        compare_with_fp32(model, inp, "amp_fp16", "cpu")


def test_unknown_precision_is_a_clear_error(resnet18, x):
    with pytest.raises(HarnessError, match="'fp8'.*amp_bf16"):
        compare_with_fp32(resnet18, x, "fp8", "cpu")
