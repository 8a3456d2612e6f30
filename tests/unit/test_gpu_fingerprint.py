"""The fingerprint's GPU settings: read through NVML (a stand-in here), compared only where both runs recorded them."""

from __future__ import annotations

import sys

import pynvml

from harness.store.fingerprint import GPU_FIELDS, differences, environment_fingerprint
from tests.unit.test_telemetry import FakeGpu, FakeNvml, fake_cuda


def gpu_fingerprint(monkeypatch, **values):
    """The fingerprint of cuda:0 on a one-GPU machine whose NVML answers ``values`` (see ``FakeGpu``)."""
    fake_cuda(monkeypatch, FakeNvml([FakeGpu("GPU-0000", **values)]), ["GPU-0000"])
    return environment_fingerprint("cuda:0")


def test_gpu_settings_are_recorded(monkeypatch):
    fp = gpu_fingerprint(monkeypatch)
    assert {k: fp[k] for k in GPU_FIELDS} == {
        "gpu_power_limit_w": 700.0,
        "gpu_default_power_limit_w": 700.0,
        "gpu_app_sm_clock_mhz": 1755,
        "gpu_app_mem_clock_mhz": 2619,
        "gpu_max_sm_clock_mhz": 1980,
        "gpu_max_mem_clock_mhz": 2619,
        "gpu_ecc": "on",
        "gpu_persistence": "on",
        "gpu_mig": "off",
        "gpu_mig_slice": False,
        "gpu_compute_mode": "default",
    }
    assert fp["driver"] == "550.54.15" and fp["device_type"] == "cuda"


def test_a_power_capped_gpu_is_another_environment(monkeypatch):
    capped = gpu_fingerprint(monkeypatch, nvmlDeviceGetEnforcedPowerLimit=300_000)
    full = gpu_fingerprint(monkeypatch)
    assert differences(capped, full) == {"gpu_power_limit_w": (300.0, 700.0)}
    assert differences(full, gpu_fingerprint(monkeypatch)) == {}


def test_other_application_clocks_ecc_or_mig_are_another_environment(monkeypatch):
    full = gpu_fingerprint(monkeypatch)
    slow = {pynvml.NVML_CLOCK_SM: 1200, pynvml.NVML_CLOCK_MEM: 2619}
    other = gpu_fingerprint(
        monkeypatch, nvmlDeviceGetApplicationsClock=slow.get, nvmlDeviceGetEccMode=[0, 0], nvmlDeviceGetMigMode=[1, 1]
    )
    assert differences(full, other) == {
        "gpu_app_sm_clock_mhz": (1755, 1200),
        "gpu_ecc": ("on", "off"),
        "gpu_mig": ("off", "on"),
    }


def test_a_manifest_written_before_gpu_settings_still_compares(monkeypatch):
    new = gpu_fingerprint(monkeypatch, nvmlDeviceGetEnforcedPowerLimit=300_000)
    old = {k: v for k, v in new.items() if not k.startswith("gpu_")}
    assert differences(old, new) == {} and differences(new, old) == {}
    cpu = environment_fingerprint("cpu")
    old_cpu = {k: v for k, v in cpu.items() if not k.startswith("gpu_")}
    assert differences(old_cpu, cpu) == {}
    # Fields that were always recorded still differ when missing, as before.
    assert "device_type" in differences({}, cpu)


def test_a_cpu_fingerprint_has_the_gpu_fields_as_none():
    fp = environment_fingerprint("cpu")
    assert {k: fp[k] for k in GPU_FIELDS} == dict.fromkeys(GPU_FIELDS)


def test_unreadable_settings_are_none_and_nothing_raises(monkeypatch):
    fp = gpu_fingerprint(
        monkeypatch,
        nvmlDeviceGetEnforcedPowerLimit=pynvml.NVMLError_NotSupported(),
        nvmlDeviceGetPowerManagementLimit=pynvml.NVMLError_NoPermission(),
        nvmlDeviceGetApplicationsClock=pynvml.NVMLError_NotSupported(),
        nvmlDeviceGetEccMode=RuntimeError("a driver quirk"),
    )
    assert fp["gpu_power_limit_w"] is None and fp["gpu_app_sm_clock_mhz"] is None and fp["gpu_ecc"] is None
    assert fp["gpu_max_sm_clock_mhz"] == 1980  # the rest still read
    # The management limit stands in where the enforced one is unsupported.
    fp = gpu_fingerprint(monkeypatch, nvmlDeviceGetEnforcedPowerLimit=pynvml.NVMLError_NotSupported())
    assert fp["gpu_power_limit_w"] == 700.0


def test_no_nvml_leaves_the_gpu_fields_none(monkeypatch):
    fake_cuda(monkeypatch, FakeNvml([]), ["GPU-0000"])
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    fp = environment_fingerprint("cuda:0")
    assert fp["device_name"] == "NVIDIA H100 80GB HBM3" and fp["driver"] is None
    assert {k: fp[k] for k in GPU_FIELDS} == dict.fromkeys(GPU_FIELDS)


def test_a_mig_slice_records_its_gpu_settings(monkeypatch):
    parent = FakeGpu(
        "GPU-aaaa", slices=[FakeGpu.mig_slice("MIG-bbbb", used_gib=1)], nvmlDeviceGetEnforcedPowerLimit=500_000
    )
    fake_cuda(monkeypatch, FakeNvml([parent]), ["MIG-bbbb"])
    fp = environment_fingerprint("cuda:0")
    assert (fp["gpu_mig"], fp["gpu_mig_slice"], fp["gpu_power_limit_w"]) == ("on", True, 500.0)


def test_runs_from_before_and_after_the_gpu_settings_share_one_trend_line():
    import pandas as pd

    from harness.report.trends import trend_groups
    from harness.store.fingerprint import COMPARABLE_FIELDS, GPU_COMPARABLE_FIELDS

    base = {f"env.{k}": "same" for k in COMPARABLE_FIELDS if k not in GPU_COMPARABLE_FIELDS}
    old = {**base, "suite": "nightly", "run_dir": "old"}  # written before the GPU settings were recorded
    new = {**base, **{f"env.{k}": None for k in GPU_COMPARABLE_FIELDS}, "suite": "nightly", "run_dir": "new"}
    groups = trend_groups(pd.DataFrame([old, new]))
    assert len(groups) == 1 and set(groups[0][1]["run_dir"]) == {"old", "new"}


def test_a_gpu_run_from_before_the_settings_joins_the_line_of_its_one_setting():
    import pandas as pd

    from harness.report.trends import trend_groups
    from harness.store.fingerprint import COMPARABLE_FIELDS, GPU_COMPARABLE_FIELDS

    base = {f"env.{k}": "H100" for k in COMPARABLE_FIELDS if k not in GPU_COMPARABLE_FIELDS}

    def run(name, watts=None):
        gpu = (
            {}
            if watts is None
            else {f"env.{k}": None for k in GPU_COMPARABLE_FIELDS} | {"env.gpu_power_limit_w": watts}
        )
        return {**base, **gpu, "suite": "nightly", "run_dir": name}

    lines = trend_groups(pd.DataFrame([run("old"), run("a", 700.0), run("b", 700.0)]))
    assert [set(rows["run_dir"]) for _, rows in lines] == [{"old", "a", "b"}]
    # a power-capped run is another environment; the old run then cannot be placed and stays apart
    lines = trend_groups(pd.DataFrame([run("old"), run("a", 700.0), run("b", 700.0), run("c", 300.0), run("d", 300.0)]))
    assert sorted(sorted(set(rows["run_dir"])) for _, rows in lines) == [["a", "b"], ["c", "d"]]


def test_nproc_auto_gives_one_worker_to_a_suite_pinned_to_one_gpu():
    from types import SimpleNamespace

    from harness.launch.session import resolve_nproc

    assert resolve_nproc("auto", [SimpleNamespace(device="cuda:1")], gpus=4) == 1
    assert resolve_nproc("auto", [SimpleNamespace(device="cuda")], gpus=4) == 4
