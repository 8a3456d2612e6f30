"""torch.profiler traces for the cases a suite names, and the operator table kept inside the record.

``profile_case(step_fn, trace_dir, rank)`` (the window of a ``ProfileTracker``) runs ``step_fn`` under
torch.profiler with a wait/warm-up/active schedule and writes one gzipped Chrome trace per rank::

    <trace_dir>/rank<N>.<timestamp>.pt.trace.json.gz

That is the layout TensorBoard's profiler plugin (torch-tb-profiler) reads: every folder holding traces is a run
(here: a case), and the part of the file name before the timestamp is the worker (here: the rank). Perfetto and
HTA open the same files. Profiling runs outside the timed window, so a case keeps its measurement; a profiler
failure becomes the ``error`` text of the record's profile group, never an exception.

Top ops are ranked by self time (time inside the op itself, not its children): CPU self time on CPU; on CUDA,
the GPU time of the kernels each op launched, since that is where a GPU case spends its time. ``share`` is that
time over the total of the same kind over the active steps (CPU: all self CPU time, including the Python between
ops; CUDA: all kernel time), so the shares of the listed ops sum to at most 1.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

TRACE_SUFFIX = ".pt.trace.json.gz"


def trace_files(trace_dir: Path, rank: int) -> set[Path]:
    """The gzipped traces of ``rank`` in ``trace_dir``."""
    return set(Path(trace_dir).glob(f"rank{rank}.*{TRACE_SUFFIX}"))


def check_trace_dir_writable(path: Path | str) -> None:
    """Raise ``HarnessError`` unless ``path`` is (or can be created as) a folder this process can write traces to.

    Meant for the runner to call before a run starts, so a bad output folder stops the run before any case is
    measured rather than costing every profiled case its trace.
    """
    path = Path(path)
    fix = "choose another results folder or fix its permissions"
    if path.exists() and not path.is_dir():
        raise HarnessError(f"cannot write profiler traces to {path}: it exists and is not a folder; {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-", suffix=".tmp") as probe:
            probe.write(b"harness")
            probe.flush()
    except OSError as exc:
        raise HarnessError(f"cannot write profiler traces to {path}: {exc.strerror or exc}; {fix}") from exc


def _is_step_marker(name: str) -> bool:
    return name.startswith("ProfilerStep")


def top_ops(events: Any, on_cuda: bool, top_k: int) -> list[dict[str, Any]]:
    """The ``top_k`` operators of a profiler's ``key_averages()`` by self time, as JSON-ready rows.

    Each row: ``name``, ``calls``, ``self_time_ms`` (self CPU time, ms), ``self_cuda_time_ms`` (GPU time of the
    kernels the op launched itself, ms; None on CPU) and ``share`` (see the module docstring).
    """
    from torch.autograd import DeviceType

    def device_time(evt) -> float:
        return float(getattr(evt, "self_device_time_total", 0.0) or 0.0)

    if on_cuda:
        total = sum(device_time(e) for e in events if e.device_type != DeviceType.CPU)
        ops = [e for e in events if e.device_type == DeviceType.CPU and not _is_step_marker(e.key)]
        rank_by = device_time
    else:
        total = sum(float(e.self_cpu_time_total) for e in events)
        ops = [e for e in events if not _is_step_marker(e.key)]

        def rank_by(evt):
            return float(evt.self_cpu_time_total)

    ops = [e for e in ops if rank_by(e) > 0]
    ops.sort(key=rank_by, reverse=True)
    return [
        {
            "name": e.key,
            "calls": int(e.count),
            "self_time_ms": float(e.self_cpu_time_total) / 1000.0,
            "self_cuda_time_ms": device_time(e) / 1000.0 if on_cuda else None,
            "share": rank_by(e) / total if total > 0 else 0.0,
        }
        for e in ops[:top_k]
    ]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


class ProfileTracker:
    """torch.profiler over a window of its own steps, as a tracker (``harness.measure.trackers``) of the ``profile``
    window, which runs after the timed window so a profiled case keeps its measurement.

    Entering makes ``trace_dir`` and starts the profiler with a ``wait``/``warmup``/``active`` schedule; the window
    runs ``steps`` steps, calling ``step()`` after each; leaving stops the profiler and reads the operator table.
    ``result`` is the record's profile group: ``trace_dir`` (str, or None when no trace was written), ``top_ops``
    (see ``top_ops``; times in ms over the ``active`` steps) and ``error`` (None, or why there is no trace or
    table). A failure of the folder, the profiler or a step becomes ``error``: leaving swallows a step's exception
    (not an interrupt), and ``steps`` is 0 when the profiler could not start. ``fill(rec)`` writes ``rec.profile``,
    its ``trace_dir`` relative to ``relative_to`` when given (the run folder, so the record stays right when the
    folder is moved or copied).
    """

    window = "profile"

    def __init__(
        self,
        trace_dir: Path,
        rank: int = 0,
        device: str = "cpu",
        wait: int = 1,
        warmup: int = 1,
        active: int = 3,
        top_k: int = 15,
        relative_to: Path | None = None,
    ) -> None:
        import torch

        self.trace_dir = Path(trace_dir)
        self.rank = rank
        self.device = device
        self.schedule = (wait, warmup, active)
        self.top_k = top_k
        self.relative_to = relative_to
        self.on_cuda = device.startswith("cuda") and torch.cuda.is_available()
        self.result: dict[str, Any] = {"trace_dir": None, "top_ops": [], "error": None}
        self._before: set[Path] | None = None
        self._prof = None

    @property
    def steps(self) -> int:
        """How many steps the window runs: the whole schedule once the profiler runs, else none."""
        return sum(self.schedule) if self._prof is not None else 0

    def __enter__(self) -> ProfileTracker:
        from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

        try:
            self.trace_dir.mkdir(parents=True, exist_ok=True)
            self._before = trace_files(self.trace_dir, self.rank)
        except OSError as exc:
            self.result["error"] = f"cannot create trace folder {self.trace_dir}: {exc.strerror or exc}"
            return self
        wait, warmup, active = self.schedule
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.on_cuda else [])
        try:
            prof = profile(
                activities=activities,
                schedule=schedule(wait=wait, warmup=warmup, active=active, repeat=1),
                on_trace_ready=tensorboard_trace_handler(
                    str(self.trace_dir), worker_name=f"rank{self.rank}", use_gzip=True
                ),
                record_shapes=True,
            )
            self._prof = prof.__enter__()
        except Exception as exc:  # a profiler that cannot start costs the trace, not the case
            self.result["error"] = f"profiling failed: {_reason(exc)}"
        return self

    def step(self) -> None:
        """Mark the end of one step of the window (after the device finished it)."""
        if self.on_cuda:
            import torch

            torch.cuda.synchronize(torch.device(self.device))
        self._prof.step()

    def __exit__(self, exc_type, exc, tb) -> bool:
        failure = exc if isinstance(exc, Exception) else None
        if self._prof is not None:
            prof, self._prof = self._prof, None
            try:
                prof.__exit__(exc_type, exc, tb)
                if exc is None:
                    self.result["top_ops"] = top_ops(prof.key_averages(), self.on_cuda, self.top_k)
            except Exception as err:  # a profiler failure costs the table, not the case
                failure = err
        if failure is not None:
            self.result["error"] = f"profiling failed: {_reason(failure)}"
        if self._before is not None:
            if trace_files(self.trace_dir, self.rank) - self._before:
                self.result["trace_dir"] = str(self.trace_dir)
            elif self.result["error"] is None:
                self.result["error"] = f"the profiler wrote no trace for rank {self.rank} under {self.trace_dir}"
        return isinstance(exc, Exception)

    def profile(self, step_fn: Callable[[], Any]) -> dict[str, Any]:
        """Run the window: ``steps`` calls of ``step_fn()`` under the profiler; returns ``result``."""
        with self:
            for _ in range(self.steps):
                step_fn()
                self.step()
        return self.result

    def fill(self, rec) -> None:
        """Write the profile group into ``rec.profile``."""
        rec.profile = dict(self.result)
        if rec.profile["trace_dir"] and self.relative_to is not None:
            rec.profile["trace_dir"] = str(self.trace_dir.relative_to(self.relative_to))


def profile_case(
    step_fn: Callable[[], Any], trace_dir: Path, rank: int = 0, device: str = "cpu", **schedule
) -> dict[str, Any]:
    """Profile ``wait + warmup + active`` calls of ``step_fn()`` and write this rank's trace under ``trace_dir``.

    ``schedule`` takes ``wait``, ``warmup``, ``active`` (1, 1, 3) and ``top_k`` (15) as ``ProfileTracker`` does.
    Returns the record's profile group (see ``ProfileTracker``). Never raises for a failure of the step or the
    profiler; the case keeps its measurement.
    """
    return ProfileTracker(trace_dir, rank, device, **schedule).profile(step_fn)
