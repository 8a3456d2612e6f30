"""The run's health: a peak probe at the start and at the end of each run, their spread, the best of the two as the
peak, and MFU against it that is never above 1.

The probes here are fakes (``measure_peak`` patched to return set numbers, in the order the run asks for them), so
the tests see exactly which probe a figure came from; ``test_peak.py`` measures the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.measure import peak as peaks
from harness.measure import phases
from harness.measure.peak import best_of, case_mfu, health, peak_for_case, probe_values, spread, with_mfu

SUITE = """
name: health
defaults:
  device: cpu
  resolution: 32
  batch_size: 2
  mode: inference
  warmup: {min_iters: 2, max_iters: 3, max_seconds: 1}
  measure: {min_seconds: 0.02, min_iters: 3, max_iters: 6, repeats: 1}
matrix:
  model: [resnet18]
  channels_last: [false, true]
telemetry: {nvml: false}
"""


def fake_probe(scale: float, copy: float = 10.0) -> dict:
    """What ``measure_peak`` returns, with every TFLOP/s figure ``scale`` (fp32 matmul a little below its convs)."""
    return {
        "matmul_tflops": {"fp32": 0.5 * scale, "bf16": 2.0 * scale},
        "conv_tflops": {"fp32": 0.8 * scale, "fp32_cl": scale, "bf16": 1.5 * scale, "bf16_cl": 3.0 * scale},
        "copy_gbps": copy,
        "method": "fake",
        "device": "cpu",
        "matrix_size": {"fp32": 1024, "bf16": 1024},
        "conv_batch": 8,
        "skipped": {},
        "conv_skipped": {},
        "budget_s": 0.0,
        "seconds": 0.01,
    }


class Probes(list):
    """The probes still to come (the test fills it), and ``taken``: those the run has asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[dict] = []

    def measure(self, device, budget_s=None) -> dict:
        self.taken.append(self.pop(0))
        return self.taken[-1]


@pytest.fixture
def probes(monkeypatch) -> Probes:
    """Make every probe of this process return the next of the list the test fills."""
    queue = Probes()
    monkeypatch.setattr(peaks, "measure_peak", queue.measure)
    return queue


# --- the numbers ---------------------------------------------------------------------------------------------------


def test_spread_is_the_relative_difference_of_each_number_both_probes_have():
    start, end = fake_probe(1.0, copy=10.0), fake_probe(0.5, copy=5.0)
    del end["conv_tflops"]["bf16_cl"]
    got = spread(start, end)
    assert got["matmul_tflops.fp32"] == 0.5 and got["conv_tflops.fp32_cl"] == 0.5 and got["copy_gbps"] == 0.5
    assert "conv_tflops.bf16_cl" not in got  # only what both measured
    assert spread(start, None) == {} and spread(start, start) == dict.fromkeys(probe_values(start), 0.0)
    assert set(health(start)) == {"start", "end", "spread"} and health(start)["end"] is None


def test_the_peak_is_the_best_of_start_and_end_key_by_key():
    start, end = fake_probe(1.0, copy=20.0), fake_probe(2.0, copy=10.0)
    start["at"], end["at"] = "2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z"
    end["matmul_tflops"]["fp32"] = 0.1  # the end probe read one dtype low
    peak = best_of(start, end)
    assert peak["matmul_tflops"] == {"fp32": 0.5, "bf16": 4.0}
    assert peak["conv_tflops"]["fp32_cl"] == 2.0 and peak["copy_gbps"] == 20.0
    assert peak["probes"] == [start["at"], end["at"]] and "at" not in peak and "seconds" not in peak
    assert best_of(start, None)["matmul_tflops"] == start["matmul_tflops"]
    assert best_of(None, None) is None


def test_the_peak_of_a_case_is_the_larger_of_matmul_and_conv_in_its_memory_format():
    peak = fake_probe(1.0)
    assert peak_for_case(peak, "fp32", False) == 0.8  # the NCHW conv beats the matmul
    assert peak_for_case(peak, "fp32", True) == 1.0  # channels_last has its own conv figure
    assert peak_for_case(peak, "amp_bf16", False) == 2.0  # here the matmul is the larger
    assert peak_for_case(peak, "amp_bf16", True) == 3.0
    assert peak_for_case(peak, "amp_fp16", False) is None  # not measured on this device
    assert peak_for_case({"matmul_tflops": {"tf32": 156.0}}, "tf32", True) == 156.0  # a peak from before convs
    assert peak_for_case(None, "fp32", False) is None and peak_for_case(peak, "int8", False) is None


def test_mfu_above_the_peak_is_unknown_not_a_number_above_one():
    peak = fake_probe(1.0)
    assert case_mfu(0.5, peak, "fp32", True) == (0.5, None)
    value, note = case_mfu(1.5, peak, "fp32", True)
    assert value is None
    assert note == "MFU unknown for fp32: achieved 1.5 TFLOP/s exceeds the measured peak 1"
    assert case_mfu(None, peak, "fp32", False) == (None, None) and case_mfu(0.5, None, "fp32", False) == (None, None)


def test_a_record_is_held_again_against_a_better_peak():
    low, high = fake_probe(0.1), fake_probe(1.0)
    rec = {"status": "ok", "precision": "fp32", "channels_last": True, "achieved_tflops": 0.5, "message": None}
    measured = with_mfu(rec, low)
    assert measured["mfu"] is None and measured["message"].startswith("MFU unknown for fp32")
    again = with_mfu(measured, high)
    assert again["mfu"] == 0.5 and again["message"] is None  # the MFU note goes with the MFU it was about
    other = with_mfu({**rec, "message": "something else"}, low)
    assert other["message"] == "something else"  # a message that is not about MFU stays
    assert with_mfu({**rec, "status": "oom"}, high) == {**rec, "status": "oom"}
    assert with_mfu(rec, None) == rec


# --- a run --------------------------------------------------------------------------------------------------------


def _session(tmp_path: Path):
    from harness.launch.session import new_plan
    from harness.suite import load_suite

    (tmp_path / "health.yaml").write_text(SUITE)
    return new_plan(load_suite(tmp_path / "health.yaml"), tmp_path / "out", None)


def _run(session):
    from harness.launch.inline import run_inline
    from harness.suite import Suite

    return run_inline(session, Suite.from_resolved(session.manifest.suite), report=False, show_progress=False)


def _manifest(session) -> dict:
    return json.loads((session.run_dir / "manifest.json").read_text())


def test_an_inline_run_probes_at_start_and_end_and_holds_mfu_against_the_best(tmp_path, probes):
    # the start probe reads far below what the cases achieve (a busy machine); the end probe is quiet
    probes.extend([fake_probe(1e-9), fake_probe(1.0, copy=30.0)])
    session = _session(tmp_path)
    status, records = _run(session)
    assert status == "complete" and len(probes.taken) == 2 and not probes
    m = _manifest(session)
    start, end = m["health"]["start"], m["health"]["end"]
    assert start["matmul_tflops"]["fp32"] == 0.5e-9 and end["matmul_tflops"]["fp32"] == 0.5
    assert start["at"] <= end["at"] and m["health"]["spread"]["matmul_tflops.fp32"] == pytest.approx(1.0)
    assert m["peak"]["conv_tflops"]["fp32_cl"] == 1.0 and m["peak"]["copy_gbps"] == 30.0
    # measured against the start probe, each case's MFU was unknown; the run closed with the best of both
    for rank_record in (json.loads(line) for line in (session.run_dir / "records-rank0.jsonl").open()):
        assert rank_record["mfu"] is None and rank_record["message"].startswith("MFU unknown for fp32")
    assert len(records) == 2
    for r in records:
        bound = 1.0 if r["channels_last"] else 0.8
        assert r["status"] == "ok" and r["message"] is None
        # mfu is stored to 6 decimals: a tiny MFU is only that close
        assert 0 < r["mfu"] <= 1 and r["mfu"] == pytest.approx(r["achieved_tflops"] / bound, rel=1e-3, abs=1e-6)
    from harness.store.loader import read_run

    assert [r["mfu"] for r in read_run(session.run_dir).records] == [r["mfu"] for r in records]


def test_an_interrupted_run_has_no_end_probe_and_its_resume_keeps_the_first_start(tmp_path, probes, monkeypatch):
    from harness.launch.session import resume_plan

    def stop_at_second_case(name, run):
        if name == "timed" and run.case.channels_last:
            raise KeyboardInterrupt

    monkeypatch.setattr(phases, "PHASE_HOOKS", [stop_at_second_case])
    probes.extend([fake_probe(1.0), fake_probe(2.0)])
    session = _session(tmp_path)
    status, _ = _run(session)
    assert status == "interrupted" and len(probes.taken) == 1
    first = _manifest(session)["health"]
    assert first["end"] is None and first["spread"] == {} and first["start"]["at"]

    monkeypatch.setattr(phases, "PHASE_HOOKS", [])
    resumed = resume_plan(session.run_dir)
    status, records = _run(resumed)
    assert status == "complete" and len(records) == 2 and len(probes.taken) == 2
    m = _manifest(resumed)
    assert m["health"]["start"] == first["start"]  # no second start probe
    assert m["health"]["end"]["matmul_tflops"]["fp32"] == 1.0 and m["peak"]["matmul_tflops"]["fp32"] == 1.0
    assert m["health"]["spread"]["matmul_tflops.fp32"] == 0.5


def test_a_device_without_a_peak_records_no_health(tmp_path, monkeypatch):
    from harness.launch.session import RunSession

    session = _session(tmp_path)
    monkeypatch.setattr(RunSession, "_probe", lambda self, device: None)
    assert session.peak("cpu") is None and session.end_probe("cpu") is None
    assert _manifest(session)["health"] is None and _manifest(session)["peak"] is None


def test_a_failing_end_probe_leaves_end_null_and_the_run_goes_on(tmp_path, probes, monkeypatch, capsys):
    session = _session(tmp_path)
    probes.append(fake_probe(1.0))
    peak = session.peak("cpu")

    def broken(device, budget_s=None):
        raise RuntimeError("device lost")

    monkeypatch.setattr(peaks, "measure_peak", broken)
    got = session.end_probe("cpu")
    assert got["end"] is None and got["start"]["matmul_tflops"] == peak["matmul_tflops"]
    assert "end-of-run peak probe failed: device lost" in capsys.readouterr().err


# --- a distributed run's manifest ---------------------------------------------------------------------------------


class _Groups:
    """Two ranks' control group, seen from rank 0: gather returns this rank's object and rank 1's."""

    rank = 0

    def __init__(self, other: dict) -> None:
        self.other = other

    def gather(self, obj):
        return [obj, self.other]


def test_rank_zero_keeps_every_ranks_health_and_its_own_at_the_top(tmp_path, probes):
    from harness.launch import distributed

    session = _session(tmp_path)
    probes.extend([fake_probe(1.0), fake_probe(0.5)])
    session.peak("cpu", 0)
    rank1 = {"peak": best_of(fake_probe(0.2), fake_probe(0.4)), "health": health(fake_probe(0.2), fake_probe(0.4))}
    distributed._end_probe(_Groups(rank1), session, "cpu")
    m = _manifest(session)
    assert m["ranks"]["1"]["health"] == json.loads(json.dumps(rank1["health"]))
    assert m["ranks"]["0"]["health"]["end"]["matmul_tflops"]["fp32"] == 0.25
    assert m["health"] == m["ranks"]["0"]["health"] and m["peak"] == m["ranks"]["0"]["peak"]
    assert m["ranks"]["0"]["health"]["spread"]["matmul_tflops.fp32"] == 0.5
    # records are held against their own rank's peak
    assert session.peak_of(1)["matmul_tflops"]["fp32"] == 0.2
    assert session.peak_of(0)["matmul_tflops"]["fp32"] == 0.5


def test_the_manifest_keeps_health_at_the_top_and_per_rank():
    from harness.store.manifest import Manifest

    top = health(fake_probe(1.0), fake_probe(0.9))
    m = Manifest.from_dict(
        {"run_id": "r", "health": top, "ranks": {"1": {"health": top, "peak": best_of(top["start"])}}}
    )
    again = Manifest.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again.health == top and again.ranks["1"].health == top and "health" not in again.extra
    assert "health" not in again.ranks["1"].extra
    # a run without a probe says so: the key is there, null, like ``peak``
    empty = Manifest(run_id="r").to_dict()
    assert empty["health"] is None and empty["peak"] is None
