"""Telemetry: the arithmetic over recorded readings, the NVML reader against a scripted pynvml, and absence.

``FakeNvml`` and ``fake_cuda`` stand in for a whole machine (torch's CUDA devices and NVML's GPUs, MIG slices and
unreadable boards); the env command and fingerprint tests use them too.
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pynvml
import pytest
import torch

from harness.measure import telemetry
from harness.measure.telemetry import (
    NvmlReader,
    Reading,
    TelemetrySampler,
    decode_reasons,
    integrate_power_j,
    open_nvml_reader,
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


def test_compute_processes_of_the_device_and_none_where_nvml_cannot_list_them():
    procs = [SimpleNamespace(pid=11, usedGpuMemory=2**30), SimpleNamespace(pid=4242, usedGpuMemory=None)]
    nvml = fake_nvml()
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda h: procs
    assert NvmlReader(object(), nvml).compute_pids() == [11, 4242]
    unsupported = fake_nvml(nvmlDeviceGetComputeRunningProcesses=pynvml.NVMLError_NotSupported())
    assert NvmlReader(object(), unsupported).compute_pids() is None


class FakeGpu:
    """One NVML device (a GPU or a MIG slice) of a ``FakeNvml`` machine; it is its own handle.

    ``values`` replace single answers by pynvml function name: a value, a callable of the query's arguments, or
    an exception to raise. ``unreadable`` makes every call about this device raise it, its handle included.
    ``slices`` (MIG mode on) are its MIG slots: a ``FakeGpu`` per slice, None for an empty slot.
    """

    def __init__(self, uuid, *, slices=None, unreadable=None, **values):
        self.uuid, self.unreadable, self.parent = uuid, unreadable, None
        self.slices = slices
        for piece in slices or ():
            if piece is not None:
                piece.parent = self
        mig = [1, 1] if slices is not None else [0, 0]
        sm, mem = pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_MEM
        self.values = {
            "nvmlDeviceGetUUID": uuid,
            "nvmlDeviceGetName": "NVIDIA H100 80GB HBM3",
            "nvmlDeviceGetPowerUsage": 250_000,
            "nvmlDeviceGetUtilizationRates": SimpleNamespace(gpu=97, memory=40),
            "nvmlDeviceGetMemoryInfo": SimpleNamespace(used=2 * 2**30, total=80 * 2**30, free=78 * 2**30),
            "nvmlDeviceGetClockInfo": lambda kind: {sm: 1410, mem: 1215}[kind],
            "nvmlDeviceGetMaxClockInfo": lambda kind: {sm: 1980, mem: 2619}[kind],
            "nvmlDeviceGetApplicationsClock": lambda kind: {sm: 1755, mem: 2619}[kind],
            "nvmlDeviceGetTemperature": lambda sensor: 71,
            "nvmlDeviceGetCurrentClocksEventReasons": pynvml.nvmlClocksEventReasonSwPowerCap,
            "nvmlDeviceGetTotalEnergyConsumption": 123_456,
            "nvmlDeviceGetPowerManagementLimit": 700_000,
            "nvmlDeviceGetEnforcedPowerLimit": 700_000,
            "nvmlDeviceGetPowerManagementDefaultLimit": 700_000,
            "nvmlDeviceGetEccMode": [1, 1],
            "nvmlDeviceGetPersistenceMode": 1,
            "nvmlDeviceGetComputeMode": 0,
            "nvmlDeviceGetMigMode": mig,
            "nvmlDeviceGetMaxMigDeviceCount": len(slices or ()),
            "nvmlDeviceGetCurrPcieLinkGeneration": 5,
            "nvmlDeviceGetMaxPcieLinkGeneration": 5,
            "nvmlDeviceGetCurrPcieLinkWidth": 16,
            "nvmlDeviceGetMaxPcieLinkWidth": 16,
        }
        self.values.update(values)

    @classmethod
    def mig_slice(cls, uuid, used_gib):
        """A MIG slice as NVML answers for one: its own memory, no power, clocks, temperature or modes."""
        whole_gpu_only = {
            name: pynvml.NVMLError_NotSupported()
            for name in (
                "nvmlDeviceGetPowerUsage",
                "nvmlDeviceGetClockInfo",
                "nvmlDeviceGetTemperature",
                "nvmlDeviceGetCurrentClocksEventReasons",
                "nvmlDeviceGetTotalEnergyConsumption",
                "nvmlDeviceGetUtilizationRates",
                "nvmlDeviceGetPowerManagementLimit",
                "nvmlDeviceGetEnforcedPowerLimit",
                "nvmlDeviceGetApplicationsClock",
                "nvmlDeviceGetMigMode",
            )
        }
        memory = SimpleNamespace(used=used_gib * 2**30, total=10 * 2**30, free=(10 - used_gib) * 2**30)
        name = "NVIDIA H100 80GB HBM3 MIG 1g.10gb"
        return cls(uuid, nvmlDeviceGetName=name, nvmlDeviceGetMemoryInfo=memory, **whole_gpu_only)

    def answer(self, name, *args):
        if self.unreadable is not None:
            raise self.unreadable
        value = self.values.get(name, pynvml.NVMLError_NotSupported())
        if isinstance(value, BaseException):
            raise value
        return value(*args) if callable(value) else value


class FakeNvml:
    """A pynvml stand-in for a machine of ``FakeGpu``s that counts ``nvmlInit`` and ``nvmlShutdown``."""

    def __init__(self, gpus, driver="550.54.15"):
        self.gpus, self.driver = list(gpus), driver
        self.inits = self.shutdowns = 0

    def __getattr__(self, name):
        if name.startswith("nvmlDevice"):  # every per-device query: answered by the handle
            return lambda handle, *args: handle.answer(name, *args)
        return getattr(pynvml, name)  # constants and error classes: pynvml's own

    def nvmlInit(self):
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        gpu = self.gpus[index]
        if gpu.unreadable is not None:
            raise gpu.unreadable
        return gpu

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for gpu in self.gpus:
            for device in [gpu, *(s for s in gpu.slices or () if s is not None)]:
                if device.uuid.lower() == uuid.lower():
                    if device.unreadable is not None:
                        raise device.unreadable
                    return device
        raise pynvml.NVMLError_NotFound()

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):
        handle.answer("nvmlDeviceGetMigMode")
        piece = (handle.slices or [])[index]
        if piece is None:
            raise pynvml.NVMLError_NotFound()
        return piece

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle):
        if handle.parent is None:
            raise pynvml.NVMLError_InvalidArgument()
        return handle.parent


def fake_cuda(monkeypatch, nvml, uuids):
    """Make torch see one CUDA device per entry of ``uuids`` (as torch prints a UUID) and ``nvml`` be pynvml."""
    props = [
        SimpleNamespace(uuid=u, name="NVIDIA H100 80GB HBM3", major=9, minor=0, total_memory=80 * 2**30) for u in uuids
    ]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(props))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props[i])
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)


@pytest.fixture
def fresh_shared_nvml():
    """No shared NVML reader before or after the test (another test, or a real GPU, may have opened one)."""
    telemetry.close_shared_readers()
    yield
    telemetry.close_shared_readers()


def test_an_unreadable_gpu_is_skipped_and_the_search_goes_on(monkeypatch):
    nvml = FakeNvml(
        [
            FakeGpu("GPU-0000", unreadable=pynvml.NVMLError_NoPermission()),
            FakeGpu("GPU-1111", nvmlDeviceGetUUID=pynvml.NVMLError_GpuIsLost()),
            FakeGpu("GPU-2222", nvmlDeviceGetPowerUsage=310_000),
        ]
    )
    fake_cuda(monkeypatch, nvml, ["GPU-2222"])
    reader, why = open_nvml_reader("cuda:0")
    assert reader is not None, why
    assert reader.handle is nvml.gpus[2] and not reader.mig
    assert reader.read().power_w == 310.0
    reader.close()
    assert (nvml.inits, nvml.shutdowns) == (1, 1)


def test_an_unreadable_wanted_gpu_is_named_and_a_missing_one_lists_the_unreadable(monkeypatch):
    nvml = FakeNvml([FakeGpu("GPU-0000"), FakeGpu("GPU-1111", unreadable=pynvml.NVMLError_NoPermission())])
    fake_cuda(monkeypatch, nvml, ["GPU-1111", "GPU-9999"])
    reader, why = open_nvml_reader("cuda:0")
    assert reader is None
    assert why == "NVML cannot read cuda:0 (1111): Insufficient Permissions"
    reader, why = open_nvml_reader("cuda:1")
    assert reader is None
    assert why == (
        "no NVML device has the UUID of cuda:1 (9999); skipped as unreadable: NVML GPU 1: Insufficient Permissions"
    )
    assert nvml.inits == nvml.shutdowns == 2


@pytest.mark.parametrize("torch_uuid", ["GPU-bbbb-0002", "MIG-bbbb-0002"])
def test_a_mig_slice_is_found_and_reads_power_from_its_gpu_and_memory_from_itself(monkeypatch, torch_uuid):
    parent = FakeGpu(
        "GPU-aaaa",
        slices=[None, FakeGpu.mig_slice("MIG-bbbb-0001", used_gib=1), FakeGpu.mig_slice("MIG-bbbb-0002", used_gib=3)],
        nvmlDeviceGetPowerUsage=400_000,
        nvmlDeviceGetTotalEnergyConsumption=9_000,
        nvmlDeviceGetMemoryInfo=SimpleNamespace(used=30 * 2**30, total=80 * 2**30, free=50 * 2**30),
    )
    nvml = FakeNvml([FakeGpu("GPU-ffff"), parent])
    fake_cuda(monkeypatch, nvml, [torch_uuid])
    reader, why = open_nvml_reader("cuda:0")
    assert reader is not None, why
    assert reader.mig and reader.handle is parent.slices[2] and reader.gpu_handle is parent
    r = reader.read()
    assert (r.power_w, r.sm_clock_mhz, r.temperature_c) == (400.0, 1410, 71)  # the GPU's
    assert r.memory_used_mib == 3 * 1024  # the slice's own, not the GPU's 30 GiB
    assert decode_reasons(r.reasons_mask) == ["sw_power_cap"]
    assert reader.energy_mj() == 9_000
    sampler = TelemetrySampler("cuda:0", interval_ms=60_000, reader=reader)
    assert sampler.mig
    sampler.close()


def test_samplers_share_one_nvml_initialisation(monkeypatch, fresh_shared_nvml):
    nvml = FakeNvml([FakeGpu("GPU-0000"), FakeGpu("GPU-1111")])
    fake_cuda(monkeypatch, nvml, ["GPU-1111"])
    for _ in range(3):
        sampler = TelemetrySampler("cuda:0", interval_ms=60_000)
        assert sampler.available, sampler.unavailable
        sampler.start()
        out = sampler.stop(images=100)
        sampler.close()
        assert out["power_avg_w"] == 250.0 and out["sm_clock_mhz"] == 1410
    assert (nvml.inits, nvml.shutdowns) == (1, 0)
    telemetry.close_shared_readers()  # what runs at interpreter exit
    assert nvml.shutdowns == 1


def test_a_sampler_given_a_reader_still_closes_it(monkeypatch, fresh_shared_nvml):
    nvml = FakeNvml([FakeGpu("GPU-0000")])
    fake_cuda(monkeypatch, nvml, ["GPU-0000"])
    reader, _ = open_nvml_reader("cuda:0")
    TelemetrySampler("cuda:0", reader=reader).close()
    assert (nvml.inits, nvml.shutdowns) == (1, 1)


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
