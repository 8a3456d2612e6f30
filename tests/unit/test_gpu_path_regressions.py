"""The GPU path's defects, walked through ``torch.cuda`` itself rather than the seam's test double.

``torch.cuda`` is monkeypatched to answer as one GPU (is_available, device_count, capability, synchronize, Event,
memory marks) and the model and inputs stay on the CPU, so these tests exercise the production ``CudaApi``, which
calls the same torch.cuda functions a real GPU run does: indexed devices, one GPU per rank, memory marks after the
numerics pass, cuDNN's autotuner, a clean dynamo state per compiled case, bf16 refused before Ampere, and a sticky
CUDA error that stops the worker.
"""

from __future__ import annotations

import time

import pytest
import torch

from harness.measure.runner import CaseContext, ModelCache, measure_case
from tests.synthetic import tiny_case

_case = tiny_case


class _HostEvent:
    def __init__(self, *a, **k):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def query(self):
        return True

    def synchronize(self):
        pass

    def elapsed_time(self, end):
        return (end.t - self.t) * 1000.0


class _CpuCache:
    """A model cache whose model stays on the CPU whatever device it is asked for, whatever the arguments."""

    def __init__(self):
        self.inner = ModelCache()

    def get(self, name, impl, weights, device, seed=0, **_):
        return self.inner.get(name, impl, weights, "cpu", seed=seed)

    def clear(self):
        self.inner.clear()


class _Calls(list):
    cap: dict


@pytest.fixture
def gpu(monkeypatch):
    """torch.cuda answering as one GPU of compute capability 9.0; returns the list of CUDA calls made."""
    calls = _Calls()
    from harness.measure import device as devices

    monkeypatch.delenv(devices.FAKE_CUDA_ENV, raising=False)
    old_api = devices.install_cuda_api(None)  # the production CudaApi, over the patched torch.cuda
    cap = {"value": (9, 0)}

    def note(name, ret=None):
        def fn(*a, **k):
            calls.append((name, *a))
            return ret

        return fn

    c = torch.cuda
    monkeypatch.setattr(c, "is_available", lambda: True)
    monkeypatch.setattr(c, "device_count", lambda: 1)
    monkeypatch.setattr(c, "get_device_capability", lambda *a: cap["value"])
    monkeypatch.setattr(c, "get_device_name", lambda *a: "Tesla V100" if cap["value"][0] < 8 else "H100")
    monkeypatch.setattr(c, "is_bf16_supported", lambda *a, **k: True)  # emulated bf16 counts as support
    monkeypatch.setattr(c, "set_device", note("set_device"))
    monkeypatch.setattr(c, "synchronize", note("synchronize"))
    monkeypatch.setattr(c, "empty_cache", note("empty_cache"))
    monkeypatch.setattr(c, "reset_peak_memory_stats", note("reset_peak_memory_stats"))
    monkeypatch.setattr(c, "max_memory_allocated", note("max_memory_allocated", 2**20))
    monkeypatch.setattr(c, "max_memory_reserved", note("max_memory_reserved", 2**20))
    monkeypatch.setattr(c, "Event", _HostEvent)

    from harness.measure import scenarios

    real_batch = scenarios.synthetic_batch
    monkeypatch.setattr(
        scenarios, "synthetic_batch", lambda n, r, device, cl, seed=0: real_batch(n, r, "cpu", cl, seed=seed)
    )
    calls.cap = cap
    try:
        yield calls
    finally:
        devices.install_cuda_api(old_api)


def _gpu_ctx(tmp_path):
    return CaseContext(
        run_id="r", suite="s", run_dir=tmp_path, device="cuda:0", model_cache=_CpuCache(), telemetry=False
    )


# --- defect 1: a bare "cuda" reached torch.cuda.set_device ---------------------------------------------------------


def test_defect1_auto_and_cuda_resolve_to_an_indexed_device(gpu):
    from harness.measure.precision import resolve_device

    assert resolve_device("auto") == "cuda:0"  # "cuda"
    assert resolve_device("cuda") == "cuda:0"  # "cuda", which set_device(torch.device("cuda")) refuses
    assert resolve_device("cuda", local_rank=1) == "cuda:1"


# --- defect 3: device cuda:N put every rank of a node on one GPU ---------------------------------------------------


def test_defect3_a_pinned_gpu_is_refused_for_several_workers():
    from harness.errors import LaunchError
    from harness.launch.elastic import check_devices

    with pytest.raises(LaunchError):  # accepted, both workers measure on cuda:0
        check_devices(2, [_case(device="cuda:0")], gpus=2)
    check_devices(1, [_case(device="cuda:0")], gpus=2)
    check_devices(2, [_case(device="cuda")], gpus=2)


# --- defect 4: the peak memory of AMP/TF32 cases was the fp32 reference pass's ------------------------------------


@pytest.mark.parametrize("precision", ["amp_bf16", "tf32"])
def test_defect4_cuda_memory_marks_reset_after_the_numerics_pass(tmp_path, gpu, monkeypatch, precision):
    from harness.measure import phases

    real = phases.numerics
    monkeypatch.setattr(phases, "numerics", lambda *a: (gpu.append(("numerics",)), real(*a))[1])
    rec = measure_case(_case(precision=precision), _gpu_ctx(tmp_path))
    assert rec["status"] == "ok", rec["message"]
    names = [c[0] for c in gpu]
    resets = [i for i, n in enumerate(names) if n == "reset_peak_memory_stats"]
    assert resets and names.index("numerics") < resets[-1] < names.index("max_memory_allocated")


def test_defect4_cpu_rss_mark_reset_after_the_numerics_pass(tmp_path, monkeypatch):
    from harness.measure import memory, phases

    order: list[str] = []
    real_numerics, real_start = phases.numerics, memory.MemoryTracker.start
    monkeypatch.setattr(phases, "numerics", lambda *a: (order.append("numerics"), real_numerics(*a))[1])
    monkeypatch.setattr(memory.MemoryTracker, "start", lambda self: (order.append("start"), real_start(self))[1])
    ctx = CaseContext(run_id="r", suite="s", run_dir=tmp_path, device="cpu", model_cache=ModelCache())
    assert measure_case(_case(precision="amp_bf16"), ctx)["status"] == "ok"
    assert order == ["numerics", "start"]


# --- defect 5: cudnn.benchmark was never turned on -----------------------------------------------------------------


def test_defect5_cuda_cases_run_with_the_cudnn_autotuner_and_restore_it(tmp_path, gpu, monkeypatch):
    from harness.measure import scenarios

    seen: list[bool] = []
    real = scenarios.make_scenario

    def spy(mode, model, x, y, device, precision):
        s = real(mode, model, x, y, device, precision)
        step = s.step

        def noted():
            seen.append(torch.backends.cudnn.benchmark)
            return step()

        s.step = noted
        return s

    monkeypatch.setattr(scenarios, "make_scenario", spy)
    torch.backends.cudnn.benchmark = False
    rec = measure_case(_case(), _gpu_ctx(tmp_path))
    assert rec["status"] == "ok", rec["message"]
    assert rec["cudnn_benchmark"] is True and seen and all(seen)  # False, and False during every step
    assert torch.backends.cudnn.benchmark is False  # restored
    cpu = CaseContext(run_id="r", suite="s", run_dir=tmp_path, device="cpu", model_cache=ModelCache())
    assert measure_case(_case(), cpu)["cudnn_benchmark"] is False


# --- defect 6: torch.compile state leaked between cases ------------------------------------------------------------


def test_defect6_every_compiled_case_starts_from_a_clean_dynamo_state(tmp_path, monkeypatch):
    import torch._dynamo

    events: list[str] = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: events.append("reset"))
    monkeypatch.setattr(torch, "compile", lambda model, *a, **k: (events.append("compile"), model)[1])
    ctx = CaseContext(run_id="r", suite="s", run_dir=tmp_path, device="cpu", model_cache=ModelCache())
    for batch in (1, 2):
        assert measure_case(_case(compile=True, batch_size=batch), ctx)["status"] == "ok"
    # ["compile", "compile"]
    assert [e for i, e in enumerate(events) if e == "compile" and (i == 0 or events[i - 1] != "reset")] == []
    assert events.count("compile") == 2 and events[-1] == "reset"


# --- defect 9: bf16 was not skipped on pre-Ampere GPUs (emulated bf16 counts as "supported") ----------------------


def test_defect9_pre_ampere_gpu_skips_bf16(tmp_path, gpu):
    from harness.measure.precision import unsupported_reason

    gpu.cap["value"] = (7, 0)
    reason = unsupported_reason("cuda:0", "amp_bf16")
    assert reason is not None and "V100" in reason  # None, because is_bf16_supported() is True
    assert unsupported_reason("cuda:0", "amp_fp16") is None
    rec = measure_case(_case(precision="amp_bf16"), _gpu_ctx(tmp_path))
    assert rec["status"] == "skipped"  # measured and recorded "ok"
    gpu.cap["value"] = (8, 0)
    assert unsupported_reason("cuda:0", "amp_bf16") is None


# --- defect 11: a sticky CUDA error did not stop the worker --------------------------------------------------------


def test_defect11_a_sticky_cuda_error_stops_the_worker_after_its_record(tmp_path, gpu, monkeypatch):
    from harness.launch.caseloop import run_cases
    from harness.measure import scenarios

    real = scenarios.make_scenario

    def broken(mode, model, x, y, device, precision):
        s = real(mode, model, x, y, device, precision)
        if x.shape[0] == 2:

            def step():
                raise RuntimeError("CUDA error: an illegal memory access was encountered")

            s.step = step
        return s

    monkeypatch.setattr(scenarios, "make_scenario", broken)
    done: list[dict] = []
    cases = [_case(batch_size=2), _case(batch_size=4)]
    try:
        run_cases(cases, _gpu_ctx(tmp_path), on_done=done.append)
        stopped = False
    except Exception as exc:  # DeviceLostError
        stopped = "illegal memory access" in str(exc)
    assert [r["batch_size"] for r in done] == [2]  # [2, 4], the second case run in the broken context
    assert done[0]["status"] == "error" and "illegal memory access" in done[0]["message"]
    assert stopped
