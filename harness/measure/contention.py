"""Contention over a case's warm-up and timed window (the warm-up's steady steps open the timed window): what
else used the machine while the case was measured, and the rule that calls a case noisy.

On the CPU (Linux ``/proc``), over the cores this process may use (its CPU affinity):

- ``steal_pct``: steal time (a hypervisor running other guests on these cores) over those cores' total time;
- ``other_cpu_pct``: the time other processes kept those cores busy, over their total time: their busy time from
  ``/proc/stat`` (user, nice, system, irq, softirq; steal is counted apart) less this process's own user and
  system time from ``/proc/self/stat``;
- ``load_avg``: the 1-minute load average from ``/proc/loadavg`` at the end of the window, and ``cpus``.

Both shares are counted in the kernel's clock ticks (100 a second), so over a window of fewer than
``MIN_CORE_SECONDS`` core-seconds they are too coarse to judge and are left null.

On a GPU, through the process's shared NVML reader (``harness.measure.telemetry.shared_reader``; only when the run
asks for telemetry), sampled every ``GPU_INTERVAL_S`` and at both ends of the window: ``gpu_other_processes``
(compute processes on the device other than this one), ``gpu_clock_events`` (the clock-event reasons seen, by
name) and ``gpu_temperature_c`` (the highest). NVML lists the pids of the host's pid namespace; when this
process's own pid is not among them (a container), one of the listed processes is taken to be this one.

The rule (``reasons``): a case was measured under contention when steal is ``STEAL_PCT`` or more, other processes
used ``OTHER_CPU_PCT`` or more of the cores this process may use, another compute process was on the GPU, or a
clock event of ``GPU_EVENTS`` (thermal or power-brake slowdowns) happened during the window. The steady power cap
(``sw_power_cap``) is recorded but not judged: a loaded GPU runs at its power limit every night alike.

Where ``/proc`` or NVML is absent, the fields are null and nothing raises.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.store.record import CONTENTION_FIELDS

#: Steal time at or above this share of the cores' time (%) is contention.
STEAL_PCT = 5.0
#: Other processes' CPU time at or above this share of the cores this process may use (%) is contention.
OTHER_CPU_PCT = 20.0
#: The CPU shares are judged only over windows of at least this many core-seconds (clock ticks are coarse).
MIN_CORE_SECONDS = 0.5
#: The clock-event reasons that are contention: the GPU was slowed by heat or by an external power brake.
GPU_EVENTS = frozenset({"sw_thermal_slowdown", "hw_thermal_slowdown", "hw_slowdown", "hw_power_brake_slowdown"})
#: Seconds between GPU samples during the window.
GPU_INTERVAL_S = 0.2


def allowed_cpus() -> list[int]:
    """The cores this process may run on (its CPU affinity), or every core where the affinity cannot be read."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative clock ticks of a set of cores (``busy`` without steal, ``steal``, ``total``) and of this process
    (``own``: user + system time)."""

    busy: int
    steal: int
    total: int
    own: int


class Proc:
    """The ``/proc`` files the CPU side reads, under ``root`` (a folder of fake files in tests), for ``cpus`` (the
    cores this process may use, by default its affinity). Every read returns None where a file is missing or not
    as expected."""

    def __init__(self, root: str | Path = "/proc", cpus: Iterable[int] | None = None) -> None:
        self.root = Path(root)
        self.cpus = sorted(cpus) if cpus is not None else allowed_cpus()
        self.hz = _clock_ticks()

    def times(self) -> CpuTimes | None:
        """The cores' and this process's cumulative clock ticks now."""
        try:
            lines = (self.root / "stat").read_text().splitlines()
            own_stat = (self.root / "self" / "stat").read_text()
            # comm (field 2) may hold spaces and parentheses: the fields after it start after the last ')'
            after = own_stat[own_stat.rindex(")") + 1 :].split()
            own = int(after[11]) + int(after[12])  # utime, stime: fields 14 and 15
            wanted = {f"cpu{c}" for c in self.cpus}
            busy = steal = total = 0
            found = False
            for line in lines:
                parts = line.split()
                if not parts or parts[0] not in wanted:
                    continue
                user, nice, system, idle, iowait, irq, softirq, stolen = (int(v) for v in (parts[1:9] + ["0"] * 8)[:8])
                busy += user + nice + system + irq + softirq  # guest time is already inside user and nice
                steal += stolen
                total += user + nice + system + idle + iowait + irq + softirq + stolen
                found = True
        except (OSError, ValueError, IndexError):
            return None
        return CpuTimes(busy, steal, total, own) if found else None

    def load_avg(self) -> float | None:
        """The 1-minute load average."""
        try:
            return float((self.root / "loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def cpu_shares(start: CpuTimes | None, end: CpuTimes | None, hz: int = 100) -> dict[str, float | None]:
    """``steal_pct`` and ``other_cpu_pct`` between two readings of the same cores (None where either reading is
    missing, or the window holds fewer than ``MIN_CORE_SECONDS`` core-seconds)."""
    out: dict[str, float | None] = {"steal_pct": None, "other_cpu_pct": None}
    if start is None or end is None:
        return out
    total = end.total - start.total
    if total <= 0 or total < MIN_CORE_SECONDS * hz:
        return out
    others = (end.busy - start.busy) - (end.own - start.own)
    out["steal_pct"] = round(100.0 * max(0, end.steal - start.steal) / total, 2)
    out["other_cpu_pct"] = round(100.0 * min(max(0, others), total) / total, 2)
    return out


class GpuWatch:
    """Samples a GPU's compute processes, clock-event reasons and temperature from ``start()`` to ``stop()``.

    ``reader`` is an ``NvmlReader`` (or a stand-in with ``read()`` and ``compute_pids()``). A sampling thread reads
    every ``interval_s``; one reading is also taken at each end, so a short window has two. A failing read ends the
    sampling and keeps what was read."""

    def __init__(self, reader: Any, interval_s: float = GPU_INTERVAL_S, pid: int | None = None) -> None:
        self.reader = reader
        self.interval_s = interval_s
        self.pid = os.getpid() if pid is None else pid
        self.samples: list[tuple[list[int] | None, int | None, float | None]] = []  # (pids, reasons mask, temp)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> bool:
        try:
            reading = self.reader.read()
            self.samples.append((self.reader.compute_pids(), reading.reasons_mask, reading.temperature_c))
            return True
        except Exception:  # a lost GPU costs the contention fields, not the case
            return False

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self._sample():
                return

    def start(self) -> None:
        self.samples = []
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="harness-contention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._sample()

    def result(self) -> tuple[dict[str, Any], list[int]]:
        """The GPU fields of ``contention`` over the window, and the other processes' pids where they are known
        (empty when this process's own pid is not among NVML's)."""
        from harness.measure.telemetry import decode_reasons

        out: dict[str, Any] = {"gpu_other_processes": None, "gpu_clock_events": None, "gpu_temperature_c": None}
        listed = [set(p) for p, _, _ in self.samples if p is not None]
        others: list[int] = []
        if listed:
            seen = set().union(*listed)
            if self.pid in seen:
                others = sorted(seen - {self.pid})
                out["gpu_other_processes"] = len(others)
            else:  # another pid namespace: this process is one of those listed
                out["gpu_other_processes"] = max(0, max(len(p) for p in listed) - 1)
        masks = [m for _, m, _ in self.samples if m is not None]
        if masks:
            union = 0
            for mask in masks:
                union |= int(mask)
            out["gpu_clock_events"] = decode_reasons(union)
        temps = [t for _, _, t in self.samples if t is not None]
        if temps:
            out["gpu_temperature_c"] = max(temps)
        return out, others


def reasons(contention: dict[str, Any], gpu_pids: list[int] | None = None) -> list[str]:
    """The contention rule (module docstring) applied to a record's ``contention`` group: one reason a user can act
    on per signal over its limit, empty when none is. ``gpu_pids`` names the other GPU processes where known."""
    c = contention or {}
    out = []
    other, cpus = c.get("other_cpu_pct"), c.get("cpus")
    if other is not None and other >= OTHER_CPU_PCT:
        cores = f"the {cpus} core{'' if cpus == 1 else 's'}" if cpus else "the cores"
        out.append(f"other processes used {other:.0f}% of {cores} this run may use")
    steal = c.get("steal_pct")
    if steal is not None and steal >= STEAL_PCT:
        out.append(f"CPU steal {steal:.0f}%")
    n = c.get("gpu_other_processes")
    if n:
        pids = f" ({'pid' if len(gpu_pids or []) == 1 else 'pids'} {', '.join(map(str, gpu_pids))})" if gpu_pids else ""
        out.append(f"another process on the GPU{pids}" if n == 1 else f"{n} other processes on the GPU{pids}")
    events = sorted(e for e in c.get("gpu_clock_events") or [] if e in GPU_EVENTS)
    if events:
        out.append(f"clock events: {', '.join(events)}")
    return out


class ContentionTracker:
    """The record's ``contention`` group over the timed window, as a tracker (``harness.measure.trackers``).

    Entering reads the CPU times and starts the GPU watch; leaving reads them again and stops it (also when the
    window fails); ``fill(rec)`` writes ``rec.contention`` and adds the rule's reasons to ``rec.noise``."""

    window = "case"  # the warm-up too: its steady steps open the timed window

    def __init__(self, proc: Proc | None = None, gpu: GpuWatch | None = None) -> None:
        self.proc = proc
        self.gpu = gpu
        self._start: CpuTimes | None = None
        self._end: CpuTimes | None = None
        self._load: float | None = None

    @classmethod
    def for_run(cls, run) -> ContentionTracker:
        """Every case has one: the CPU side always, the GPU side on a CUDA device when the run asks for telemetry
        and NVML can read the device."""
        ctx = run.ctx
        gpu = None
        if ctx.telemetry and ctx.device.startswith("cuda"):
            from harness.measure.telemetry import shared_reader

            reader, _why = shared_reader(ctx.device)
            if reader is not None:
                gpu = GpuWatch(reader)
        return cls(Proc(), gpu)

    def __enter__(self) -> ContentionTracker:
        self._start = self.proc.times() if self.proc is not None else None
        if self.gpu is not None:
            self.gpu.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self._end, self._load = self.proc.times(), self.proc.load_avg()
        if self.gpu is not None:
            self.gpu.stop()

    def result(self) -> tuple[dict[str, Any], list[str]]:
        """The ``contention`` group of the last window and the rule's reasons."""
        out: dict[str, Any] = dict.fromkeys(CONTENTION_FIELDS)
        pids: list[int] = []
        if self.proc is not None:
            cpus = len(self.proc.cpus)
            out.update(cpu_shares(self._start, self._end, self.proc.hz))
            out["load_avg"], out["cpus"] = self._load, cpus
        if self.gpu is not None:
            gpu, pids = self.gpu.result()
            out.update(gpu)
        return out, reasons(out, pids)

    def fill(self, rec) -> None:
        """Write ``rec.contention`` and add the reasons of contention to ``rec.noise``."""
        rec.contention, found = self.result()
        rec.noise = [*(rec.noise or []), *found]
