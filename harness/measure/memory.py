"""Peak memory of one case: CUDA allocator peaks after a reset, or the process's peak resident memory on CPU.

On Linux the kernel's peak-RSS mark (VmHWM) can be reset by writing 5 to ``/proc/self/clear_refs``, so the CPU peak
is the case's own, not the largest case's so far. Where that is not allowed, a sampling thread reads the current
RSS every few milliseconds instead (and the record's number is then a lower bound by up to one interval).

``MemoryTracker`` is a tracker (``harness.measure.trackers``) of the ``case`` window: its marks start after the
numerics reference passes and cover the warm-up and the timed window.
"""

from __future__ import annotations

import threading
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc's malloc_trim), so the next case's peak resident memory is not
    the previous model's: glibc keeps freed blocks mapped, and resnet18 after wide_resnet101_2 would read 1.1 GiB."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


#: Bytes per element of a case's weights and feature maps: fp32, and the 16-bit copies autocast makes.
_FP32, _LOW = 4, 2


def need_estimate(case) -> int:
    """About how many bytes a case holds at its peak, from the zoo's spec alone (no model is built): for ordering
    cases by the memory they need, not as a measurement. Its weights (fp32), their 16-bit copies under autocast,
    and for training their gradients and momentum and the feature maps kept for the backward pass (about three
    per convolution: its output, its BatchNorm's and its ReLU's); an inference step holds little beside its
    weights. 0 for a model the zoo does not know."""
    from harness.zoo.catalog import CATALOG

    entry = CATALOG.get(case.model)
    if entry is None:
        return 0
    low = str(case.precision).startswith("amp")
    weights = entry.num_params * (_FP32 + (_LOW if low else 0))
    if case.mode != "train":
        return weights
    features = 3 * entry.feature_elements(case.resolution) * case.batch_size * (_LOW if low else _FP32)
    return weights + 2 * _FP32 * entry.num_params + features


def reset_rss_peak() -> None:
    """Reset the process's peak-RSS mark to its current resident memory (where the kernel allows it)."""
    _reset_hwm()


def rss_peak_bytes() -> int:
    """The process's peak resident memory in bytes since the last reset (its current RSS where unreadable)."""
    return 1024 * (_status_kib("VmHWM") or _status_kib("VmRSS") or 0)


class MemoryTracker:
    """Start before a case's measured phases, stop after them; ``stop()`` returns peak_allocated_mib,
    peak_reserved_mib (device memory, from the ``Device``; None on the CPU) and rss_peak_mib.

    As a tracker: entering starts the marks, leaving stops them (also when the case fails, so no sampling thread
    outlives its case), and ``fill(rec)`` writes the three fields.
    """

    window = "case"

    def __init__(self, device, sample_interval_s: float = 0.005) -> None:
        from harness.measure import device as devices

        self.device = devices.get(device) if isinstance(device, str) else device
        self.interval = sample_interval_s
        self._use_hwm = False
        self._peak_kib = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.running = False
        self.result: dict[str, float | None] = {}

    @classmethod
    def for_run(cls, run) -> MemoryTracker:
        """The tracker of a case's ``CaseRun``: every case has one."""
        return cls(run.dev)

    def __enter__(self) -> MemoryTracker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.running:
            self.result = self.stop()

    def fill(self, rec) -> None:
        """Write the peaks of the last window into ``rec``."""
        for key, value in self.result.items():
            setattr(rec, key, value)

    def start(self) -> None:
        self.running = True
        self.device.reset_memory_peak()
        self._use_hwm = _reset_hwm() and _status_kib("VmHWM") is not None
        if not self._use_hwm:
            self._peak_kib = _status_kib("VmRSS") or 0
            self._thread = threading.Thread(target=self._sample, daemon=True, name="rss-sampler")
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak_kib = max(self._peak_kib, _status_kib("VmRSS") or 0)

    def stop(self) -> dict[str, float | None]:
        self.running = False
        out: dict[str, float | None] = {"peak_allocated_mib": None, "peak_reserved_mib": None, "rss_peak_mib": None}
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = self._peak_kib
        else:
            peak = _status_kib("VmHWM") or 0
        out["rss_peak_mib"] = round(peak / 1024, 1) if peak else None
        out["peak_allocated_mib"], out["peak_reserved_mib"] = self.device.memory_peak_mib()
        return out
