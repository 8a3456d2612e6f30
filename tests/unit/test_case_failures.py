"""Failures are data: a case that errors, runs out of memory or times out becomes a record, and the run goes on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.measure import runner as case_mod
from harness.measure.runner import CaseContext, ModelCache, measure_case
from harness.suite import Case
from tests.synthetic import tiny_case


def _case(**overrides) -> Case:
    return tiny_case(**{"batch_size": 8, **overrides})


@pytest.fixture
def ctx(tmp_path) -> CaseContext:
    return CaseContext(run_id="r", suite="s", run_dir=Path(tmp_path), device="cpu", model_cache=ModelCache())


def _oom_above(limit: int, monkeypatch):
    real = case_mod.__dict__.get("_measure")

    def fake(case, ctx, rec, batch):
        if batch > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(case, ctx, rec, batch)

    monkeypatch.setattr(case_mod, "_measure", fake)


def test_oom_is_recorded_and_the_next_case_runs(ctx, monkeypatch):
    _oom_above(4, monkeypatch)
    rec = measure_case(_case(), ctx)
    assert rec["status"] == "oom" and "out of memory" in rec["message"]
    assert rec["throughput_img_s"] is None
    assert measure_case(_case(batch_size=2), ctx)["status"] == "ok"


def test_oom_batch_reduction_is_opt_in_and_recorded(ctx, monkeypatch):
    _oom_above(2, monkeypatch)
    rec = measure_case(_case(oom_reduce=True), ctx)
    assert rec["status"] == "ok"
    assert (rec["requested_batch_size"], rec["batch_size"]) == (8, 2)


def test_exception_becomes_error_record(ctx, monkeypatch):
    def broken_step(*args, **kwargs):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED\nsecond line of detail")

    monkeypatch.setattr("harness.measure.scenarios.make_scenario", broken_step)
    rec = measure_case(_case(), ctx)
    assert rec["status"] == "error"
    assert rec["message"] == "RuntimeError: cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"
    assert measure_case(_case(batch_size=2, mode="train"), ctx)["status"] == "error"  # still patched: data, no raise


def test_timeout_becomes_timeout_record(ctx):
    rec = measure_case(_case(mode="train", timeout_s=0.2, measure={"min_seconds": 30, "min_iters": 1000}), ctx)
    assert rec["status"] == "timeout" and "timeout" in rec["message"]


def test_mfu_above_one_is_unknown_on_the_record(ctx):
    ctx.peak = {"matmul_tflops": {"fp32": 1e-9}}  # a peak far below what the model achieves
    rec = measure_case(_case(batch_size=2), ctx)
    assert rec["status"] == "ok" and rec["mfu"] is None
    assert rec["message"].startswith("MFU unknown for fp32: achieved ")
    assert "exceeds the measured peak" in rec["message"]
