"""A run counts operations in a child process, so the worker never loads the compiler stack that FlopCounterMode's
dispatch imports; the counts are the same as counted in the worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.measure import ops

ROOT = Path(__file__).resolve().parents[2]


def test_a_planned_count_comes_from_one_child_and_equals_the_count_made_here(monkeypatch):
    monkeypatch.setattr(ops, "_PLANNED", set())
    monkeypatch.setattr(ops, "_COUNTED", {})
    ops._forward_flops.cache_clear()
    children = []
    real = ops._count_in_child
    monkeypatch.setattr(ops, "_count_in_child", lambda pairs: (children.append(pairs), real(pairs))[1])
    monkeypatch.delitem(sys.modules, "torch._dynamo", raising=False)  # as in a worker: the compiler not loaded
    ops.plan([("resnet18", 32), ("resnet50", 32)])
    try:
        first, second = ops._forward_flops("resnet18", 32), ops._forward_flops("resnet50", 32)
    finally:
        ops._forward_flops.cache_clear()
    assert children == [[("resnet18", 32), ("resnet50", 32)]]  # one child for both
    assert (first, second) == (ops.count_forward_here("resnet18", 32), ops.count_forward_here("resnet50", 32))


def test_a_child_that_cannot_count_leaves_the_count_to_this_process(monkeypatch):
    monkeypatch.setattr(ops, "_PLANNED", set())
    monkeypatch.setattr(ops, "_COUNTED", {})
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    monkeypatch.delitem(sys.modules, "torch._dynamo", raising=False)
    ops._forward_flops.cache_clear()
    ops.plan([("resnet18", 32)])
    try:
        assert ops._forward_flops("resnet18", 32) == ops.count_forward_here("resnet18", 32)
    finally:
        ops._forward_flops.cache_clear()


def test_a_run_leaves_the_compiler_unloaded_in_its_worker(tmp_path):
    """An eager run's worker (here the run's own process: one CPU worker) never imports torch._dynamo: its
    records still carry the operation counts."""
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ndefaults: {device: cpu, resolution: 32, batch_size: 2,"
        " warmup: {min_iters: 1, max_iters: 2, max_seconds: 1, window: 2},"
        " measure: {min_seconds: 0.0, min_iters: 2, max_iters: 2, repeats: 1}}\n"
        "matrix: {model: [resnet18], mode: [train], precision: [fp32]}\n"
        "launch: {strategy: sweep, nproc_per_node: 1}\ntelemetry: {nvml: false}\n"
    )
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['harness', 'run', {str(suite)!r}, '--no-report', '--no-progress', '--out', {str(tmp_path)!r}]\n"
        "try:\n    runpy.run_module('harness', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('DYNAMO', 'torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "DYNAMO False" in done.stdout, done.stdout + done.stderr
    import json

    records = [json.loads(line) for f in tmp_path.rglob("records*.jsonl") for line in f.read_text().splitlines()]
    assert records and all(r["status"] == "ok" and r["flops_per_img"] > 0 for r in records)
