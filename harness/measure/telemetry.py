"""GPU telemetry over a timed window, read through NVML: power, energy, clocks, temperature, clock-event reasons.

``TelemetrySampler(device).start()`` just before the timed window and ``.stop(images=N)`` just after return one
dict with the keys of ``harness.store.record.TELEMETRY_FIELDS``. Samples are taken by a daemon thread that sleeps
between readings (NVML calls go through ctypes, which releases the GIL), so the measured loop is not slowed.

NVML is opened once per process: a sampler built without a reader uses ``shared_reader(device)``, which initialises
NVML and finds the device on first use, keeps both for the life of the process (shut down at interpreter exit),
and is cheap afterwards, so building a sampler between warm-up and the timed window neither re-initialises NVML
nor leaves the GPU idle long enough for its clocks to drop. ``open_nvml_reader`` opens a reader of its own, whose
``close()`` shuts its NVML reference down (``harness env``, the fingerprint).

The device is found by UUID among the GPUs NVML lists and, on a GPU in MIG mode, among its MIG slices. A GPU that
NVML cannot read (no permission, lost) is skipped, not fatal. On a MIG slice, power, clocks, temperature,
clock-event reasons and the energy counter are the parent GPU's (NVML has them only for the whole GPU), memory
used is the slice's own; the reader's ``mig`` says so, so that power and energy can be labelled as whole-GPU.

Energy is the difference of the device's energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ) between
start and stop. Where the counter is not supported, or did not advance (the counter of some boards ticks coarsely),
energy is the trapezoid integral of the sampled power over the sample times instead.

Where NVML, a GPU or a matching device is absent, every field is None and nothing raises. One NVML query that
fails makes only its own field None. The sampling and reduction logic takes a *reader* (``NvmlReader`` wraps
pynvml; tests pass recorded readings), so the arithmetic is tested without a GPU.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any, Protocol

from harness.store.record import TELEMETRY_FIELDS

#: Clock-event reason bits as in nvml.h, by the names the record uses. pynvml's constants win where they exist
#: (newer ``ClocksEvent`` names first, then the older ``ClocksThrottle`` ones); the numbers are the fallback.
_REASONS = (
    ("gpu_idle", "GpuIdle", 0x1),
    ("applications_clocks_setting", "ApplicationsClocksSetting", 0x2),
    ("sw_power_cap", "SwPowerCap", 0x4),
    ("hw_slowdown", "HwSlowdown", 0x8),
    ("sync_boost", "SyncBoost", 0x10),
    ("sw_thermal_slowdown", "SwThermalSlowdown", 0x20),
    ("hw_thermal_slowdown", "HwThermalSlowdown", 0x40),
    ("hw_power_brake_slowdown", "HwPowerBrakeSlowdown", 0x80),
    ("display_clock_setting", "DisplayClockSetting", 0x100),
    ("board_limit", "BoardLimit", 0x200),
    ("reliability", "Reliability", 0x400),
)


def _reason_bits() -> dict[int, str]:
    try:
        import pynvml
    except ImportError:
        pynvml = None
    bits = {}
    for name, suffix, default in _REASONS:
        value = getattr(pynvml, f"nvmlClocksEventReason{suffix}", None)
        if value is None:
            value = getattr(pynvml, f"nvmlClocksThrottleReason{suffix}", default)
        bits[int(value)] = name
    return bits


def decode_reasons(mask: int) -> list[str]:
    """The names of the clock-event reason bits set in ``mask`` (an NVML bitmask), sorted; unknown bits as hex."""
    bits = _reason_bits()
    names = [bits.get(1 << i, f"unknown_{1 << i:#x}") for i in range(64) if mask >> i & 1]
    return sorted(names)


@dataclass(frozen=True)
class Reading:
    """One telemetry sample. ``t_s`` is a monotonic time in seconds; any other field is None when unreadable."""

    t_s: float
    power_w: float | None = None
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    temperature_c: float | None = None
    utilization_pct: float | None = None
    memory_used_mib: float | None = None
    reasons_mask: int | None = None


class Reader(Protocol):
    """What the sampler needs from a device: a reading now, and the energy counter in mJ (None if unsupported)."""

    def read(self) -> Reading: ...

    def energy_mj(self) -> float | None: ...

    def close(self) -> None: ...


class NvmlReader:
    """Reads one NVML device handle. ``nvml`` is the pynvml module (replaceable for tests and benchmarks).

    Every query is guarded on its own: an ``NVMLError`` makes that value None for that reading, and a query that
    answers NotSupported is not asked again, so an unsupported counter costs nothing per sample.

    ``parent`` is the GPU's handle when ``handle`` is a MIG slice: power, clocks, temperature, clock-event reasons
    and energy are then read from the parent (``gpu_handle``), memory and utilisation from the slice, and ``mig``
    is True (power and energy are the whole GPU's, shared by every slice on it).
    """

    def __init__(self, handle: Any, nvml: Any, owns_init: bool = False, parent: Any = None) -> None:
        self.handle = handle
        self.nvml = nvml
        self.parent = parent
        self.mig = parent is not None
        self.gpu_handle = handle if parent is None else parent
        self._owns_init = owns_init
        self._unsupported: set[str] = set()
        self._old_reasons_api = False

    def query(self, name: str, fn, *args, handle: Any = None):
        """``fn(handle, *args)`` (default: this reader's device handle), or None when NVML answers with an error
        (NotSupported is remembered under ``name``)."""
        if name in self._unsupported:
            return None
        try:
            return fn(self.handle if handle is None else handle, *args)
        except self.nvml.NVMLError_NotSupported:
            self._unsupported.add(name)
            return None
        except self.nvml.NVMLError:
            return None

    def clock_event_reasons(self, handle) -> int:
        """The clock-event (throttle) reason bitmask of ``handle``; decode it with ``decode_reasons``."""
        # Drivers before r535 only have the older "throttle" entry point for the same bitmask.
        if not self._old_reasons_api:
            try:
                return self.nvml.nvmlDeviceGetCurrentClocksEventReasons(handle)
            except (AttributeError, self.nvml.NVMLError_FunctionNotFound):
                self._old_reasons_api = True
        return self.nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)

    def read(self) -> Reading:
        """Sample every telemetry value once; units W, MHz, degrees C, percent, MiB."""
        nv, gpu = self.nvml, self.gpu_handle
        power_mw = self.query("power", nv.nvmlDeviceGetPowerUsage, handle=gpu)
        util = self.query("utilization", nv.nvmlDeviceGetUtilizationRates)
        memory = self.query("memory", nv.nvmlDeviceGetMemoryInfo)
        return Reading(
            t_s=time.monotonic(),
            power_w=None if power_mw is None else power_mw / 1000.0,
            sm_clock_mhz=self.query("sm_clock", nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_SM, handle=gpu),
            mem_clock_mhz=self.query("mem_clock", nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_MEM, handle=gpu),
            temperature_c=self.query("temperature", nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU, handle=gpu),
            utilization_pct=None if util is None else util.gpu,
            memory_used_mib=None if memory is None else memory.used / 2**20,
            reasons_mask=self.query("reasons", self.clock_event_reasons, handle=gpu),
        )

    def compute_pids(self) -> list[int] | None:
        """The pids of the compute processes NVML lists on the device (a MIG slice's own), or None where NVML cannot
        say. The contention tracker (``harness.measure.contention``) reads them; NVML lists pids of the host's pid
        namespace, which may not be this process's."""
        procs = self.query("processes", self.nvml.nvmlDeviceGetComputeRunningProcesses)
        return None if procs is None else [int(p.pid) for p in procs]

    def energy_mj(self) -> float | None:
        """The GPU's energy counter since the driver loaded, in mJ (the whole GPU's for a MIG slice); None where
        unsupported."""
        return self.query("energy", self.nvml.nvmlDeviceGetTotalEnergyConsumption, handle=self.gpu_handle)

    def close(self) -> None:
        """Shut NVML down if this reader initialised it (``open_nvml_reader``); a shared reader stays open."""
        if self._owns_init:
            self._owns_init = False
            _shutdown(self.nvml)


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except nvml.NVMLError:
        pass


def _normalise_uuid(uuid: Any) -> str:
    text = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    text = text.strip().lower()
    for prefix in ("gpu-", "mig-"):
        text = text.removeprefix(prefix)
    return text


def _errors(nvml: Any, *names: str) -> tuple[type, ...]:
    """The pynvml error classes ``NVMLError_<name>`` that ``nvml`` has (a stand-in may lack some)."""
    return tuple(cls for cls in (getattr(nvml, f"NVMLError_{name}", None) for name in names) if cls is not None)


def _wanted_uuid(device: str) -> tuple[str | None, str | None]:
    """(the normalised UUID torch reports for ``device``, None), or (None, why there is none)."""
    if not device.startswith("cuda"):
        return None, f"device {device!r} is not a CUDA device"
    try:
        import torch

        if not torch.cuda.is_available():
            return None, "no CUDA device"
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        return _normalise_uuid(torch.cuda.get_device_properties(index).uuid), None
    except Exception as exc:  # a broken CUDA set-up is reported as absent telemetry, not a failed case
        return None, f"cannot query {device}: {exc}"


def _mig_handles(nvml: Any, handle: Any) -> tuple[list[Any], list[str]]:
    """The MIG slice handles of GPU ``handle`` when its MIG mode is enabled (else none), and the slots that could
    not be read. Empty slots (NotFound, InvalidArgument) are neither."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except (AttributeError, nvml.NVMLError):  # not MIG-capable (NotSupported), or a pynvml without MIG
        return [], []
    if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
        return [], []
    try:
        count = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except nvml.NVMLError as exc:
        return [], [f"MIG slices: {exc}"]
    empty = _errors(nvml, "NotFound", "InvalidArgument")
    handles, problems = [], []
    for j in range(count):
        try:
            handles.append(nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, j))
        except empty:
            continue
        except nvml.NVMLError as exc:
            problems.append(f"MIG slot {j}: {exc}")
    return handles, problems


def _find_handle(nvml: Any, want: str) -> tuple[Any, Any, list[str]]:
    """(handle, parent GPU handle for a MIG slice else None, []) of the NVML device whose UUID is ``want``, or
    (None, None, what could not be read). A GPU or slice that NVML cannot read is skipped, not fatal; only
    ``nvmlDeviceGetCount`` failing raises."""
    problems: list[str] = []
    for i in range(nvml.nvmlDeviceGetCount()):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            uuid = nvml.nvmlDeviceGetUUID(handle)
        except nvml.NVMLError as exc:
            problems.append(f"NVML GPU {i}: {exc}")
            continue
        if _normalise_uuid(uuid) == want:
            return handle, None, []
        slices, slice_problems = _mig_handles(nvml, handle)
        problems += [f"NVML GPU {i} {p}" for p in slice_problems]
        for mig in slices:
            try:
                if _normalise_uuid(nvml.nvmlDeviceGetUUID(mig)) == want:
                    return mig, handle, []
            except nvml.NVMLError as exc:
                problems.append(f"NVML GPU {i} MIG slice: {exc}")
    return None, None, problems


def _lookup_by_uuid(nvml: Any, want: str) -> tuple[Any, Any, str | None]:
    """NVML's own look-up of UUID ``want`` (as a GPU, then as a MIG slice): (handle, parent, None) when found,
    (None, None, the error) when that device exists but cannot be read, (None, None, None) when it is not there."""
    lookup = getattr(nvml, "nvmlDeviceGetHandleByUUID", None)
    if lookup is None:
        return None, None, None
    absent = _errors(nvml, "NotFound", "InvalidArgument")
    for prefix in ("GPU-", "MIG-"):
        try:
            handle = lookup(prefix + want)
            parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle) if prefix == "MIG-" else None
            return handle, parent, None
        except absent:
            continue
        except nvml.NVMLError as exc:
            return None, None, str(exc) or type(exc).__name__
    return None, None, None


def _open(nvml: Any, device: str, want: str, owns_init: bool) -> tuple[NvmlReader | None, str | None]:
    """A reader of the NVML device with UUID ``want`` through the initialised ``nvml``, or (None, why not)."""
    try:
        handle, parent, problems = _find_handle(nvml, want)
    except Exception as exc:  # nvmlDeviceGetCount failed: no device can be looked at
        return None, f"NVML cannot list devices: {exc}"
    if handle is None and problems:
        # Some device could not be read: ask NVML for the wanted one by UUID, to tell whether it is among them.
        handle, parent, error = _lookup_by_uuid(nvml, want)
        if error is not None:
            return None, f"NVML cannot read {device} ({want}): {error}"
    if handle is None:
        why = f"no NVML device has the UUID of {device} ({want})"
        if problems:
            why += f"; skipped as unreadable: {'; '.join(problems)}"
        return None, why
    return NvmlReader(handle, nvml, owns_init=owns_init, parent=parent), None


def open_nvml_reader(device: str) -> tuple[NvmlReader | None, str | None]:
    """An ``NvmlReader`` for the CUDA device ``device`` ("cuda" or "cuda:N") with its own NVML initialisation
    (released by its ``close()``), or (None, why not).

    The NVML handle is found by UUID, because NVML numbers every GPU in the machine while CUDA numbers only the
    visible ones (CUDA_VISIBLE_DEVICES); matching by index would read the wrong board. GPUs in MIG mode are
    searched slice by slice (a MIG device's UUID is its slice's); a GPU NVML cannot read is skipped.
    """
    want, why = _wanted_uuid(device)
    if want is None:
        return None, why
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        return None, f"NVML unavailable: {exc}"
    reader, why = _open(pynvml, device, want, owns_init=True)
    if reader is None:
        _shutdown(pynvml)
    return reader, why


_shared_lock = threading.Lock()
_shared_nvml: Any = None  # the pynvml module this process initialised, once
_shared_failure: str | None = None  # why NVML could not be initialised, remembered so it is tried once
_shared_readers: dict[str, tuple[NvmlReader | None, str | None]] = {}  # by device UUID
_shutdown_at_exit = False


def shared_reader(device: str) -> tuple[NvmlReader | None, str | None]:
    """The process-wide ``NvmlReader`` of ``device`` ("cuda" or "cuda:N"), or (None, why not).

    NVML is initialised on the first call only and shut down at interpreter exit (or by ``close_shared_readers``);
    the device is looked up once per UUID and the answer, a reader or why there is none, kept. Closing the
    returned reader does nothing: it is shared.
    """
    global _shared_nvml, _shared_failure, _shutdown_at_exit
    want, why = _wanted_uuid(device)
    if want is None:
        return None, why
    with _shared_lock:
        if want in _shared_readers:
            return _shared_readers[want]
        if _shared_failure is not None:
            return None, _shared_failure
        if _shared_nvml is None:
            try:
                import pynvml

                pynvml.nvmlInit()
            except Exception as exc:
                _shared_failure = f"NVML unavailable: {exc}"
                return None, _shared_failure
            _shared_nvml = pynvml
            if not _shutdown_at_exit:
                _shutdown_at_exit = True
                atexit.register(close_shared_readers)
        result = _open(_shared_nvml, device, want, owns_init=False)
        _shared_readers[want] = result
        return result


def close_shared_readers() -> None:
    """Forget the shared readers and shut NVML down if ``shared_reader`` initialised it (run at exit)."""
    global _shared_nvml, _shared_failure
    with _shared_lock:
        nvml, _shared_nvml, _shared_failure = _shared_nvml, None, None
        _shared_readers.clear()
    if nvml is not None:
        _shutdown(nvml)


def _nulls() -> dict[str, Any]:
    return {name: None for name in TELEMETRY_FIELDS}


def _values(readings: Sequence[Reading], name: str) -> list[float]:
    return [v for v in (getattr(r, name) for r in readings) if v is not None]


def integrate_power_j(readings: Sequence[Reading]) -> float | None:
    """Energy in J as the trapezoid integral of power over time, over consecutive readings that both have power.

    None when fewer than two readings carry power. A gap (a reading without power) is bridged by its neighbours.
    """
    points = [(r.t_s, r.power_w) for r in readings if r.power_w is not None]
    if len(points) < 2:
        return None
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(points[:-1], points[1:], strict=True))


def summarise(
    readings: Sequence[Reading],
    energy_start_mj: float | None,
    energy_end_mj: float | None,
    images: int | None,
) -> dict[str, Any]:
    """Reduce readings over a window to the record's telemetry fields.

    Means for power, clocks and utilisation; maxima for power, temperature and memory; the energy counter
    difference (mJ to J) when both ends were read and it advanced, else integrated power; images per joule when
    the energy is known and positive; the sorted union of decoded clock-event reasons (None if never readable).
    """
    out = _nulls()
    power = _values(readings, "power_w")
    if power:
        out["power_avg_w"] = fmean(power)
        out["power_max_w"] = max(power)
    energy = None
    if energy_start_mj is not None and energy_end_mj is not None and energy_end_mj > energy_start_mj:
        energy = (energy_end_mj - energy_start_mj) / 1000.0
    if energy is None:
        energy = integrate_power_j(readings)
    out["energy_j"] = energy
    if energy and energy > 0 and images is not None:
        out["img_per_j"] = images / energy
    for name, reduce in (
        ("sm_clock_mhz", fmean),
        ("mem_clock_mhz", fmean),
        ("temperature_c", max),
        ("utilization_pct", fmean),
        ("memory_used_mib", max),
    ):
        values = _values(readings, name)
        out[name] = reduce(values) if values else None
    masks = [r.reasons_mask for r in readings if r.reasons_mask is not None]
    if masks:
        union = 0
        for mask in masks:
            union |= int(mask)
        out["throttle_reasons"] = decode_reasons(union)
    return out


class TelemetrySampler:
    """Samples a device's telemetry every ``interval_ms`` between ``start()`` and ``stop(images)``.

    ``device`` is "cpu", "cuda" or "cuda:N". Without ``reader`` the sampler reads the process-wide
    ``shared_reader(device)``, so building one costs no NVML initialisation after the first; ``reader`` replaces it
    (tests, benchmarks) and is then the sampler's own, closed by ``close()``. Without any reader (CPU, no NVML, no
    matching GPU) ``stop`` returns every field None; ``unavailable`` says why. The sampler can be started again
    after ``stop``; ``close()`` stops sampling (and closes a reader given to it; the shared one stays open).
    """

    def __init__(self, device: str, interval_ms: int = 50, reader: Reader | None = None) -> None:
        self.device = device
        self.interval_s = max(interval_ms, 1) / 1000.0
        self.unavailable: str | None = None
        self._owns_reader = reader is not None
        if reader is None:
            reader, self.unavailable = shared_reader(device)
        self.reader = reader
        self.readings: list[Reading] = []
        self.error: str | None = None
        self._energy_start: float | None = None
        self._energy_end: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self.reader is not None

    @property
    def mig(self) -> bool:
        """True when the device is a MIG slice: power and energy are then the whole GPU's, not the slice's."""
        return bool(getattr(self.reader, "mig", False))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.readings.append(self.reader.read())
            except Exception as exc:  # keep what was sampled; the window is still measured
                self.error = f"telemetry sampling stopped: {exc}"
                return

    def start(self) -> None:
        """Read the energy counter and a first sample, then start the sampling thread."""
        if self._thread is not None:
            raise RuntimeError("TelemetrySampler.start() called twice without stop()")
        self.readings, self.error = [], None
        if self.reader is None:
            return
        self._stop.clear()
        self._energy_start, self._energy_end = self.reader.energy_mj(), None
        self.readings.append(self.reader.read())
        self._thread = threading.Thread(target=self._loop, name="harness-telemetry", daemon=True)
        self._thread.start()

    def stop(self, images: int | None = None) -> dict[str, Any]:
        """Stop sampling, take a last sample and the counter, and return the telemetry fields for ``images``."""
        self.halt()
        return self.summary(images)

    def halt(self) -> None:
        """Stop sampling and take a last sample and the energy counter; ``summary`` then reduces the window."""
        if self.reader is None:
            return
        if self._thread is None:
            raise RuntimeError("TelemetrySampler.stop() called before start()")
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.readings.append(self.reader.read())
        self._energy_end = self.reader.energy_mj()

    def summary(self, images: int | None = None) -> dict[str, Any]:
        """The telemetry fields of the last window (``start`` to ``halt``) for ``images`` images (every field None
        without a reader)."""
        if self.reader is None:
            return _nulls()
        return summarise(self.readings, self._energy_start, self._energy_end, images)

    def close(self) -> None:
        """Stop any sampling, and close the reader if it was given to this sampler (the shared one stays open)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self.reader is not None and self._owns_reader:
            self.reader.close()

    def __enter__(self) -> TelemetrySampler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TelemetryTracker:
    """The record's telemetry over a GPU case's timed window: a ``TelemetrySampler`` as a tracker
    (``harness.measure.trackers``) of the ``timed`` window.

    Entering starts the sampler, leaving halts and closes it (also when the window fails, so its thread does not run
    for the rest of the sweep), and ``fill(rec)`` writes ``rec.telemetry`` with images per joule over the
    ``batch_size * rec.iters`` images of the window.
    """

    window = "timed"

    def __init__(self, sampler: TelemetrySampler, batch_size: int) -> None:
        self.sampler = sampler
        self.batch_size = batch_size

    @classmethod
    def for_run(cls, run) -> TelemetryTracker | None:
        """The tracker of a case's ``CaseRun`` when the run asks for telemetry and the device is a GPU, else None.

        Built before the case's first phase, so NVML is opened then, not between the warm-up and the timed window
        where the GPU would idle.
        """
        ctx = run.ctx
        if not ctx.telemetry or not ctx.device.startswith("cuda"):
            return None
        return cls(TelemetrySampler(ctx.device, interval_ms=ctx.telemetry_interval_ms), run.batch)

    def __enter__(self) -> TelemetryTracker:
        self.sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.sampler.halt()
        finally:
            self.sampler.close()

    def fill(self, rec) -> None:
        """Write the window's telemetry fields into ``rec`` (after ``rec.iters`` is set)."""
        rec.telemetry = self.sampler.summary(images=self.batch_size * (rec.iters or 0))
