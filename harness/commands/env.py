"""``harness env``: what a run here would be measured on, and the GPU settings that move its numbers.

Prints the environment fingerprint recorded in every run's manifest (versions, device, CPU, numerics flags) and,
for each visible GPU that NVML can see, the state a performance engineer checks before trusting a benchmark:
clocks against their maxima, application clocks, power limit against its default, persistence and compute mode,
ECC, MIG mode, the PCIe link, and the current clock-event (throttle) reasons. Every NVML query is tolerant: an
unsupported one shows "n/a". A GPU that NVML cannot open is listed as skipped, with why, and the others are shown.
On a MIG slice the settings are the parent GPU's, which every slice on it shares.
"""

from __future__ import annotations

import json
from typing import Any

from harness.errors import HarnessError
from harness.store.fingerprint import COMPUTE_MODES

HELP = "print the environment fingerprint and, with a GPU, its clocks, power limits, modes and throttle reasons"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="device to fingerprint: auto (cuda when visible, else cpu), cpu, cuda or cuda:N (default: auto)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def resolve_device(spec: str) -> str:
    """``spec`` as a concrete device ("cpu", "cuda", "cuda:N"); HarnessError when it is malformed or absent."""
    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return spec
    kind, _, index = spec.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise HarnessError(f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N (N a number)")
    if not torch.cuda.is_available():
        raise HarnessError(
            f"--device {spec}: no CUDA device is visible (torch {torch.__version__}, CUDA {torch.version.cuda}); "
            "use --device cpu, or check the driver and CUDA_VISIBLE_DEVICES"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise HarnessError(
            f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible "
            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
        )
    return spec


def _mw_to_w(value: float | None) -> float | None:
    return None if value is None else value / 1000.0


def _mode(mode: Any) -> str | None:
    """An NVML (current, pending) mode pair as "on"/"off", noting a pending change; None if unreadable."""
    if mode is None:
        return None
    current, pending = mode
    return ("on" if current else "off") + (" (pending change)" if current != pending else "")


def gpu_state(reader) -> dict[str, Any]:
    """One GPU's settings through an ``NvmlReader``: clocks in MHz, power in W, modes as words; None if unreadable.

    For a MIG slice (``reader.mig``) every setting is read from the parent GPU (``reader.gpu_handle``), the name
    from the slice.
    """
    from harness.measure.telemetry import decode_reasons

    nv, gpu = reader.nvml, reader.gpu_handle

    def q(name, fn, *args):
        return reader.query(name, fn, *args, handle=gpu)

    name = reader.query("name", nv.nvmlDeviceGetName)
    persistence = q("persistence", nv.nvmlDeviceGetPersistenceMode)
    compute = q("compute_mode", nv.nvmlDeviceGetComputeMode)
    reasons = q("reasons", reader.clock_event_reasons)
    return {
        "name": name.decode() if isinstance(name, bytes) else name,
        "sm_clock_mhz": q("sm_clock", nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_SM),
        "sm_clock_max_mhz": q("sm_clock_max", nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_SM),
        "mem_clock_mhz": q("mem_clock", nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_MEM),
        "mem_clock_max_mhz": q("mem_clock_max", nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_MEM),
        "app_sm_clock_mhz": q("app_sm_clock", nv.nvmlDeviceGetApplicationsClock, nv.NVML_CLOCK_SM),
        "app_mem_clock_mhz": q("app_mem_clock", nv.nvmlDeviceGetApplicationsClock, nv.NVML_CLOCK_MEM),
        "power_w": _mw_to_w(q("power", nv.nvmlDeviceGetPowerUsage)),
        "power_limit_w": _mw_to_w(q("power_limit", nv.nvmlDeviceGetPowerManagementLimit)),
        "power_default_limit_w": _mw_to_w(q("power_default", nv.nvmlDeviceGetPowerManagementDefaultLimit)),
        "temperature_c": q("temperature", nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU),
        "persistence_mode": None if persistence is None else ("on" if persistence else "off"),
        "compute_mode": None if compute is None else COMPUTE_MODES.get(compute, str(compute)),
        "ecc": _mode(q("ecc", nv.nvmlDeviceGetEccMode)),
        "mig_mode": _mode(q("mig_mode", nv.nvmlDeviceGetMigMode)),
        "mig_slice": bool(reader.mig),
        "pcie_gen": q("pcie_gen", nv.nvmlDeviceGetCurrPcieLinkGeneration),
        "pcie_gen_max": q("pcie_gen_max", nv.nvmlDeviceGetMaxPcieLinkGeneration),
        "pcie_width": q("pcie_width", nv.nvmlDeviceGetCurrPcieLinkWidth),
        "pcie_width_max": q("pcie_width_max", nv.nvmlDeviceGetMaxPcieLinkWidth),
        "throttle_reasons": None if reasons is None else decode_reasons(reasons),
    }


def _gpus(device: str) -> tuple[list[dict[str, Any]], str | None]:
    """The state of the GPUs ``device`` names (all visible ones for "cuda"), and why checks were skipped (all of
    them, or the GPUs NVML could not open, each with its reason), else None."""
    import torch

    from harness.measure.telemetry import open_nvml_reader

    if not torch.cuda.is_available():
        return [], "no CUDA device: GPU checks skipped"
    if device == "cpu":
        return [], "--device cpu: GPU checks skipped"
    indices = [torch.device(device).index] if ":" in device else list(range(torch.cuda.device_count()))
    gpus, skipped = [], []
    for index in indices:
        reader, why = open_nvml_reader(f"cuda:{index}")
        if reader is None:
            skipped.append(f"cuda:{index} ({why})")
            continue
        try:
            gpus.append({"device": f"cuda:{index}", **gpu_state(reader)})
        finally:
            reader.close()
    if not skipped:
        return gpus, None
    return gpus, f"GPU checks skipped for {'; '.join(skipped)}"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def _unit(value: Any, unit: str) -> str:
    return "n/a" if value is None else f"{_fmt(value)} {unit}"


def _pair(now: Any, peak: Any, unit: str = "") -> str:
    fmt = (lambda v: _unit(v, unit)) if unit else _fmt
    return f"{fmt(now)} (max {fmt(peak)})"


_MIG_SLICE = "; this device is a MIG slice: the settings shown are its whole GPU's"


def gpu_rows(gpu: dict[str, Any]) -> list[tuple[str, str]]:
    """The table rows of one GPU's state."""
    return [
        ("name", _fmt(gpu["name"])),
        ("SM clock", _pair(gpu["sm_clock_mhz"], gpu["sm_clock_max_mhz"], "MHz")),
        ("memory clock", _pair(gpu["mem_clock_mhz"], gpu["mem_clock_max_mhz"], "MHz")),
        (
            "application clocks",
            f"SM {_unit(gpu['app_sm_clock_mhz'], 'MHz')}, memory {_unit(gpu['app_mem_clock_mhz'], 'MHz')}",
        ),
        ("power now", _unit(gpu["power_w"], "W")),
        ("power limit", f"{_unit(gpu['power_limit_w'], 'W')} (default {_unit(gpu['power_default_limit_w'], 'W')})"),
        ("temperature", _unit(gpu["temperature_c"], "C")),
        ("persistence mode", _fmt(gpu["persistence_mode"])),
        ("compute mode", _fmt(gpu["compute_mode"])),
        ("ECC", _fmt(gpu["ecc"])),
        ("MIG mode", _fmt(gpu["mig_mode"]) + (_MIG_SLICE if gpu["mig_slice"] else "")),
        (
            "PCIe link",
            f"gen {_pair(gpu['pcie_gen'], gpu['pcie_gen_max'])}, x{_pair(gpu['pcie_width'], gpu['pcie_width_max'])}",
        ),
        ("throttle reasons", _fmt(gpu["throttle_reasons"])),
    ]


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(key) for key, _ in rows)
    print(title)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def run(args) -> int:
    from harness.store.fingerprint import environment_fingerprint

    device = resolve_device(args.device)
    fingerprint = environment_fingerprint(device)
    gpus, skipped = _gpus(device)
    if args.json:
        print(
            json.dumps(
                {"device": device, "environment": fingerprint, "gpus": gpus, "gpu_checks": skipped or "ok"}, indent=2
            )
        )
        return 0
    _print_table(f"environment (device {device})", [(k, _fmt(v)) for k, v in fingerprint.items()])
    for gpu in gpus:
        print()
        _print_table(f"GPU {gpu['device']}", gpu_rows(gpu))
    if skipped:
        print()
        print(skipped)
    return 0
