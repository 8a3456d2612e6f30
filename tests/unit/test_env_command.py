"""``harness env``: the fingerprint as a table and as JSON, clear errors for bad devices, tolerant GPU queries."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pynvml
import pytest
import torch

from harness.cli import main
from harness.commands.env import _gpus, gpu_rows, gpu_state
from harness.measure.telemetry import NvmlReader
from harness.store.fingerprint import cpu_model
from tests.conftest import run_cli
from tests.unit.test_telemetry import FakeGpu, FakeNvml, fake_cuda

NO_CUDA = not torch.cuda.is_available()


def test_env_prints_versions_cpu_and_gpu_status():
    proc = run_cli("env")
    assert proc.returncode == 0, proc.stderr
    assert torch.__version__ in proc.stdout
    assert cpu_model() in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("  torch ")]
    assert len(lines) == 1
    if NO_CUDA:
        assert "no CUDA device: GPU checks skipped" in proc.stdout


def test_env_json_parses():
    proc = run_cli("env", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["environment"]["torch"] == torch.__version__
    assert data["environment"]["cpu_model"] == cpu_model()
    if NO_CUDA:
        assert data["device"] == "cpu" and data["gpus"] == []
        assert data["gpu_checks"] == "no CUDA device: GPU checks skipped"


def test_bad_device_is_a_one_line_error(capsys):
    assert main(["env", "--device", "gpu0"]) == 2
    err = capsys.readouterr().err
    assert "'gpu0' is not a device" in err and "cuda:N" in err and "Traceback" not in err


@pytest.mark.skipif(not NO_CUDA, reason="checks the message for a machine without CUDA")
def test_cuda_without_a_gpu_says_so(capsys):
    assert main(["env", "--device", "cuda"]) == 2
    assert "no CUDA device is visible" in capsys.readouterr().err


def _nvml(**unsupported):
    def fails(*args):
        raise pynvml.NVMLError_NotSupported()

    clocks = {pynvml.NVML_CLOCK_SM: (1095, 1410, 1275), pynvml.NVML_CLOCK_MEM: (1215, 1215, 1215)}
    module = SimpleNamespace(
        NVMLError=pynvml.NVMLError,
        NVMLError_NotSupported=pynvml.NVMLError_NotSupported,
        NVMLError_FunctionNotFound=pynvml.NVMLError_FunctionNotFound,
        NVML_CLOCK_SM=pynvml.NVML_CLOCK_SM,
        NVML_CLOCK_MEM=pynvml.NVML_CLOCK_MEM,
        NVML_TEMPERATURE_GPU=pynvml.NVML_TEMPERATURE_GPU,
        nvmlDeviceGetName=lambda h: "NVIDIA A100-SXM4-40GB",
        nvmlDeviceGetClockInfo=lambda h, kind: clocks[kind][0],
        nvmlDeviceGetMaxClockInfo=lambda h, kind: clocks[kind][1],
        nvmlDeviceGetApplicationsClock=lambda h, kind: clocks[kind][2],
        nvmlDeviceGetMigMode=lambda h: [0, 0],
        nvmlDeviceGetPowerUsage=lambda h: 61_000,
        nvmlDeviceGetPowerManagementLimit=lambda h: 300_000,
        nvmlDeviceGetPowerManagementDefaultLimit=lambda h: 400_000,
        nvmlDeviceGetTemperature=lambda h, s: 34,
        nvmlDeviceGetPersistenceMode=lambda h: 1,
        nvmlDeviceGetComputeMode=lambda h: 3,
        nvmlDeviceGetEccMode=lambda h: [1, 0],
        nvmlDeviceGetCurrPcieLinkGeneration=lambda h: 3,
        nvmlDeviceGetMaxPcieLinkGeneration=lambda h: 4,
        nvmlDeviceGetCurrPcieLinkWidth=lambda h: 16,
        nvmlDeviceGetMaxPcieLinkWidth=lambda h: 16,
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0x1 | 0x4,
    )
    for name in unsupported:
        setattr(module, name, fails)
    return module


def test_gpu_state_reads_and_formats_every_setting():
    gpu = gpu_state(NvmlReader(object(), _nvml()))
    assert gpu["power_limit_w"] == 300.0 and gpu["power_default_limit_w"] == 400.0
    assert (gpu["persistence_mode"], gpu["compute_mode"], gpu["ecc"]) == (
        "on",
        "exclusive_process",
        "on (pending change)",
    )
    rows = dict(gpu_rows(gpu))
    assert rows["SM clock"] == "1095 MHz (max 1410 MHz)"
    assert rows["power limit"] == "300 W (default 400 W)"
    assert rows["PCIe link"] == "gen 3 (max 4), x16 (max 16)"
    assert rows["throttle reasons"] == "gpu_idle, sw_power_cap"


def test_unsupported_queries_show_na_and_the_rest_still_read():
    nvml = _nvml(nvmlDeviceGetEccMode=True, nvmlDeviceGetPowerManagementDefaultLimit=True, nvmlDeviceGetName=True)
    rows = dict(gpu_rows(gpu_state(NvmlReader(object(), nvml))))
    assert rows["ECC"] == "n/a" and rows["name"] == "n/a"
    assert rows["power limit"] == "300 W (default n/a)"
    assert rows["compute mode"] == "exclusive_process"


def test_env_shows_application_clocks_and_mig_mode():
    rows = dict(gpu_rows(gpu_state(NvmlReader(object(), _nvml()))))
    assert rows["application clocks"] == "SM 1275 MHz, memory 1215 MHz"
    assert rows["MIG mode"] == "off"
    rows = dict(gpu_rows(gpu_state(NvmlReader(object(), _nvml(nvmlDeviceGetApplicationsClock=True)))))
    assert rows["application clocks"] == "SM n/a, memory n/a"


def test_env_on_a_mig_slice_shows_its_gpu_settings_and_says_so():
    parent = FakeGpu("GPU-aaaa", slices=[FakeGpu.mig_slice("MIG-bbbb", used_gib=1)], nvmlDeviceGetPowerUsage=90_000)
    gpu = gpu_state(NvmlReader(parent.slices[0], FakeNvml([parent]), parent=parent))
    assert gpu["name"] == "NVIDIA H100 80GB HBM3 MIG 1g.10gb"  # the slice's
    assert (gpu["power_w"], gpu["power_limit_w"], gpu["app_sm_clock_mhz"]) == (90.0, 700.0, 1755)  # the GPU's
    assert gpu["mig_mode"] == "on" and gpu["mig_slice"] is True
    assert dict(gpu_rows(gpu))["MIG mode"] == "on; this device is a MIG slice: the settings shown are its whole GPU's"


def test_env_goes_on_past_a_gpu_nvml_cannot_open(monkeypatch, capsys):
    nvml = FakeNvml(
        [
            FakeGpu("GPU-0000"),
            FakeGpu("GPU-1111", unreadable=pynvml.NVMLError_NoPermission()),
            FakeGpu("GPU-2222", nvmlDeviceGetPowerUsage=123_000),
        ]
    )
    fake_cuda(monkeypatch, nvml, ["GPU-0000", "GPU-1111", "GPU-2222"])
    gpus, skipped = _gpus("cuda")
    assert [g["device"] for g in gpus] == ["cuda:0", "cuda:2"]
    assert gpus[1]["power_w"] == 123.0
    assert skipped == "GPU checks skipped for cuda:1 (NVML cannot read cuda:1 (1111): Insufficient Permissions)"
    assert main(["env", "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "GPU cuda:0" in out and "GPU cuda:2" in out and "GPU cuda:1" not in out
    assert out.rstrip().endswith(skipped)


@pytest.mark.gpu
def test_env_on_a_gpu_lists_its_settings():
    proc = run_cli("env", "--device", "cuda:0")
    assert proc.returncode == 0, proc.stderr
    assert "GPU cuda:0" in proc.stdout and "power limit" in proc.stdout
