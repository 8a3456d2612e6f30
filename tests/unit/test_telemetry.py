"""Telemetry: the arithmetic over recorded readings, the NVML reader against a scripted pynvml, and absence."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pynvml
import pytest

from harness.measure.telemetry import (
    NvmlReader,
    Reading,
    TelemetrySampler,
    decode_reasons,
    integrate_power_j,
    summarise,
)
from harness.store.record import TELEMETRY_FIELDS


class ReplayReader:
    """Plays back recorded readings and energy counter values, one per call, repeating the last when exhausted."""

    def __init__(self, readings, energy_mj):
        self.readings, self.energy = list(readings), list(energy_mj)
        self.closed = False

    def read(self):
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]

    def energy_mj(self):
        return self.energy.pop(0) if len(self.energy) > 1 else self.energy[0]

    def close(self):
        self.closed = True


def reading(t, power=None, sm=None, mem=None, temp=None, util=None, used=None, mask=None):
    return Reading(t, power, sm, mem, temp, util, used, mask)


RECORDED = [
    reading(0.0, power=100.0, sm=1400, mem=5000, temp=60, util=90, used=1000, mask=0x0),
    reading(1.0, power=200.0, sm=1300, mem=5000, temp=65, util=100, used=3000, mask=0x4),
    reading(2.0, power=300.0, sm=1200, mem=5000, temp=70, util=95, used=2000, mask=0x4 | 0x20),
]


def test_energy_from_counter_difference_in_joules():
    out = summarise(RECORDED, energy_start_mj=1_000_000.0, energy_end_mj=1_450_000.0, images=900)
    assert set(out) == set(TELEMETRY_FIELDS)
    assert out["energy_j"] == pytest.approx(450.0)
    assert out["img_per_j"] == pytest.approx(2.0)


def test_energy_integrates_power_when_counter_unsupported():
    out = summarise(RECORDED, energy_start_mj=None, energy_end_mj=None, images=800)
    # trapezoids: (100+200)/2 * 1 s + (200+300)/2 * 1 s
    assert out["energy_j"] == pytest.approx(400.0)
    assert out["img_per_j"] == pytest.approx(2.0)


def test_counter_that_did_not_advance_falls_back_to_power():
    out = summarise(RECORDED, energy_start_mj=5000.0, energy_end_mj=5000.0, images=800)
    assert out["energy_j"] == pytest.approx(400.0)


def test_integration_uses_actual_sample_times_and_bridges_gaps():
    uneven = [reading(0.0, power=100.0), reading(0.5), reading(3.0, power=100.0)]
    assert integrate_power_j(uneven) == pytest.approx(300.0)
    assert integrate_power_j([reading(0.0, power=100.0)]) is None


def test_averages_maxima_and_reasons():
    out = summarise(RECORDED, None, None, images=10)
    assert out["power_avg_w"] == pytest.approx(200.0)
    assert out["power_max_w"] == pytest.approx(300.0)
    assert out["sm_clock_mhz"] == pytest.approx(1300.0)
    assert out["mem_clock_mhz"] == pytest.approx(5000.0)
    assert out["temperature_c"] == 70
    assert out["utilization_pct"] == pytest.approx(95.0)
    assert out["memory_used_mib"] == 3000
    assert out["throttle_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]


def test_decode_reasons_uses_nvml_constants():
    mask = (
        pynvml.nvmlClocksEventReasonGpuIdle
        | pynvml.nvmlClocksEventReasonHwSlowdown
        | pynvml.nvmlClocksEventReasonHwThermalSlowdown
        | pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown
        | pynvml.nvmlClocksEventReasonSyncBoost
        | pynvml.nvmlClocksEventReasonApplicationsClocksSetting
        | pynvml.nvmlClocksEventReasonDisplayClockSetting
    )
    assert decode_reasons(mask) == [
        "applications_clocks_setting",
        "display_clock_setting",
        "gpu_idle",
        "hw_power_brake_slowdown",
        "hw_slowdown",
        "hw_thermal_slowdown",
        "sync_boost",
    ]
    assert decode_reasons(0) == []
    assert decode_reasons(1 << 40) == ["unknown_0x10000000000"]


def test_no_energy_means_no_images_per_joule():
    no_power = [reading(0.0, sm=1000), reading(1.0, sm=1000)]
    out = summarise(no_power, None, None, images=100)
    assert out["energy_j"] is None and out["img_per_j"] is None and out["power_avg_w"] is None
    assert out["sm_clock_mhz"] == 1000
    assert out["throttle_reasons"] is None  # never readable, unlike "readable and empty"


def test_sampler_replays_a_window():
    reader = ReplayReader(RECORDED, energy_mj=[2_000.0, 302_000.0])
    sampler = TelemetrySampler("cuda:0", interval_ms=60_000, reader=reader)
    sampler.start()
    out = sampler.stop(images=600)
    assert [r.t_s for r in sampler.readings] == [0.0, 1.0]  # the start and stop readings, no sleep elapsed
    assert out["energy_j"] == pytest.approx(300.0)
    assert out["img_per_j"] == pytest.approx(2.0)
    assert out["power_max_w"] == 200.0
    sampler.close()
    assert reader.closed


def test_sampler_thread_samples_at_its_interval():
    reader = ReplayReader([reading(0.0, power=50.0)], energy_mj=[None])
    sampler = TelemetrySampler("cuda:0", interval_ms=5, reader=reader)
    sampler.start()
    time.sleep(0.2)
    out = sampler.stop(images=1)
    # 0.2 s at 5 ms is ~40 samples; a loose floor that still fails when the thread never samples
    assert len(sampler.readings) >= 10
    assert out["power_avg_w"] == 50.0


def fake_nvml(**overrides):
    """A pynvml stand-in that answers every query; ``overrides`` replace single functions (e.g. to raise)."""

    def raise_(exc):
        def fn(*args):
            raise exc

        return fn

    values = {pynvml.NVML_CLOCK_SM: 1410, pynvml.NVML_CLOCK_MEM: 1215}
    module = SimpleNamespace(
        NVMLError=pynvml.NVMLError,
        NVMLError_NotSupported=pynvml.NVMLError_NotSupported,
        NVMLError_FunctionNotFound=pynvml.NVMLError_FunctionNotFound,
        NVML_CLOCK_SM=pynvml.NVML_CLOCK_SM,
        NVML_CLOCK_MEM=pynvml.NVML_CLOCK_MEM,
        NVML_TEMPERATURE_GPU=pynvml.NVML_TEMPERATURE_GPU,
        nvmlDeviceGetPowerUsage=lambda h: 250_000,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=97, memory=40),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=2 * 2**30, total=40 * 2**30, free=38 * 2**30),
        nvmlDeviceGetClockInfo=lambda h, kind: values[kind],
        nvmlDeviceGetTemperature=lambda h, sensor: 71,
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: pynvml.nvmlClocksEventReasonSwPowerCap,
        nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: pynvml.nvmlClocksThrottleReasonHwSlowdown,
        nvmlDeviceGetTotalEnergyConsumption=lambda h: 123_456,
        nvmlShutdown=lambda: None,
    )
    for name, exc in overrides.items():
        setattr(module, name, raise_(exc))
    return module


def test_nvml_reader_units():
    reader = NvmlReader(handle=object(), nvml=fake_nvml())
    r = reader.read()
    assert (r.power_w, r.sm_clock_mhz, r.mem_clock_mhz, r.temperature_c) == (250.0, 1410, 1215, 71)
    assert (r.utilization_pct, r.memory_used_mib) == (97, 2048.0)
    assert decode_reasons(r.reasons_mask) == ["sw_power_cap"]
    assert reader.energy_mj() == 123_456


def test_one_unsupported_query_nulls_only_its_field():
    nvml = fake_nvml(nvmlDeviceGetTemperature=pynvml.NVMLError_NotSupported())
    reader = NvmlReader(handle=object(), nvml=nvml)
    sampler = TelemetrySampler("cuda:0", interval_ms=60_000, reader=reader)
    sampler.start()
    out = sampler.stop(images=10)
    assert out["temperature_c"] is None
    assert out["power_avg_w"] == 250.0 and out["sm_clock_mhz"] == 1410 and out["throttle_reasons"] == ["sw_power_cap"]


def test_unsupported_energy_counter_falls_back_to_power_through_the_reader():
    nvml = fake_nvml(nvmlDeviceGetTotalEnergyConsumption=pynvml.NVMLError_NotSupported())
    sampler = TelemetrySampler("cuda:0", interval_ms=60_000, reader=NvmlReader(object(), nvml))
    sampler.start()
    time.sleep(0.05)
    out = sampler.stop(images=10)
    window = sampler.readings[-1].t_s - sampler.readings[0].t_s
    assert out["energy_j"] == pytest.approx(250.0 * window)
    assert out["img_per_j"] == pytest.approx(10 / (250.0 * window))


def test_any_nvml_error_nulls_the_field_and_old_drivers_use_the_throttle_api():
    nvml = fake_nvml(
        nvmlDeviceGetPowerUsage=pynvml.NVMLError_GpuIsLost(),
        nvmlDeviceGetCurrentClocksEventReasons=pynvml.NVMLError_FunctionNotFound(),
    )
    r = NvmlReader(object(), nvml).read()
    assert r.power_w is None
    assert decode_reasons(r.reasons_mask) == ["hw_slowdown"]


@pytest.mark.parametrize("device", ["cpu", "cuda:7"])
def test_no_nvml_or_no_gpu_gives_every_field_null(device):
    sampler = TelemetrySampler(device)
    if device == "cuda:7" and sampler.available:
        pytest.skip("this machine has an NVML device at cuda:7")
    assert sampler.unavailable
    sampler.start()
    out = sampler.stop(images=100)
    assert out == {name: None for name in TELEMETRY_FIELDS}
    sampler.close()


@pytest.mark.gpu
def test_real_device_reports_power_and_clocks():
    import torch

    sampler = TelemetrySampler("cuda", interval_ms=20)
    assert sampler.available, sampler.unavailable
    x = torch.randn(4096, 4096, device="cuda")
    sampler.start()
    t = time.monotonic()
    while time.monotonic() - t < 1.0:
        x = x @ x
        x = x / x.norm()
    torch.cuda.synchronize()
    out = sampler.stop(images=1000)
    sampler.close()
    assert len(sampler.readings) >= 20
    assert out["sm_clock_mhz"] and out["sm_clock_mhz"] > 0
    assert out["memory_used_mib"] and out["memory_used_mib"] > 64  # the 64 MiB matrix lives on the device
    assert out["energy_j"] is None or out["energy_j"] > 0
    assert isinstance(out["throttle_reasons"], list) or out["throttle_reasons"] is None
