"""The profiler on CPU: a resnet18 training step leaves a per-rank trace and an operator table; failures are data."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from harness.errors import HarnessError
from harness.measure.profiler import check_trace_dir_writable, profile_case
from harness.store.record import PROFILE_FIELDS
from harness.zoo import build_model


@pytest.fixture(scope="module")
def train_step():
    torch.manual_seed(0)
    model = build_model("resnet18")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def test_resnet18_step_writes_a_rank_trace_and_top_ops(train_step, tmp_path):
    trace_dir = tmp_path / "profiles" / "resnet18-train-bs2"
    out = profile_case(train_step, trace_dir, rank=3, top_k=10)
    assert set(out) == set(PROFILE_FIELDS)
    assert out["error"] is None
    assert out["trace_dir"] == str(trace_dir)
    traces = list(trace_dir.glob("*.pt.trace.json.gz"))
    assert len(traces) == 1 and traces[0].name.startswith("rank3.")
    trace = json.loads(gzip.decompress(traces[0].read_bytes()))
    names = {e.get("name") for e in trace["traceEvents"]}
    assert "aten::convolution_backward" in names
    assert sum(1 for n in names if str(n).startswith("ProfilerStep#")) == 3  # the active steps only

    ops = out["top_ops"]
    assert 0 < len(ops) <= 10
    assert {"name", "calls", "self_time_ms", "self_cuda_time_ms", "share"} <= set(ops[0])
    assert [o["self_time_ms"] for o in ops] == sorted((o["self_time_ms"] for o in ops), reverse=True)
    assert all(o["self_cuda_time_ms"] is None and o["calls"] >= 1 for o in ops)
    assert 0 < sum(o["share"] for o in ops) <= 1
    assert not any(o["name"].startswith("ProfilerStep") for o in ops)
    # resnet18 training time goes into convolutions: one of them must be among the top ops
    assert any("convolution" in o["name"] for o in ops)


def test_a_failing_step_gives_error_text_not_an_exception(tmp_path):
    calls = []

    def step():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory (simulated)\nsecond line")

    out = profile_case(step, tmp_path / "case", rank=0)
    assert out["top_ops"] == []
    assert out["error"] == "profiling failed: RuntimeError: CUDA out of memory (simulated)"
    assert out["trace_dir"] is None
    # the profiler released its hold: another case can be profiled afterwards
    again = profile_case(lambda: torch.ones(64, 64) @ torch.ones(64, 64), tmp_path / "next", rank=0)
    assert again["error"] is None and any(o["name"] == "aten::mm" for o in again["top_ops"])


def test_unwritable_trace_folder_is_error_text(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = profile_case(lambda: None, blocker / "case", rank=0)
    assert out["trace_dir"] is None and out["top_ops"] == []
    assert "cannot create trace folder" in out["error"]


def test_check_trace_dir_writable(tmp_path):
    check_trace_dir_writable(tmp_path / "new" / "profiles")
    assert (tmp_path / "new" / "profiles").is_dir()
    assert list((tmp_path / "new" / "profiles").iterdir()) == []  # the probe file is gone
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HarnessError, match="exists and is not a folder"):
        check_trace_dir_writable(blocker)
    with pytest.raises(HarnessError, match=r"cannot write profiler traces to .*file/sub"):
        check_trace_dir_writable(blocker / "sub")


@pytest.mark.gpu
def test_cuda_step_reports_kernel_time(tmp_path):
    a = torch.randn(2048, 2048, device="cuda")
    out = profile_case(lambda: a @ a, tmp_path / "gpu", rank=0, device="cuda")
    assert out["error"] is None
    top = out["top_ops"][0]
    assert top["self_cuda_time_ms"] > 0 and 0 < top["share"] <= 1
