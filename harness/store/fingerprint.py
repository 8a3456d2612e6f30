"""The environment fingerprint: what a number was measured on, so runs compare only with their like.

``environment_fingerprint(device)`` collects torch, CUDA, cuDNN and driver versions, the device's name and UUID,
the CPU model, host, the project's git revision, the numerics flags and, read through NVML, the GPU settings that
move throughput (``GPU_FIELDS``, ``gpu_*``: power limits, application and maximum clocks, ECC, persistence, MIG and
compute mode; None where unsupported or unreadable, and for a CPU device). ``comparable_key`` picks the fields
that must match for two runs to be compared without ``--allow-mismatch`` (host and git revision may differ
between nightly runs of the same machine; a different GPU, driver, torch, power cap or clocks may not). A GPU
field missing from a fingerprint (a manifest written before it was recorded) is unknown, not a difference.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

#: GPU settings recorded in the fingerprint, read through NVML for the fingerprinted device (None on a CPU, where
#: NVML is absent, or where a query is unsupported). For a MIG slice they are its parent GPU's.
GPU_FIELDS = (
    "gpu_power_limit_w",
    "gpu_default_power_limit_w",
    "gpu_app_sm_clock_mhz",
    "gpu_app_mem_clock_mhz",
    "gpu_max_sm_clock_mhz",
    "gpu_max_mem_clock_mhz",
    "gpu_ecc",
    "gpu_persistence",
    "gpu_mig",
    "gpu_mig_slice",
    "gpu_compute_mode",
)

#: The GPU settings that change throughput, comparable only when both fingerprints record them (older manifests
#: do not; a field absent from either is not a difference).
GPU_COMPARABLE_FIELDS = ("gpu_power_limit_w", "gpu_app_sm_clock_mhz", "gpu_app_mem_clock_mhz", "gpu_ecc", "gpu_mig")

#: Fields that must be equal for two runs to be compared as "the same environment".
COMPARABLE_FIELDS = (
    "device_type",
    "device_name",
    "torch",
    "cuda",
    "cudnn",
    "driver",
    "cpu_model",
    "num_threads",
    *GPU_COMPARABLE_FIELDS,
)

COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> str | None:
    """The git revision of the harness's own checkout (with ``+dirty`` when modified), or None."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _nvml_driver() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
            return version.decode() if isinstance(version, bytes) else version
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None


def _on_off(value: Any) -> str | None:
    """An NVML mode (or the current one of a (current, pending) pair) as "on"/"off"; None if unreadable."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = value[0]
    return "on" if value else "off"


def _w(mw: Any) -> float | None:
    return None if mw is None else mw / 1000.0


def gpu_settings(reader) -> dict[str, Any]:
    """The ``GPU_FIELDS`` of the GPU an ``NvmlReader`` reads (its parent GPU for a MIG slice); each None where
    NVML cannot answer. Never raises."""
    out: dict[str, Any] = dict.fromkeys(GPU_FIELDS)
    nv, gpu = reader.nvml, reader.gpu_handle

    def q(name: str, fn_name: str, *args):
        fn = getattr(nv, fn_name, None)
        try:
            return None if fn is None else reader.query(name, fn, *args, handle=gpu)
        except Exception:  # a stand-in or a driver quirk: one unreadable setting, not a failed fingerprint
            return None

    sm, mem = getattr(nv, "NVML_CLOCK_SM", 0), getattr(nv, "NVML_CLOCK_MEM", 2)
    # The enforced limit is the one in effect (the management limit or a lower one set elsewhere).
    limit = q("enforced_power_limit", "nvmlDeviceGetEnforcedPowerLimit")
    if limit is None:
        limit = q("power_limit", "nvmlDeviceGetPowerManagementLimit")
    compute = q("compute_mode", "nvmlDeviceGetComputeMode")
    out.update(
        gpu_power_limit_w=_w(limit),
        gpu_default_power_limit_w=_w(q("power_default", "nvmlDeviceGetPowerManagementDefaultLimit")),
        gpu_app_sm_clock_mhz=q("app_sm_clock", "nvmlDeviceGetApplicationsClock", sm),
        gpu_app_mem_clock_mhz=q("app_mem_clock", "nvmlDeviceGetApplicationsClock", mem),
        gpu_max_sm_clock_mhz=q("sm_clock_max", "nvmlDeviceGetMaxClockInfo", sm),
        gpu_max_mem_clock_mhz=q("mem_clock_max", "nvmlDeviceGetMaxClockInfo", mem),
        gpu_ecc=_on_off(q("ecc", "nvmlDeviceGetEccMode")),
        gpu_persistence=_on_off(q("persistence", "nvmlDeviceGetPersistenceMode")),
        gpu_mig=_on_off(q("mig_mode", "nvmlDeviceGetMigMode")),
        gpu_mig_slice=bool(getattr(reader, "mig", False)),
        gpu_compute_mode=None if compute is None else COMPUTE_MODES.get(compute, str(compute)),
    )
    return out


def _nvml_state(device: str) -> tuple[str | None, dict[str, Any]]:
    """(driver version, ``GPU_FIELDS``) of the CUDA device ``device`` through one NVML session; Nones when NVML
    or the device is unavailable. Never raises."""
    from harness.measure.telemetry import open_nvml_reader

    try:
        reader, _why = open_nvml_reader(device)
    except Exception:
        reader = None
    if reader is None:
        return _nvml_driver(), dict.fromkeys(GPU_FIELDS)
    try:
        settings = gpu_settings(reader)
        try:
            version = reader.nvml.nvmlSystemGetDriverVersion()
            driver = version.decode() if isinstance(version, bytes) else version
        except Exception:
            driver = None
        return driver, settings
    finally:
        reader.close()


def environment_fingerprint(device: str = "cpu") -> dict[str, Any]:
    """Everything that conditions a measurement on ``device`` ("cpu", "cuda", "cuda:N"), as a JSON-ready dict."""
    import torch

    fp: dict[str, Any] = {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": None,
        "driver": None,
        "device_type": "cuda" if device.startswith("cuda") else "cpu",
        "device_name": None,
        "device_uuid": None,
        "device_count": 0,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "num_threads": torch.get_num_threads(),
        "git_revision": git_revision(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        **dict.fromkeys(GPU_FIELDS),
    }
    if fp["device_type"] == "cuda" and torch.cuda.is_available():
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        driver, gpu = _nvml_state(f"cuda:{index}")
        fp.update(
            device_name=props.name,
            device_uuid=str(getattr(props, "uuid", "")) or None,
            device_count=torch.cuda.device_count(),
            cudnn=torch.backends.cudnn.version(),
            driver=driver,
            compute_capability=f"{props.major}.{props.minor}",
            device_memory_mib=round(props.total_memory / 2**20),
            **gpu,
        )
    else:
        fp["device_name"] = fp["cpu_model"]
    return fp


def comparable_key(fp: dict[str, Any]) -> dict[str, Any]:
    """The part of a fingerprint that must match for a like-for-like comparison. A GPU field the fingerprint does
    not record (written before it was) is left out, not taken as None."""
    return {k: fp.get(k) for k in COMPARABLE_FIELDS if k in fp or k not in GPU_COMPARABLE_FIELDS}


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Comparable fields whose values differ between fingerprints ``a`` and ``b``: {field: (a, b)}. A GPU field
    absent from either fingerprint is unknown there, so it is not a difference."""
    ka, kb = comparable_key(a), comparable_key(b)
    return {k: (ka[k], kb[k]) for k in COMPARABLE_FIELDS if k in ka and k in kb and ka[k] != kb[k]}
