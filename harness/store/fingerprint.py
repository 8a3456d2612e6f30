"""The environment fingerprint: what a number was measured on, so runs compare only with their like.

``environment_fingerprint(device)`` collects torch, CUDA, cuDNN and driver versions, the device's name and UUID,
the CPU model, host, the project's git revision and the numerics flags. ``comparable_key`` picks the fields
that must match for two runs to be compared without ``--allow-mismatch`` (host and git revision may differ
between nightly runs of the same machine; a different GPU, driver or torch may not).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

#: Fields that must be equal for two runs to be compared as "the same environment".
COMPARABLE_FIELDS = ("device_type", "device_name", "torch", "cuda", "cudnn", "driver", "cpu_model", "num_threads")


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
    }
    if fp["device_type"] == "cuda" and torch.cuda.is_available():
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        fp.update(
            device_name=props.name,
            device_uuid=str(getattr(props, "uuid", "")) or None,
            device_count=torch.cuda.device_count(),
            cudnn=torch.backends.cudnn.version(),
            driver=_nvml_driver(),
            compute_capability=f"{props.major}.{props.minor}",
            device_memory_mib=round(props.total_memory / 2**20),
        )
    else:
        fp["device_name"] = fp["cpu_model"]
    return fp


def comparable_key(fp: dict[str, Any]) -> dict[str, Any]:
    """The part of a fingerprint that must match for a like-for-like comparison."""
    return {k: fp.get(k) for k in COMPARABLE_FIELDS}


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Comparable fields whose values differ between fingerprints ``a`` and ``b``: {field: (a, b)}."""
    ka, kb = comparable_key(a), comparable_key(b)
    return {k: (ka[k], kb[k]) for k in COMPARABLE_FIELDS if ka[k] != kb[k]}
