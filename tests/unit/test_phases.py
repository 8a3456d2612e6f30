"""A case as a recipe of phases: the phase hooks hear every phase that runs, and a tracker is one class in a list."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.measure import phases, trackers
from harness.measure.runner import CaseContext, ModelCache, measure_case
from tests.synthetic import tiny_case


@pytest.fixture
def ctx(tmp_path) -> CaseContext:
    return CaseContext(run_id="r", suite="s", run_dir=Path(tmp_path), device="cpu", model_cache=ModelCache())


@pytest.fixture
def hooks(monkeypatch) -> list:
    installed: list = []
    monkeypatch.setattr(phases, "PHASE_HOOKS", installed)
    return installed


def test_hooks_hear_each_phase_that_runs_in_order(ctx, hooks):
    heard: list[str] = []
    hooks.append(lambda name, run: heard.append(name))
    assert measure_case(tiny_case(), ctx)["status"] == "ok"
    # a single-rank case has no trial; nobody asked for a profile or accuracy
    assert heard == ["prepare", "build", "warmup", "timed", "record", "ops", "mfu"]
    heard.clear()
    rec = measure_case(tiny_case(profile=True), ctx)
    assert rec["status"] == "ok" and heard[-1] == "profile" and rec["profile"]["trace_dir"]


def test_a_hook_that_raises_fails_the_case_as_data(ctx, hooks):
    def fail(name, run):
        if name == "warmup":
            raise RuntimeError("injected at warmup")

    hooks.append(fail)
    rec = measure_case(tiny_case(), ctx)
    assert rec["status"] == "error" and rec["message"] == "RuntimeError: injected at warmup"
    assert rec["warmup_iters"] is None and rec["throughput_img_s"] is None


def test_a_hook_sees_the_timed_samples_at_record_and_may_wrap_the_step(ctx, hooks):
    seen: dict = {}

    def hook(name, run):
        if name == "warmup":
            step = run.step

            def counted():
                seen["steps"] = seen.get("steps", 0) + 1
                return step()

            run.step = counted
        if name == "record":
            seen["samples"] = len(run.samples)

    hooks.append(hook)
    rec = measure_case(tiny_case(), ctx)
    assert rec["status"] == "ok" and seen["samples"] == rec["iters"] > 0
    assert seen["steps"] == rec["warmup_iters"] + rec["iters"]


class _Spy:
    """A tracker of the timed window that records when it was entered and left, and writes one field."""

    window = "timed"
    events: list[str] = []

    @classmethod
    def for_run(cls, run):
        return cls()

    def __enter__(self):
        self.events.append("enter")
        return self

    def __exit__(self, *exc):
        self.events.append("exit" if exc[0] is None else "exit-failed")

    def fill(self, rec):
        self.events.append("fill")
        rec.message = f"spy saw {rec.iters} steps"


def test_a_new_tracker_is_one_class_added_to_the_list(ctx, hooks, monkeypatch):
    monkeypatch.setattr(trackers, "TRACKERS", [*trackers.TRACKERS, _Spy])
    _Spy.events = []
    hooks.append(lambda name, run: _Spy.events.append(name) if name in ("timed", "record") else None)
    rec = measure_case(tiny_case(), ctx)
    assert rec["status"] == "ok" and rec["message"] == f"spy saw {rec['iters']} steps"
    assert _Spy.events == ["timed", "enter", "exit", "record", "fill"]
    # a case that fails inside the window still leaves it, and fills nothing
    _Spy.events = []
    rec = measure_case(tiny_case(mode="train", timeout_s=0.5, measure={"min_seconds": 30, "min_iters": 1000}), ctx)
    assert rec["status"] == "timeout"
    assert _Spy.events in ([], ["timed", "enter", "exit-failed"])  # the deadline may pass in the warm-up already
