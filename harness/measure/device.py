"""The device seam: one small object per device kind that owns everything a case asks of its device.

A ``Device`` places tensors, makes the device current, waits for queued work, times steps, resets and reads
memory marks, empties caches, sets the numerics flags a precision needs (and restores them), resets
``torch.compile`` state between cases, says which precisions it cannot run, and tells a failure that leaves the
device unusable (a sticky CUDA error) from one that ends only its case. ``CpuDevice`` and ``CudaDevice`` are the
two kinds; the measurement code asks the seam and never ``torch.cuda`` directly, so the CUDA control flow is one
code path whether it runs on a GPU or on its test double.

``CudaDevice`` talks to the GPU through a small ``CudaApi`` (``torch.cuda`` in production). ``FakeCudaApi`` is the
test double: it runs the CUDA branch on the CPU (tensors stay on the CPU, events read the host clock) and records
every call it gets, so tests can check what a run asked of the GPU. Setting ``HARNESS_FAKE_CUDA=N`` makes every
process of a run (workers started by torchrun included) see ``N`` fake CUDA devices; it is for tests only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from harness.errors import HarnessError, RunStopped

#: Test-only: ``HARNESS_FAKE_CUDA=N`` gives this process N fake CUDA devices backed by the CPU.
FAKE_CUDA_ENV = "HARNESS_FAKE_CUDA"

#: Text of CUDA errors after which the process's CUDA context is unusable: every later kernel fails at once.
STICKY_CUDA_ERRORS = (
    "illegal memory access",
    "illegal address",
    "illegal instruction",
    "misaligned address",
    "unspecified launch failure",
    "device-side assert triggered",
    "uncorrectable ecc error",
    "gpu is lost",
    "fallen off the bus",
    "cuda error: an illegal",
    "launch timed out",
    "hardware stack error",
    "invalid program counter",
)


class DeviceLostError(RunStopped):
    """The device is unusable for the rest of this process (a sticky CUDA error): stop measuring here.

    Raised by the worker loop after the failed case's record is written; a fresh process (``harness run
    --resume``, or the elastic agent's restart) gets a new CUDA context and goes on with the remaining cases.
    """


# ---------------------------------------------------------------------------------------------------------------
# The CUDA API the seam uses, real and fake


class CudaApi:
    """The slice of ``torch.cuda`` the harness uses. Tensors of this API's devices live on ``torch_device(i)``."""

    fake = False

    def __init__(self) -> None:
        import torch

        self._cuda = torch.cuda

    def is_available(self) -> bool:
        return bool(self._cuda.is_available())

    def device_count(self) -> int:
        return int(self._cuda.device_count()) if self._cuda.is_available() else 0

    def torch_device(self, index: int):
        import torch

        return torch.device("cuda", index)

    def set_device(self, index: int) -> None:
        self._cuda.set_device(index)

    def synchronize(self, index: int) -> None:
        self._cuda.synchronize(index)

    def event(self):
        return self._cuda.Event(enable_timing=True)

    def reset_peak_memory_stats(self, index: int) -> None:
        self._cuda.reset_peak_memory_stats(index)

    def max_memory_allocated(self, index: int) -> int:
        return int(self._cuda.max_memory_allocated(index))

    def max_memory_reserved(self, index: int) -> int:
        return int(self._cuda.max_memory_reserved(index))

    def empty_cache(self) -> None:
        self._cuda.empty_cache()

    def capability(self, index: int) -> tuple[int, int]:
        return tuple(self._cuda.get_device_capability(index))

    def name(self, index: int) -> str:
        return str(self._cuda.get_device_name(index))

    def mem_get_info(self, index: int) -> tuple[int, int]:
        return tuple(self._cuda.mem_get_info(index))


class _HostEvent:
    """A CUDA event stand-in on the host clock: ``record()`` notes the time, ``elapsed_time`` gives ms."""

    def __init__(self) -> None:
        self.t: float | None = None

    def record(self, stream=None) -> None:
        self.t = time.perf_counter()

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: _HostEvent) -> float:
        if self.t is None or end.t is None:
            raise RuntimeError("elapsed_time() of an event that was not recorded")
        return (end.t - self.t) * 1000.0


class FakeCudaApi(CudaApi):
    """The CUDA test double: ``count`` devices of compute capability ``capability``, run on the CPU.

    Every call is appended to ``calls`` as a tuple (name, *args), so a test can assert what a run asked of the GPU
    and in which order. Memory peaks are the process's peak resident memory since the last reset (the kernel's
    VmHWM mark), so they move with what a case allocates.
    """

    fake = True

    def __init__(self, count: int = 1, capability: tuple[int, int] = (9, 0), name: str = "Fake CUDA device") -> None:
        self.count = count
        self.cap = capability
        self.device_name = name
        self.current = 0
        self.calls: list[tuple] = []
        self._lock = threading.Lock()

    def _note(self, *call) -> None:
        with self._lock:
            self.calls.append(call)

    def names(self) -> list[str]:
        """The names of the calls made so far, in order."""
        return [c[0] for c in self.calls]

    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count

    def torch_device(self, index: int):
        import torch

        return torch.device("cpu")

    def _check(self, index: int) -> None:
        if not 0 <= index < self.count:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index} ({self.count} fake device(s))")

    def set_device(self, index: int) -> None:
        self._check(index)
        self._note("set_device", index)
        self.current = index

    def synchronize(self, index: int) -> None:
        self._note("synchronize", index)

    def event(self):
        self._note("event")
        return _HostEvent()

    def reset_peak_memory_stats(self, index: int) -> None:
        from harness.measure.memory import reset_rss_peak

        self._note("reset_peak_memory_stats", index)
        reset_rss_peak()

    def max_memory_allocated(self, index: int) -> int:
        from harness.measure.memory import rss_peak_bytes

        self._note("max_memory_allocated", index)
        return rss_peak_bytes()

    def max_memory_reserved(self, index: int) -> int:
        from harness.measure.memory import rss_peak_bytes

        self._note("max_memory_reserved", index)
        return rss_peak_bytes()

    def empty_cache(self) -> None:
        self._note("empty_cache")

    def capability(self, index: int) -> tuple[int, int]:
        return self.cap

    def name(self, index: int) -> str:
        return self.device_name

    def mem_get_info(self, index: int) -> tuple[int, int]:
        return (64 * 2**30, 80 * 2**30)


_api: CudaApi | None = None


def cuda_api() -> CudaApi:
    """The process's CUDA API: the fake when ``HARNESS_FAKE_CUDA`` is set (or one was installed), else torch.cuda."""
    global _api
    if _api is None:
        fake = os.environ.get(FAKE_CUDA_ENV, "").strip()
        _api = FakeCudaApi(int(fake)) if fake and fake != "0" else CudaApi()
    return _api


def install_cuda_api(api: CudaApi | None) -> CudaApi | None:
    """Replace the process's CUDA API (tests); None goes back to the environment's choice. Returns the old one."""
    global _api
    old, _api = _api, api
    return old


def cuda_count() -> int:
    """How many CUDA devices this process can use (0 without CUDA)."""
    try:
        return cuda_api().device_count()
    except Exception:
        return 0


# ---------------------------------------------------------------------------------------------------------------
# Devices


class Device:
    """What a case needs from its device. The CPU's answers are the defaults; ``CudaDevice`` overrides them."""

    kind = "cpu"
    name = "cpu"
    index: int | None = None

    @property
    def torch_device(self):
        """Where the case's tensors and model live."""
        import torch

        return torch.device("cpu")

    @property
    def autocast_type(self) -> str:
        """The ``device_type`` for ``torch.autocast`` and ``torch.amp.GradScaler``."""
        return self.torch_device.type

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def dist_backend(self) -> str:
        """The process-group backend for this device: nccl on CUDA, gloo elsewhere."""
        return "gloo"

    def activate(self) -> None:
        """Make this device the process's current one (CUDA events and kernels then go to it)."""

    def sync(self) -> None:
        """Wait until the device has finished all queued work."""

    def step_events(self) -> tuple[Any, Any] | None:
        """A (begin, end) pair of device timers for one step, or None where the host clock is the device's."""
        return None

    def reset_memory_peak(self) -> None:
        """Start the device-memory peak marks afresh (caches emptied first)."""

    def memory_peak_mib(self) -> tuple[float | None, float | None]:
        """Peak (allocated, reserved) device memory in MiB since the last reset; (None, None) without one."""
        return None, None

    def empty_cache(self) -> None:
        """Give cached device memory back (between models, and after an OOM)."""

    @contextlib.contextmanager
    def flags(self, precision: str) -> Iterator[dict[str, bool]]:
        """Set the numerics and autotuning flags a case of ``precision`` runs with, restore them afterwards.

        Yields the flags in force, for the record. TF32 is on exactly for ``tf32`` (off for everything else:
        a tf32 number measured with TF32 off, or an fp32 number with it on, is the commonest mislabelled result);
        cuDNN's autotuner is on for CUDA cases, as in the published figures the harness is compared with.
        """
        import torch

        saved = (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
        )
        on = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on
        torch.backends.cudnn.benchmark = self.is_cuda
        try:
            yield {"tf32_matmul": on, "cudnn_benchmark": torch.backends.cudnn.benchmark}
        finally:
            (
                torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark,
            ) = saved

    def reset_compile(self) -> None:
        """Forget every ``torch.compile`` graph and guard, so a case compiles for its own shapes alone.

        Without it a second batch size of the same model recompiles with dynamic shapes, and past dynamo's
        recompile limit the model silently runs eager while the record says ``compile: true``.
        """
        try:
            import torch._dynamo
        except ImportError:
            return
        torch._dynamo.reset()

    def unsupported_reason(self, precision: str) -> str | None:
        """Why ``precision`` cannot run here, or None when it can."""
        if precision == "tf32":
            return "tf32 is a CUDA tensor-core mode; on the CPU it would measure fp32 under another name"
        return None

    def is_sticky_error(self, exc: BaseException) -> bool:
        """True when ``exc`` leaves the device unusable for the rest of the process."""
        return False

    def ddp_device_ids(self) -> list[int] | None:
        """``device_ids`` for DistributedDataParallel (None for CPU modules)."""
        return None


class CpuDevice(Device):
    """The host CPU."""


class CudaDevice(Device):
    """CUDA device ``index`` (as CUDA numbers the visible ones), through ``api`` (torch.cuda or its test double)."""

    kind = "cuda"

    def __init__(self, index: int, api: CudaApi | None = None) -> None:
        self.index = index
        self.api = api or cuda_api()
        self.name = f"cuda:{index}"

    @property
    def torch_device(self):
        return self.api.torch_device(self.index)

    @property
    def dist_backend(self) -> str:
        # The test double runs on the CPU, where nccl does not exist: it exchanges over gloo instead.
        return "gloo" if self.api.fake else "nccl"

    def activate(self) -> None:
        self.api.set_device(self.index)

    def sync(self) -> None:
        self.api.synchronize(self.index)

    def step_events(self) -> tuple[Any, Any]:
        return self.api.event(), self.api.event()

    def reset_memory_peak(self) -> None:
        self.api.empty_cache()
        self.api.reset_peak_memory_stats(self.index)

    def memory_peak_mib(self) -> tuple[float | None, float | None]:
        return (
            round(self.api.max_memory_allocated(self.index) / 2**20, 1),
            round(self.api.max_memory_reserved(self.index) / 2**20, 1),
        )

    def empty_cache(self) -> None:
        self.api.empty_cache()

    def unsupported_reason(self, precision: str) -> str | None:
        if not self.api.is_available():
            return "no CUDA device is visible on this machine (set device: cpu or auto to run on the CPU)"
        count = self.api.device_count()
        if self.index >= count:
            return f"{self.name} does not exist: {count} CUDA device(s) visible"
        major, minor = self.api.capability(self.index)
        # bf16 and TF32 tensor cores arrive with Ampere (8.0). Older GPUs run bf16 only by emulation, which
        # torch.cuda.is_bf16_supported() counts as support: a number measured that way is not a bf16 number.
        if precision == "amp_bf16" and major < 8:
            return (
                f"{self.api.name(self.index)} (compute capability {major}.{minor}) has no bfloat16 tensor cores; "
                "bf16 needs 8.0+ (Ampere or newer)"
            )
        if precision == "tf32" and major < 8:
            return f"{self.api.name(self.index)} has no TF32 (needs compute capability 8.0+, has {major}.{minor})"
        return None

    def is_sticky_error(self, exc: BaseException) -> bool:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return False
        text = str(exc).lower()
        accelerator = getattr(torch, "AcceleratorError", None)
        is_cuda_error = (accelerator is not None and isinstance(exc, accelerator)) or "cuda" in text
        return is_cuda_error and any(marker in text for marker in STICKY_CUDA_ERRORS)

    def ddp_device_ids(self) -> list[int] | None:
        return [self.index] if self.torch_device.type == "cuda" else None


def parse(name: str) -> tuple[str, int | None]:
    """``"cpu"`` -> ("cpu", None); ``"cuda"`` -> ("cuda", None); ``"cuda:N"`` -> ("cuda", N). Raises on others."""
    text = str(name).strip().lower()
    kind, sep, index = text.partition(":")
    if kind == "cpu" and not sep:
        return "cpu", None
    if kind == "cuda" and (not sep or index.isdigit()):
        return "cuda", int(index) if sep else None
    raise HarnessError(f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N (N a number)")


def resolve(spec: str, local_rank: int | None = None, local_world_size: int = 1) -> str:
    """A suite's device as a concrete name: ``cpu`` or ``cuda:N``, always with an index.

    ``auto`` is ``cuda`` when a GPU is visible, else ``cpu``. A bare ``cuda`` is the rank's own GPU under a
    distributed launch (``cuda:LOCAL_RANK``) and ``cuda:0`` otherwise. ``cuda:N`` names one GPU, so it is refused
    when several ranks share a node: every rank would measure on the same GPU.
    """
    if spec == "auto":
        spec = "cuda" if cuda_count() > 0 else "cpu"
    kind, index = parse(spec)
    if kind == "cpu":
        return "cpu"
    if index is None:
        return f"cuda:{local_rank if local_rank is not None else 0}"
    if local_world_size > 1:
        raise HarnessError(
            f"device: {spec} pins every one of the {local_world_size} ranks on this node to one GPU; "
            "use device: cuda (or auto) so that each rank measures on its own GPU (cuda:LOCAL_RANK), "
            f"or run one worker per node (--nproc-per-node 1) to use {spec}"
        )
    return f"cuda:{index}"


def get(name: str) -> Device:
    """The ``Device`` of a concrete name (``cpu`` or ``cuda:N``; a bare ``cuda`` is ``cuda:0``)."""
    kind, index = parse(name)
    if kind == "cpu":
        return CpuDevice()
    return CudaDevice(0 if index is None else index)
