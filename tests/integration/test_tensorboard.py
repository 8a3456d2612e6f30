"""Traces from two ranks open in TensorBoard's profiler plugin: one run (the case), one worker per rank, its views.

Starts a real TensorBoard on a free local port and reads the plugin's own HTTP API, the one its web page uses.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install harness[tensorboard])")
pytest.importorskip("torch_tb_profiler", reason="torch-tb-profiler is not installed (pip install harness[tensorboard])")

RUN = "resnet18-inference-bs2"
PLUGIN = "/data/plugin/pytorch_profiler"
READY_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(base: str, route: str, **params):
    url = f"{base}{PLUGIN}{route}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=20) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    import torch

    from harness.measure.profiler import profile_case
    from harness.zoo import build_model

    root = tmp_path_factory.mktemp("tb")
    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    x = torch.randn(2, 3, 32, 32)

    def step():
        with torch.inference_mode():
            model(x)

    for rank in (0, 1):
        out = profile_case(step, root / RUN, rank=rank)
        assert out["error"] is None, out["error"]
    return root


def wait_for_run(base: str, proc: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"TensorBoard exited with {proc.returncode}:\n{log.read()[-3000:]}")
        try:
            last = get_json(base, "/runs")
            if RUN in last["runs"] and not last["loading"]:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        time.sleep(0.5)
    log.seek(0)
    pytest.fail(f"run {RUN!r} not listed within {READY_TIMEOUT_S} s (last answer {last}):\n{log.read()[-3000:]}")


def test_tensorboard_lists_the_run_its_rank_workers_and_views(logdir, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "tensorboard.log", "w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]
            + ["--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_run(base, proc, log)
            views = get_json(base, "/views", run=RUN)
            assert {"Overview", "Operator", "Trace"} <= set(views)
            assert get_json(base, "/workers", run=RUN, view="Overview") == ["rank0", "rank1"]
            for worker in ("rank0", "rank1"):
                spans = get_json(base, "/spans", run=RUN, worker=worker)
                span = spans[0] if spans else None
                params = {"run": RUN, "worker": worker} | ({"span": span} if span else {})
                overview = get_json(base, "/overview", **params)
                assert overview["steps"]["rows"], f"no profiler steps parsed for {worker}"
                table = get_json(base, "/operation/table", group_by="Operation", **params)
                assert any("convolution" in op["name"] for op in table["data"]), table["data"][:3]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
