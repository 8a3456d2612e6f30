"""Peak FLOP/s measured on this CPU (matmul and convolution per dtype and memory format, copy bandwidth), and the
MFU of a real resnet18 forward against it. The run-level probes (start, end, spread) are in ``test_health.py``."""

from __future__ import annotations

import time

import pytest

from harness.errors import HarnessError
from harness.measure.peak import CPU_DTYPES, measure_peak, mfu, peak_for_case, peak_for_precision


@pytest.fixture(scope="module")
def cpu_peak():
    return measure_peak("cpu", budget_s=1.4)


def test_cpu_peak_measures_matmul_conv_and_copy_bandwidth(cpu_peak):
    tflops, conv = cpu_peak["matmul_tflops"], cpu_peak["conv_tflops"]
    assert tflops["fp32"] > 0 and conv["fp32"] > 0 and conv["fp32_cl"] > 0
    # 2 cores cannot reach 10 TFLOP/s in fp32: a larger number means the timing did not wait for the work
    assert tflops["fp32"] < 10 and conv["fp32"] < 10
    assert set(tflops) | set(cpu_peak["skipped"]) == set(CPU_DTYPES)
    # every dtype in both memory formats: measured, or skipped with the reason
    assert set(conv) | set(cpu_peak["conv_skipped"]) == {f"{d}{cl}" for d in CPU_DTYPES for cl in ("", "_cl")}
    assert cpu_peak["copy_gbps"] > 0
    assert "2n^3" in cpu_peak["method"] and "channels_last" in cpu_peak["method"] and cpu_peak["device"] == "cpu"
    assert cpu_peak["matrix_size"]["fp32"] in (512, 1024, 2048) and cpu_peak["conv_batch"] >= 1
    assert cpu_peak["budget_s"] == 1.4 and cpu_peak["seconds"] > 0


def test_mfu_of_a_resnet18_forward_is_a_fraction(cpu_peak):
    import torch

    from harness.measure.ops import count_ops
    from harness.zoo import build_model

    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    x = torch.randn(8, 3, 64, 64)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        images, t = 0, time.perf_counter()
        while time.perf_counter() - t < 0.5:
            model(x)
            images += x.shape[0]
        seconds = time.perf_counter() - t
    achieved = count_ops("resnet18", 64, "inference").flops_per_img * images / seconds / 1e12
    # a peak measured while another process held a core would put MFU above 1: take the best of a peak before and
    # two after the forward, as a run takes the best of its start and end probes
    peaks = [peak_for_case(cpu_peak, "fp32", False)]
    peaks += [peak_for_case(measure_peak("cpu", budget_s=1.4), "fp32", False) for _ in range(2)]
    peak = max(peaks)
    value = mfu(achieved, peak)
    assert value is not None and 0 < value < 1, (achieved, peak)


def test_precision_maps_to_its_matmul_dtype():
    """``peak_for_precision`` is the matmul figure alone (what datasheets quote); MFU uses ``peak_for_case``."""
    peak = {"matmul_tflops": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 311.0}}
    assert peak_for_precision(peak, "fp32") == 19.5
    assert peak_for_precision(peak, "tf32") == 156.0
    assert peak_for_precision(peak, "amp_fp16") == 311.0
    assert peak_for_precision(peak, "amp_bf16") == 312.0
    assert peak_for_precision({"matmul_tflops": {"fp32": 1.0}}, "amp_fp16") is None
    assert peak_for_precision(None, "fp32") is None
    assert peak_for_precision(peak, "int8") is None


def test_mfu_is_none_safe():
    assert mfu(50.0, 200.0) == pytest.approx(0.25)
    assert mfu(None, 200.0) is None
    assert mfu(50.0, None) is None
    assert mfu(50.0, 0.0) is None
    assert mfu(float("nan"), 1.0) is None


@pytest.mark.parametrize("device", ["tpu", "cuda:99"])
def test_unusable_device_is_a_clear_error(device):
    with pytest.raises(HarnessError, match=device):
        measure_peak(device, budget_s=0.01)


@pytest.mark.gpu
def test_cuda_peak_orders_dtypes():
    peak = measure_peak("cuda", budget_s=6.0)
    tflops, conv = peak["matmul_tflops"], peak["conv_tflops"]
    assert tflops["fp32"] > 0 and tflops["fp16"] > tflops["fp32"]
    # tensor cores: fp16 convolutions beat fp32 ones (TF32 off), in both memory formats
    assert conv["fp16"] > conv["fp32"] and conv["fp16_cl"] > conv["fp32_cl"]
    assert peak["copy_gbps"] > 50
