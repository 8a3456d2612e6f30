"""Consecutive cases of one model and memory format: the order a rank runs them in, and what the next one carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.launch.caseloop import run_cases, warm_order
from harness.measure import phases
from harness.measure.runner import CaseContext, ModelCache, measure_case
from harness.suite import load_suite
from tests.synthetic import tiny_case

ROOT = Path(__file__).resolve().parents[2]


def test_the_smoke_suite_runs_each_model_one_memory_format_at_a_time():
    cases = load_suite(ROOT / "suites" / "smoke.yaml").cases()
    ordered = warm_order(cases)
    assert sorted(c.id for c in ordered) == sorted(c.id for c in cases)  # the same cases, each once
    assert [c.id for c in ordered[:8]] == [
        "resnet18/inference/bs2/fp32/r64",
        "resnet18/inference/bs2/amp_bf16/r64",
        "resnet18/train/bs2/fp32/r64",
        "resnet18/train/bs2/amp_bf16/r64",
        "resnet18/inference/bs2/fp32/cl/r64",
        "resnet18/inference/bs2/amp_bf16/cl/r64",
        "resnet18/train/bs2/fp32/cl/r64",
        "resnet18/train/bs2/amp_bf16/cl/r64",
    ]
    # models keep the suite's order, and a model's memory format changes once
    assert [c.model for c in ordered[::8]] == [c.model for c in cases[::8]]
    switches = sum(a.channels_last != b.channels_last for a, b in zip(ordered[:-1], ordered[1:], strict=True))
    assert switches == 2 * 10 - 1


def test_compiled_cases_stay_where_the_suite_puts_them():
    cases = [tiny_case(), tiny_case(compile=True), tiny_case(channels_last=True), tiny_case(precision="amp_bf16")]
    assert [c.id for c in warm_order(cases)] == [cases[0].id, cases[3].id, cases[1].id, cases[2].id]


def test_profiled_cases_run_after_all_the_others():
    """The profiler loads torch's compiler stack and leaves its state behind: no other case is measured after it."""
    cases = load_suite(ROOT / "suites" / "smoke.yaml").cases()
    ordered = warm_order(cases, last=lambda case: bool(case.profile))
    profiled = [c.id for c in cases if c.profile]
    assert profiled == ["resnet18/train/bs2/fp32/r64"]
    assert [c.id for c in ordered[-len(profiled) :]] == profiled
    assert [c.id for c in ordered[:-1]] == [c.id for c in warm_order(cases) if not c.profile]


def test_the_case_loop_runs_the_cases_profile_asks_for_last(tmp_path):
    cases = [tiny_case(), tiny_case(mode="train"), tiny_case(precision="amp_bf16")]
    ctx = CaseContext(
        run_id="r", suite="s", run_dir=Path(tmp_path), device="cpu", model_cache=ModelCache(),
        extra_profile=lambda case: case.mode == "train",
    )  # fmt: skip
    written = run_cases(cases, ctx)
    assert [r["case_id"] for r in written] == [cases[0].id, cases[2].id, cases[1].id]
    assert [r["status"] for r in written] == ["ok"] * 3
    assert written[2]["profile"]["trace_dir"] and not written[0]["profile"]["trace_dir"]


@pytest.fixture
def carried(monkeypatch) -> dict:
    seen: dict = {}
    hook = lambda name, run: seen.__setitem__(run.case.id, run.carried) if name == "warmup" else None  # noqa: E731
    monkeypatch.setattr(phases, "PHASE_HOOKS", [hook])
    return seen


def test_only_the_next_case_of_one_model_and_format_carries_a_stable_warm_state(tmp_path, carried):
    ctx = CaseContext(run_id="r", suite="s", run_dir=Path(tmp_path), device="cpu", model_cache=ModelCache())
    # a warm-up that can end stable: enough steps for two windows
    warm = {"min_iters": 2, "max_iters": 200, "max_seconds": 30, "window": 2, "tolerance": 0.5}
    first, second = tiny_case(warmup=warm), tiny_case(mode="train", warmup=warm)
    other_format = tiny_case(channels_last=True, warmup=warm)
    # same format as the case before; its warm-up ends at max_iters, not stable, so the next carries nothing
    cut_short = tiny_case(precision="amp_bf16", channels_last=True, warmup={"min_iters": 1, "max_iters": 1})
    after = tiny_case(precision="amp_bf16", mode="train", channels_last=True, warmup=warm)
    records = [measure_case(c, ctx) for c in (first, second, other_format, cut_short, after)]
    assert [r["status"] for r in records] == ["ok"] * 5
    assert records[0]["warmup_reason"] == "stable" and records[3]["warmup_reason"] == "max_iters"
    assert [carried[c.id] for c in (first, second, other_format, cut_short, after)] == [False, True, False, True, False]


def test_the_case_loop_runs_the_warm_order(tmp_path, carried):
    ctx = CaseContext(run_id="r", suite="s", run_dir=Path(tmp_path), device="cpu", model_cache=ModelCache())
    cases = [tiny_case(), tiny_case(channels_last=True), tiny_case(mode="train")]
    written = run_cases(cases, ctx)
    assert [r["case_id"] for r in written] == [cases[0].id, cases[2].id, cases[1].id]


def test_on_the_cpu_the_groups_needing_the_most_memory_run_first():
    """``largest_first``: the warm groups in the order of their largest case's memory (the zoo's estimate), so the
    run's largest case runs on a fresh heap; each group stays whole, in the suite's order inside, the profiled
    case still last, every case once."""
    from harness.measure.memory import need_estimate

    cases = load_suite(ROOT / "suites" / "smoke.yaml").cases()
    ordered = warm_order(cases, last=lambda case: bool(case.profile), largest_first=True)
    assert sorted(c.id for c in ordered) == sorted(c.id for c in cases)
    assert ordered[-1].profile and not any(c.profile for c in ordered[:-1])
    assert [c.model for c in ordered[:8]] == ["wide_resnet101_2"] * 8
    assert max(cases, key=need_estimate).model == "wide_resnet101_2"
    groups: list[list] = []  # runs of one model in one memory format, as they come
    for case in ordered[:-1]:
        if groups and (groups[-1][0].model, groups[-1][0].channels_last) == (case.model, case.channels_last):
            groups[-1].append(case)
        else:
            groups.append([case])
    assert len(groups) == 20  # each group whole: ten models, two memory formats, each once
    needs = [max(need_estimate(c) for c in group) for group in groups]
    assert needs == sorted(needs, reverse=True)
    for group in groups:
        assert [c.id for c in group] == [c.id for c in cases if c in group and not c.profile]  # the suite's order
    # equal needs keep the suite's order: each model's NCHW group before its channels_last one
    assert [c.channels_last for c in ordered[:8:4]] == [False, True]


def test_need_estimates_rank_what_a_case_holds():
    """Training holds more than inference; a larger model, batch or image more than a smaller one; an unknown
    model sorts where nothing moves it."""
    from harness.measure.memory import need_estimate

    base = tiny_case(model="resnet50", mode="train", batch_size=8, resolution=128)
    assert need_estimate(tiny_case(model="resnet50", mode="inference", batch_size=8, resolution=128)) < need_estimate(
        base
    )
    assert need_estimate(tiny_case(model="resnet101", mode="train", batch_size=8, resolution=128)) > need_estimate(base)
    assert need_estimate(tiny_case(model="resnet50", mode="train", batch_size=16, resolution=128)) > need_estimate(base)
    assert need_estimate(tiny_case(model="resnet50", mode="train", batch_size=8, resolution=160)) > need_estimate(base)
    assert need_estimate(type("Case", (), {"model": "alexnet", "mode": "train"})()) == 0


def test_the_case_loop_on_the_cpu_runs_the_larger_model_first(tmp_path):
    cases = [tiny_case(), tiny_case(model="resnet34")]
    ctx = CaseContext(run_id="r", suite="s", run_dir=Path(tmp_path), device="cpu", model_cache=ModelCache())
    written = run_cases(cases, ctx)
    assert [r["case_id"] for r in written] == [cases[1].id, cases[0].id]
