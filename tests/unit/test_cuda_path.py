"""The CUDA branch, walked on the CPU through the test double of the CUDA device (``FakeCudaApi``).

Each test names the defect of the GPU path it guards: the run must make its device current with an index, put
each rank on its own GPU, measure memory after the numerics pass, run with cuDNN's autotuner, start every compiled
case from a clean dynamo state, refuse bf16/TF32 on pre-Ampere GPUs, and stop a worker whose CUDA context a sticky
error has broken.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.errors import HarnessError, LaunchError
from harness.measure import device as devices
from harness.measure.runner import CaseContext, ModelCache, measure_case
from tests.synthetic import tiny_case

SUITE = """
name: cuda-walk
defaults:
  device: {device}
  resolution: 32
  batch_size: 2
  timeout_s: 120
  warmup: {{min_iters: 2, max_iters: 4, max_seconds: 1, window: 2, tolerance: 0.5}}
  measure: {{min_seconds: 0.02, min_iters: 3, max_iters: 10, repeats: 1}}
matrix:
  model: [resnet18]
  mode: {modes}
  precision: {precisions}
  channels_last: {formats}
telemetry: {{nvml: true, interval_ms: 20}}
"""


@pytest.fixture
def fake():
    """Two fake CUDA devices (compute capability 9.0) for this test; the real API afterwards."""
    api = devices.FakeCudaApi(count=2)
    old = devices.install_cuda_api(api)
    try:
        yield api
    finally:
        devices.install_cuda_api(old)


def _suite(tmp_path: Path, **fields):
    from harness.suite import load_suite

    values = {
        "device": "cuda",
        "modes": "[inference]",
        "precisions": "[fp32]",
        "formats": "[false]",
        **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in fields.items()},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(**values))
    return load_suite(path)


def _run(tmp_path: Path, suite):
    from harness.launch.inline import run_inline
    from harness.launch.session import new_plan

    plan = new_plan(suite, tmp_path / "out", None)
    status, records = run_inline(plan, suite, report=False, show_progress=False)
    return plan, status, {r["case_id"]: r for r in records}


_case = tiny_case


# --- defect 1: a bare "cuda" became torch.device("cuda"), which set_device refuses -------------------------------


def test_cuda_and_auto_resolve_to_an_indexed_device(monkeypatch):
    from harness.measure.precision import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    old = devices.install_cuda_api(devices.FakeCudaApi(count=2))
    try:
        assert resolve_device("cuda") == "cuda:0"
        assert resolve_device("auto") == "cuda:0"
        assert resolve_device("cuda", local_rank=1, local_world_size=2) == "cuda:1"
        assert resolve_device("cuda:1") == "cuda:1"
        assert resolve_device("cpu") == "cpu"
    finally:
        devices.install_cuda_api(old)


def test_a_whole_inline_run_walks_the_cuda_branch(tmp_path, fake):
    suite = _suite(
        tmp_path,
        modes="[inference, train]",
        precisions="[fp32, tf32, amp_fp16, amp_bf16]",
        formats="[false, true]",
    )
    plan, status, records = _run(tmp_path, suite)
    assert status == "complete"
    assert plan.run_dir.name.endswith("-cuda0") and plan.manifest.environment["device_type"] == "cuda"
    # the test double has no peak to probe: no health at start or end, no MFU, and nothing said about it
    assert plan.manifest.peak is None and plan.manifest.health is None
    assert all(r["mfu"] is None and r["message"] is None for r in records.values())
    assert len(records) == 16
    for case_id, r in records.items():
        assert r["status"] == "ok", (case_id, r["message"])
        assert r["device"] == "cuda:0"
        # defect 5: cuDNN's autotuner on for CUDA cases; TF32 exactly for tf32
        assert r["cudnn_benchmark"] is True
        assert r["tf32_matmul"] is (r["precision"] == "tf32")
        # the step times come from the device's events, with the synced wall clock kept beside them
        assert r["wall_ms"] and len(r["wall_ms"]) == len(r["samples_ms"]) == r["iters"]
        assert r["peak_allocated_mib"] and r["peak_reserved_mib"]
        if r["precision"] != "fp32":
            assert 0 <= r["numerics"]["top1_agreement"] <= 1
    # the device was made current by index before any event or kernel, and never as a bare "cuda"
    names = fake.names()
    assert ("set_device", 0) in fake.calls and names.index("set_device") < names.index("event")
    assert names.count("event") >= 2 * sum(r["iters"] for r in records.values())
    # the flags of the cases are restored when they end
    assert torch.backends.cudnn.benchmark is False and torch.backends.cuda.matmul.allow_tf32 is False


def test_cpu_cases_keep_the_autotuner_flag_off(tmp_path):
    ctx = CaseContext(run_id="r", suite="s", run_dir=tmp_path, device="cpu", model_cache=ModelCache())
    assert measure_case(_case(), ctx)["cudnn_benchmark"] is False


# --- defect 3: cuda:N put every rank on one GPU -------------------------------------------------------------------


def test_a_pinned_gpu_is_refused_for_several_ranks_on_a_node(fake):
    from harness.launch.elastic import check_devices

    with pytest.raises(HarnessError, match=r"cuda:1 pins every one of the 2 ranks.*device: cuda"):
        devices.resolve("cuda:1", local_rank=0, local_world_size=2)
    assert devices.resolve("cuda:1", local_rank=0, local_world_size=1) == "cuda:1"  # one rank per node
    cases = [_case(device="cuda:0")]
    with pytest.raises(LaunchError, match=r"cuda:0 pins all 2 workers .* device: cuda"):
        check_devices(2, cases, gpus=2)
    check_devices(1, cases, gpus=2)
    check_devices(2, [_case(device="cuda")], gpus=2)


# --- defect 4: the peak memory of AMP and TF32 cases was the fp32 reference pass's -------------------------------


def test_memory_marks_start_after_the_numerics_reference_pass(tmp_path, fake, monkeypatch):
    from harness.measure import phases

    real = phases.numerics

    def noted(model, x, case, device):
        fake.calls.append(("numerics",))
        return real(model, x, case, device)

    monkeypatch.setattr(phases, "numerics", noted)
    ctx = CaseContext(run_id="r", suite="s", run_dir=tmp_path, device="cuda:0", model_cache=ModelCache())
    ctx.dev.activate()
    fake.calls.clear()
    rec = measure_case(_case(device="cuda", precision="amp_bf16"), ctx)
    assert rec["status"] == "ok", rec["message"]
    names = fake.names()
    resets = [i for i, n in enumerate(names) if n == "reset_peak_memory_stats"]
    assert resets and names.index("numerics") < resets[-1]
    reads = [i for i, n in enumerate(names) if n == "max_memory_allocated"]
    assert resets[-1] < reads[-1]


def test_cpu_peak_memory_of_an_amp_case_is_not_the_fp32_reference_pass(tmp_path, monkeypatch):
    """The process's peak-RSS mark is reset after the numerics pass (the CPU side of the same defect)."""
    from harness.measure import memory, phases

    order: list[str] = []
    real_numerics, real_start = phases.numerics, memory.MemoryTracker.start
    monkeypatch.setattr(phases, "numerics", lambda *a: (order.append("numerics"), real_numerics(*a))[1])

    def start(self):
        order.append("memory.start")
        return real_start(self)

    monkeypatch.setattr(memory.MemoryTracker, "start", start)
    ctx = CaseContext(run_id="r", suite="s", run_dir=tmp_path, device="cpu", model_cache=ModelCache())
    assert measure_case(_case(precision="amp_bf16"), ctx)["status"] == "ok"
    assert order == ["numerics", "memory.start"]


# --- defect 6: torch.compile state leaked from one case to the next ----------------------------------------------


def test_every_compiled_case_starts_from_a_clean_dynamo_state(tmp_path, monkeypatch):
    import torch._dynamo

    events: list[str] = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: events.append("reset"))

    def compile_(model, *args, **kwargs):
        events.append("compile")
        return model

    monkeypatch.setattr(torch, "compile", compile_)
    ctx = CaseContext(run_id="r", suite="s", run_dir=tmp_path, device="cpu", model_cache=ModelCache())
    for batch in (1, 2):
        assert measure_case(_case(compile=True, batch_size=batch), ctx)["status"] == "ok"
    # each compile comes after a reset, and the state is dropped again when the case ends
    assert events == ["reset", "compile", "reset", "reset", "compile", "reset"]


# --- defect 9: bf16 was not skipped on pre-Ampere GPUs ------------------------------------------------------------


def test_pre_ampere_gpus_skip_bf16_and_tf32():
    volta = devices.CudaDevice(0, api=devices.FakeCudaApi(count=1, capability=(7, 0), name="Tesla V100"))
    assert "bfloat16" in volta.unsupported_reason("amp_bf16") and "8.0" in volta.unsupported_reason("amp_bf16")
    assert "TF32" in volta.unsupported_reason("tf32")
    assert volta.unsupported_reason("amp_fp16") is None and volta.unsupported_reason("fp32") is None
    hopper = devices.CudaDevice(0, api=devices.FakeCudaApi(count=1, capability=(9, 0)))
    assert hopper.unsupported_reason("amp_bf16") is None and hopper.unsupported_reason("tf32") is None
    assert "does not exist" in devices.CudaDevice(3, api=devices.FakeCudaApi(count=2)).unsupported_reason("fp32")


def test_a_pre_ampere_bf16_case_is_a_skipped_record(tmp_path):
    api = devices.FakeCudaApi(count=1, capability=(7, 5), name="Tesla T4")
    ctx = CaseContext(
        run_id="r",
        suite="s",
        run_dir=tmp_path,
        device="cuda:0",
        model_cache=ModelCache(),
        dev=devices.CudaDevice(0, api=api),
    )
    rec = measure_case(_case(device="cuda", precision="amp_bf16"), ctx)
    assert rec["status"] == "skipped" and "Tesla T4" in rec["message"] and "bfloat16" in rec["message"]


# --- defect 11: a sticky CUDA error did not stop the worker -------------------------------------------------------


def test_sticky_cuda_errors_are_told_from_case_failures():
    dev = devices.CudaDevice(0, api=devices.FakeCudaApi())
    assert dev.is_sticky_error(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert dev.is_sticky_error(RuntimeError("CUDA error: device-side assert triggered"))
    assert not dev.is_sticky_error(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not dev.is_sticky_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not devices.CpuDevice().is_sticky_error(RuntimeError("CUDA error: an illegal memory access"))


def test_a_sticky_cuda_error_stops_the_run_and_a_resume_finishes_it(tmp_path, fake, monkeypatch):
    from harness.launch.inline import run_inline
    from harness.launch.session import resume_plan
    from harness.measure import scenarios

    suite = _suite(tmp_path, precisions="[fp32, amp_bf16, amp_fp16]")
    real = scenarios.make_scenario

    def broken(mode, model, x, y, device, precision):
        scenario = real(mode, model, x, y, device, precision)
        if precision == "amp_bf16":

            def step():
                raise RuntimeError("CUDA error: an illegal memory access was encountered")

            scenario.step = step
        return scenario

    monkeypatch.setattr(scenarios, "make_scenario", broken)
    plan, status, records = _run(tmp_path, suite)
    assert status == "failed"
    bad = records["resnet18/inference/bs2/amp_bf16/r32"]
    assert bad["status"] == "error" and "illegal memory access" in bad["message"] and "sticky" in bad["message"]
    # the case after it was not tried in the broken context (it would fail at once); the run says how to go on
    assert "resnet18/inference/bs2/amp_fp16/r32" not in records
    manifest = json.loads((plan.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "illegal memory access" in manifest["failure"]
    assert manifest["missing"] == ["resnet18/inference/bs2/amp_fp16/r32"]

    monkeypatch.setattr(scenarios, "make_scenario", real)  # a fresh process: a working context
    again = resume_plan(plan.run_dir)
    status, records = run_inline(again, suite, report=False, show_progress=False)
    assert status == "complete"
    assert {r["case_id"]: r["status"] for r in records} == {
        "resnet18/inference/bs2/fp32/r32": "ok",
        "resnet18/inference/bs2/amp_bf16/r32": "error",
        "resnet18/inference/bs2/amp_fp16/r32": "ok",
    }
