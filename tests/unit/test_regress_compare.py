"""compare(): what gets flagged and what does not, on synthetic samples with known shifts and noise."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.regress import Thresholds, compare
from harness.store import load, read_run
from tests.synthetic import make_record, make_run


def only(comparison, bucket):
    cases = comparison.buckets[bucket]
    assert len(cases) == 1, comparison.counts()
    return cases[0]


def metric(case, name):
    return next(m for m in case.metrics if m.metric == name)


def test_a_real_slowdown_in_tight_samples_is_flagged():
    base = [make_record(step_ms=100, noise=0.01, n=30, seed=1)]
    cand = [make_record(step_ms=110, noise=0.01, n=30, seed=2)]
    result = compare(base, cand)
    case = only(result, "regressed")
    tput = metric(case, "throughput_img_s")
    assert tput.verdict == "regressed" and tput.test == "mann-whitney" and tput.p < 0.001
    assert tput.change == pytest.approx(-0.09, abs=0.015)
    assert metric(case, "step_ms_median").verdict == "regressed"
    assert result.failed


@pytest.mark.parametrize("seed", range(8))
def test_a_shift_inside_noisy_samples_is_not_flagged(seed):
    base = [make_record(step_ms=100, noise=0.30, n=10, seed=seed)]
    cand = [make_record(step_ms=110, noise=0.30, n=10, seed=seed + 100)]
    # The test alone does not flag it, and the intervals are too wide for any verdict: inconclusive.
    result = compare(base, cand)
    case = only(result, "inconclusive")
    tput = metric(case, "throughput_img_s")
    assert tput.test == "mann-whitney" and tput.p >= 0.001 and tput.verdict == "inconclusive"
    assert any(n.startswith("baseline: throughput 95% interval") and "(over 10%)" in n for n in case.noise)
    assert not result.failed
    # Allowing any interval width, the test decides: unchanged.
    loose = compare(base, cand, Thresholds(interval=1.0))
    assert metric(only(loose, "unchanged"), "throughput_img_s").verdict == "unchanged" and not loose.failed


def test_a_significant_shift_under_the_threshold_is_not_flagged():
    base = [make_record(step_ms=100, noise=0.01, n=30, seed=1)]
    cand = [make_record(step_ms=103, noise=0.01, n=30, seed=2)]
    case = only(compare(base, cand), "unchanged")
    tput = metric(case, "throughput_img_s")
    assert tput.p < 1e-6, "the test alone would flag it"
    assert abs(tput.change) < 0.05 and tput.verdict == "unchanged"
    # The same shift counts once the threshold is below it.
    assert compare(base, cand, Thresholds(relative=0.02)).buckets["regressed"]


@pytest.mark.parametrize("step_ms, verdict", [(124, "unchanged"), (126, "regressed"), (79, "improved")])
def test_throughput_and_step_time_agree_at_the_threshold(step_ms, verdict):
    # At 25%, steps 26% longer are throughput 20.6% lower: one change, the same verdict on both metrics (a
    # threshold taken on each metric's own relative change would flag the step time and pass the throughput).
    base = [make_record(step_ms=100, noise=0.005, n=30, seed=1)]
    cand = [make_record(step_ms=step_ms, noise=0.005, n=30, seed=2)]
    case = only(compare(base, cand, Thresholds(relative=0.25, interval=1.0)), verdict)
    tput, step = metric(case, "throughput_img_s"), metric(case, "step_ms_median")
    assert tput.verdict == step.verdict == verdict
    assert tput.change == pytest.approx(100 / step_ms - 1, abs=0.01)


def test_directions_are_per_metric():
    base = [make_record(step_ms=100, seed=1, rss_peak_mib=1000.0)]
    less_memory = [make_record(step_ms=100, seed=2, rss_peak_mib=800.0)]
    case = only(compare(base, less_memory), "improved")
    rss = metric(case, "rss_peak_mib")
    assert rss.verdict == "improved" and rss.test == "threshold-only" and "threshold only" in rss.note
    more_memory = [make_record(step_ms=100, seed=2, rss_peak_mib=1200.0)]
    assert metric(only(compare(base, more_memory), "regressed"), "rss_peak_mib").verdict == "regressed"
    faster = [make_record(step_ms=80, seed=3, rss_peak_mib=1000.0)]
    case = only(compare(base, faster), "improved")
    assert metric(case, "step_ms_median").verdict == "improved" and metric(case, "step_ms_median").change < 0
    assert metric(case, "throughput_img_s").verdict == "improved" and metric(case, "throughput_img_s").change > 0


def test_energy_per_image_is_compared_from_images_per_joule():
    base = [make_record(seed=1, telemetry={"img_per_j": 20.0})]
    cand = [make_record(seed=2, telemetry={"img_per_j": 16.0})]
    energy = metric(only(compare(base, cand), "regressed"), "energy_j_per_img")
    assert energy.baseline == pytest.approx(0.05) and energy.candidate == pytest.approx(1 / 16)
    assert energy.change == pytest.approx(0.25)


def test_buckets_for_missing_new_and_failures():
    base = [
        make_record(model="resnet18", seed=1),
        make_record(model="resnet34", seed=2),
        make_record(model="resnet50", seed=3, status="oom"),
        make_record(model="resnet101", seed=4, status="error"),
        make_record(model="resnet152", seed=5),
    ]
    cand = [
        make_record(model="resnet18", seed=6, status="timeout"),
        make_record(model="resnet50", seed=7),
        make_record(model="resnet101", seed=8, status="crashed"),
        make_record(model="wide_resnet50_2", seed=9),
        make_record(model="resnet152", seed=10),
    ]
    result = compare(base, cand)
    names = {b: [c.case["model"] for c in cases] for b, cases in result.buckets.items()}
    assert names["newly_failing"] == ["resnet18"]
    assert only(result, "newly_failing").candidate_status == "timeout"
    assert names["fixed"] == ["resnet50"]
    assert names["still_failing"] == ["resnet101"]
    assert names["missing"] == ["resnet34"]
    assert names["new"] == ["wide_resnet50_2"]
    assert names["unchanged"] == ["resnet152"]
    assert result.failed, "a new failure fails the comparison"


def test_zero_and_null_values_are_noted_never_divided_by():
    base = [
        make_record(model="resnet18", seed=1, throughput_img_s=0.0),
        make_record(model="resnet34", seed=2),
        make_record(model="resnet50", seed=3, samples_ms=None),
        make_record(model="resnet101", seed=4, samples_ms=[]),
    ]
    cand = [
        make_record(model="resnet18", seed=5),
        make_record(model="resnet34", seed=6, rss_peak_mib=None, step_ms_median=None),
        make_record(model="resnet50", seed=7, samples_ms=None, step_ms=130),
        make_record(model="resnet101", seed=8, samples_ms=None),
    ]
    result = compare(base, cand)
    by_model = {c.case["model"]: c for cases in result.buckets.values() for c in cases}
    assert any("baseline value is 0" in n for n in by_model["resnet18"].notes)
    assert "throughput_img_s" not in [m.metric for m in by_model["resnet18"].metrics]
    assert any(n.startswith("rss_peak_mib: no value in the candidate") for n in by_model["resnet34"].notes)
    assert any(n.startswith("step_ms_median: no value in the candidate") for n in by_model["resnet34"].notes)
    # No samples on either side: the threshold decides, and the row says so.
    step = metric(by_model["resnet50"], "step_ms_median")
    assert step.verdict == "regressed" and step.test == "threshold-only" and "no samples" in step.note
    assert metric(by_model["resnet101"], "throughput_img_s").test == "threshold-only"
    assert any("no samples" in n and "resnet50" in n for n in result.notes)


def test_a_published_mean_is_named_when_the_median_cannot_be_compared():
    published = make_record(seed=1, samples_ms=None, step_ms_median=None, step_ms_mean=100.0)
    case = only(compare([published], [make_record(seed=2)]), "unchanged")
    assert "step_ms_median: the baseline has only a mean step time (published figures); not compared" in case.notes
    assert "throughput_img_s" in [m.metric for m in case.metrics]


def test_few_samples_use_bootstrap_intervals():
    base = [make_record(step_ms=100, noise=0.01, n=5, seed=1)]
    slow = [make_record(step_ms=120, noise=0.01, n=5, seed=2)]
    tput = metric(only(compare(base, slow), "regressed"), "throughput_img_s")
    assert tput.test == "bootstrap-intervals" and tput.p is None
    assert tput.baseline_interval[0] > tput.candidate_interval[1]
    noisy = [make_record(step_ms=108, noise=0.3, n=5, seed=3)]
    tput = metric(only(compare(base, noisy, Thresholds(interval=1.0)), "unchanged"), "throughput_img_s")
    assert tput.test == "bootstrap-intervals" and tput.baseline_interval[0] <= tput.candidate_interval[1]
    assert only(compare(base, noisy), "inconclusive").noise[0].startswith("candidate: throughput 95% interval")


def test_a_history_pools_samples_and_takes_the_median_run():
    runs = [[make_record(step_ms=100 * f, seed=i)] for i, f in enumerate((1.0, 1.01, 0.99, 1.3))]
    cand = [make_record(step_ms=112, seed=9)]
    tput = metric(only(compare(runs, cand), "regressed"), "throughput_img_s")
    assert tput.n_baseline == 120 and tput.baseline_runs == 4
    values = sorted(r[0]["throughput_img_s"] for r in runs)
    assert tput.baseline == pytest.approx((values[1] + values[2]) / 2)


def test_a_case_known_to_jump_between_nights_is_not_flagged_for_jumping():
    runs = [[make_record(step_ms=100 * f, seed=i)] for i, f in enumerate((1.0, 1.06, 0.95, 1.07, 0.94, 1.0, 1.05))]
    tput = metric(only(compare(runs, [make_record(step_ms=112, seed=20)]), "unchanged"), "throughput_img_s")
    assert tput.p < 0.001 and abs(tput.change) > 0.05, "threshold and test alone would flag it"
    assert "run-to-run noise" in tput.note
    # A change well beyond the nights' usual scatter still counts.
    assert compare(runs, [make_record(step_ms=140, seed=20)]).regressed


def test_ddp_records_match_per_rank():
    base = [make_record(seed=i, rank=i, world_size=2) for i in range(2)]
    cand = [make_record(seed=5, rank=0, world_size=2), make_record(seed=6, rank=1, world_size=2, step_ms=120)]
    result = compare(base, cand)
    assert [c.key for c in result.regressed] == ["resnet50/inference/bs32/fp32 [rank 1/2]"]
    assert [c.key for c in result.unchanged] == ["resnet50/inference/bs32/fp32 [rank 0/2]"]


def test_runs_and_dataframes_give_the_same_verdicts(tmp_path):
    a = make_run(
        tmp_path, [make_record(seed=1), make_record(model="resnet18", seed=2)], started_at="2026-01-01T00:00:00Z"
    )
    b = make_run(tmp_path, [make_record(seed=3, step_ms=115), make_record(model="resnet18", seed=4)], name="b")
    from_runs = compare(read_run(a), read_run(b))
    from_frames = compare(load(a), load(b))
    assert from_runs.counts() == from_frames.counts() == {**from_runs.counts(), "regressed": 1, "unchanged": 1}
    assert from_runs.regressed[0].metrics[0].p == pytest.approx(from_frames.regressed[0].metrics[0].p)
    # The noise marking reads the same from a flattened frame.
    c = make_run(tmp_path, [make_record(seed=5, step_ms=115, noisy=["busy"]), make_record(model="resnet18")], name="c")
    for result in (compare(read_run(a), read_run(c)), compare(load(a), load(c))):
        assert [case.noise for case in result.inconclusive] == [["candidate: busy"]]


def test_disjoint_cases_are_all_missing_and_new_and_said_plainly():
    result = compare([make_record(model="resnet18")], [make_record(model="resnet34")])
    assert result.counts()["missing"] == 1 and result.counts()["new"] == 1
    assert result.notes[0].startswith("no case in common")
    assert result.compared_nothing and result.failed, "a check that compared nothing does not pass"


def test_empty_sides_and_bad_thresholds_are_clear_errors(tmp_path):
    with pytest.raises(HarnessError, match="baseline holds no records"):
        compare([], [make_record()])
    empty = make_run(tmp_path, [])
    with pytest.raises(HarnessError, match="candidate holds no records"):
        compare([make_record()], read_run(empty))
    with pytest.raises(HarnessError, match="fraction"):
        Thresholds(relative=5)  # meant 5%: refused rather than read as 500%
    with pytest.raises(HarnessError, match="unknown metric"):
        Thresholds(per_metric={"throughput": 0.1})


def test_skipped_lines_of_a_corrupted_records_file_are_surfaced(tmp_path):
    good = make_run(tmp_path, [make_record(seed=1), make_record(model="resnet18", seed=2)], name="a")
    bad = make_run(tmp_path, [make_record(seed=3), make_record(model="resnet18", seed=4)], name="b")
    lines = (bad / "records.jsonl").read_text().splitlines()
    (bad / "records.jsonl").write_text(lines[0] + "\n{not json\n" + lines[1][:40] + "\n")
    with pytest.warns(UserWarning):
        result = compare(read_run(good), read_run(bad))
    assert result.counts()["unchanged"] == 1 and result.counts()["missing"] == 1
    assert sum("skipped" in n for n in result.notes) == 2


CONTENTION = "other processes used 46% of the 2 cores this run may use"
STALLS = "2 stalled steps (> 3x the median 300 ms): 603 ms, 10878 ms"


@pytest.mark.parametrize("side", ["baseline", "candidate"])
def test_a_case_measured_under_noise_is_inconclusive_whatever_the_numbers_say(side):
    quiet = make_record(step_ms=100, seed=1)
    noisy = make_record(step_ms=150, seed=2, noisy=[CONTENTION, STALLS])
    base, cand = ([noisy], [quiet]) if side == "baseline" else ([quiet], [noisy])
    result = compare(base, cand)
    case = only(result, "inconclusive")
    assert case.noise == [f"{side}: {CONTENTION}", f"{side}: {STALLS}"]
    tput = metric(case, "throughput_img_s")
    numbers_say = "improved" if side == "baseline" else "regressed"
    assert tput.verdict == "inconclusive" and tput.note == f"the numbers alone read as {numbers_say}"
    assert metric(case, "step_ms_median").verdict == "inconclusive"
    assert not result.failed and result.inconclusive_anywhere and not result.run_inconclusive
    assert case.to_dict()["noise"] == case.noise
    assert result.fails("inconclusive") and not result.fails("regression") and not result.fails("never")


def busy(share_pct: float, **kw):
    """A record measured beside other processes that used ``share_pct`` of its cores (the contention group's
    numbers, as the measurement writes them)."""
    contention = {"other_cpu_pct": share_pct, "steal_pct": 0.0, "load_avg": 3.0, "cpus": 2}
    return make_record(noisy=[CONTENTION], contention=contention, num_threads=kw.pop("num_threads", 1), **kw)


def test_a_change_larger_than_the_contention_can_explain_stands():
    quiet = [make_record(step_ms=100, seed=1)]
    # 46% of the cores taken: at most 1/(1-0.46) = 1.85x slower. A 10x slowdown is not the contention's doing.
    case = only(compare(quiet, [busy(46.0, step_ms=1000, seed=2)]), "regressed")
    tput = metric(case, "throughput_img_s")
    assert tput.verdict == "regressed" and "beyond what the contention can explain (1.85x slower at most)" in tput.note
    assert case.noise == [f"candidate: {CONTENTION}"]
    # 30% slower is within what it can explain: no verdict.
    case = only(compare(quiet, [busy(46.0, step_ms=130, seed=3)]), "inconclusive")
    assert metric(case, "throughput_img_s").note == (
        "the numbers alone read as regressed; contention can explain up to 1.85x"
    )
    # A busy baseline cannot hide a regression that the candidate shows on a quiet machine...
    assert only(compare([busy(46.0, step_ms=100, seed=4)], [make_record(step_ms=1000, seed=5)]), "regressed")
    # ...but it can fake an improvement: 1.5x faster than a baseline that was up to 1.85x slow is no verdict,
    assert only(compare([busy(46.0, step_ms=150, seed=6)], [make_record(step_ms=100, seed=7)]), "inconclusive")
    # while 4x faster is.
    assert only(compare([busy(46.0, step_ms=400, seed=8)], [make_record(step_ms=100, seed=9)]), "improved")
    # Several threads: a share taken can cost far more than its size, so nothing is bounded.
    several = [busy(46.0, step_ms=1000, seed=10, num_threads=2)]
    assert metric(only(compare(quiet, several), "inconclusive"), "throughput_img_s").verdict == "inconclusive"


def test_contention_on_a_gpu_cannot_be_bounded_and_stalls_alone_do_not_move_the_median():
    quiet = [make_record(step_ms=100, seed=1)]
    gpu = {"gpu_other_processes": 1, "gpu_clock_events": None}
    on_gpu = make_record(step_ms=1000, seed=2, noisy=["another process on the GPU"], contention=gpu)
    case = only(compare(quiet, [on_gpu]), "inconclusive")
    assert metric(case, "throughput_img_s").note == "the numbers alone read as regressed"
    stalls = {"other_cpu_pct": 2.0, "steal_pct": 0.0, "cpus": 2}
    stalled = make_record(step_ms=100, seed=3, noisy=[STALLS], contention=stalls, stalled_steps=2)
    assert only(compare(quiet, [stalled]), "unchanged").noise == [f"candidate: {STALLS}"]


def test_noise_leaves_memory_judged_and_an_unmarked_record_reads_as_quiet():
    base = [make_record(step_ms=100, seed=1, rss_peak_mib=1000.0)]
    cand = [make_record(step_ms=100, seed=2, rss_peak_mib=1300.0, noisy=True)]
    case = only(compare(base, cand), "regressed")
    assert metric(case, "rss_peak_mib").verdict == "regressed"
    assert metric(case, "throughput_img_s").verdict == "inconclusive"
    assert case.noise == ["candidate: marked noisy (no reason recorded)"]
    # A record written before the marking existed (no noisy/noise keys at all), or marked quiet, is judged.
    old = {k: v for k, v in make_record(step_ms=100, seed=3).items() if k not in ("noisy", "noise", "contention")}
    for quiet in (old, make_record(step_ms=100, seed=3, noisy=False)):
        case = only(compare([make_record(step_ms=100, seed=1)], [quiet]), "unchanged")
        assert case.noise == [] and "noise" not in case.to_dict()


def test_a_wide_throughput_interval_is_inconclusive_and_the_limit_follows_the_threshold():
    base = [make_record(step_ms=100, seed=1)]
    tput = 32 * 1000 / 130
    wide = [make_record(step_ms=130, seed=2, throughput_ci95=[tput * 0.94, tput * 1.06])]  # 12% wide
    case = only(compare(base, wide), "inconclusive")
    assert case.noise == [
        f"candidate: throughput 95% interval {tput * 0.94:.4g} to {tput * 1.06:.4g} img/s is 12% wide (over 10%)"
    ]
    # The limit is twice the throughput threshold unless given: 12% passes under a 10% threshold (limit 20%).
    assert only(compare(base, wide, Thresholds(relative=0.10)), "regressed")
    assert only(compare(base, wide, Thresholds(interval=0.15)), "regressed")
    assert compare(base, wide).to_dict()["thresholds"]["interval"] == 0.10
    with pytest.raises(HarnessError, match="relative width"):
        Thresholds(interval=0)


def test_a_history_leaves_noisy_runs_out_of_the_timed_metrics_while_a_quiet_one_is_left():
    runs = [[make_record(step_ms=100, seed=i, noisy=[CONTENTION] if i else None)] for i in range(3)]
    slow = [make_record(step_ms=120, seed=9)]
    case = only(compare(runs, slow), "regressed")
    tput = metric(case, "throughput_img_s")
    assert tput.baseline_runs == 1 and tput.n_baseline == 30
    assert "2 noisy baseline run(s) left out of the timed metrics" in case.notes
    # Every baseline run noisy: nothing quiet to judge against. Contention only slows a run down, so a busy
    # baseline cannot hide the candidate's slowdown; it can fake a speed-up, which is then no verdict.
    all_noisy = [[make_record(step_ms=100, seed=i, noisy=[CONTENTION])] for i in range(3)]
    case = only(compare(all_noisy, slow), "regressed")
    assert case.noise == [f"baseline (every one of its 3 runs; the latest): {CONTENTION}"]
    case = only(compare(all_noisy, [make_record(step_ms=80, seed=9)]), "inconclusive")
    assert case.noise == [f"baseline (every one of its 3 runs; the latest): {CONTENTION}"]


def manifest_run(tmp_path, name, health=None, peak=None, **kw):
    return read_run(make_run(tmp_path, [make_record(seed=1)], name=name, health=health, peak=peak, **kw))


def test_probes_that_differ_beyond_their_spread_make_the_run_inconclusive_naming_the_busy_run(tmp_path):
    from tests.synthetic import health, probe

    busy = health(probe(7.6, {"fp32": 0.15, "bf16": 0.025}), probe(7.4, {"fp32": 0.15, "bf16": 0.024}))
    quiet = health(probe(23.5, {"fp32": 0.15, "bf16": 0.058}), probe(23.0, {"fp32": 0.15, "bf16": 0.057}))
    base, cand = manifest_run(tmp_path, "busy", busy), manifest_run(tmp_path, "quiet", quiet)
    result = compare(base, cand)
    assert result.run_inconclusive and not result.failed and result.fails("inconclusive")
    (found,) = result.busy
    assert found.role == "baseline" and found.run == str(base.path) and found.against == str(cand.path)
    assert found.reason == "baseline looks busy: copy 7.6 vs 23.5 GB/s, bf16 matmul 0.025 vs 0.058 TFLOP/s"
    assert found.source == "health" and [g.key for g in found.gaps] == ["copy_gbps", "matmul_tflops.bf16"]
    assert found.copy_agrees is None and "hint" not in found.to_dict()
    out = result.to_dict()["run_inconclusive"][0]
    assert out["role"] == "baseline" and out["reason"] == found.reason and out["probes"]["copy_gbps"]["busy"] == 7.6
    # The other way round, the candidate is the busy one.
    assert [b.role for b in compare(cand, base).busy] == ["candidate"]


def test_probes_within_their_own_spread_are_not_a_busy_run(tmp_path):
    from tests.synthetic import health, probe

    steady = manifest_run(tmp_path, "steady", health(probe(20.0), probe(20.0)))

    def against(name, start, end):
        return compare(steady, manifest_run(tmp_path, name, health(probe(start), probe(end)))).busy

    # Each run's best of start and end counts: a run busy at its start only is as fast as the other at its end.
    assert against("late", 10.0, 20.0) == []
    # A run that moved 10 -> 16 within itself (spread 37.5%) may be 20/16 = 1.25x below the other.
    assert against("shaky", 10.0, 16.0) == []
    # With no spread, 10% between runs is allowed; 25% is not.
    assert against("near", 18.5, 18.5) == []
    (busy,) = against("far", 16.0, 16.0)
    assert busy.role == "candidate" and busy.gaps[0].allowed == pytest.approx(0.10)
    assert "run_inconclusive" not in compare(steady, manifest_run(tmp_path, "same", health(probe(20.0)))).to_dict()


def test_runs_without_health_fall_back_to_their_peak_and_other_environments_are_not_held(tmp_path):
    from tests.synthetic import FINGERPRINT, probe

    base = manifest_run(tmp_path, "a", peak=probe(20.0, {"fp32": 1.0}))
    cand = manifest_run(tmp_path, "b", peak=probe(20.0, {"fp32": 0.5}))
    (found,) = compare(base, cand).busy
    assert found.source == "peak" and found.reason == "candidate looks busy: fp32 matmul 0.5 vs 1 TFLOP/s"
    # Copy bandwidth agrees while a compute probe does not: a software setting explains it as well, and it says so.
    assert found.copy_agrees == (20.0, 20.0) and found.hint.startswith("copy bandwidth agrees (20 vs 20 GB/s)")
    assert found.to_dict()["hint"] == found.hint
    other = manifest_run(tmp_path, "c", peak=probe(5.0), fingerprint={**FINGERPRINT, "cpu_model": "Other CPU"})
    result = compare(other, cand)
    assert (
        result.busy == []
        and f"run health not compared: {other.path} was measured in another environment" in result.notes
    )
    # Record lists carry no manifest: nothing to hold, nothing said.
    plain = compare([make_record(seed=1)], [make_record(seed=2)])
    assert plain.busy == [] and not any("run health" in n for n in plain.notes)


def history_of(*factors: float) -> list[list[dict]]:
    """One run per factor, oldest first: a record whose steps take 100 ms x factor."""
    return [[make_record(step_ms=100 * f, noise=0.01, seed=i)] for i, f in enumerate(factors)]


def test_a_change_counts_only_beyond_the_threshold_against_every_baseline_run():
    # Two close nights and one that read 28% faster with nothing changed: a median-only verdict calls a candidate
    # 30% faster an improvement (the MAD of three runs, two equal, is nil); against that night it is within 25%.
    bimodal = history_of(1.0, 1 / 1.28, 1.005)
    case = only(compare(bimodal, [make_record(step_ms=100 / 1.30, noise=0.01, seed=9)], Thresholds(0.25)), "unchanged")
    tput = metric(case, "throughput_img_s")
    assert tput.change > 0.25 and "not beyond the threshold against every baseline run" in tput.note
    assert metric(case, "step_ms_median").verdict == "unchanged", "step time and throughput agree"
    # The same move against three close nights is an improvement, and a fall against that history still counts.
    tight = history_of(1.0, 1.01, 0.995)
    assert compare(tight, [make_record(step_ms=100 / 1.30, noise=0.01, seed=9)], Thresholds(0.25)).improved
    assert compare(bimodal, [make_record(step_ms=140, noise=0.01, seed=9)], Thresholds(0.25)).regressed


def test_a_lasting_regression_keeps_being_flagged_while_a_recovered_dip_is_known_noise():
    slow = [make_record(step_ms=160, noise=0.01, seed=9)]
    # The regression began on the latest night and the candidate continues it: still a regression.
    assert compare(history_of(1.0, 1.01, 0.99, 1.6), slow, Thresholds(0.25)).regressed
    assert compare(history_of(1.0, 1.01, 0.99, 1.6, 1.6), slow, Thresholds(0.25)).regressed
    # A night as slow that the next nights came back from: the case has done this before.
    case = only(compare(history_of(1.0, 1.6, 1.01, 0.99, 1.0), slow, Thresholds(0.25)), "unchanged")
    assert "one read" in metric(case, "throughput_img_s").note


def test_a_long_history_sets_aside_its_wildest_tenth():
    # Ten quiet nights around 100 ms and one that read 40% fast: it does not hide tonight's real 35% improvement.
    nights = history_of(1.0, 1.01, 0.99, 1 / 1.4, 1.0, 1.02, 0.98, 1.0, 1.01, 0.99)
    assert compare(nights, [make_record(step_ms=100 / 1.35, noise=0.01, seed=20)], Thresholds(0.25)).improved


def test_joined_samples_are_each_records_samples_end_to_end():
    """The step-time metrics' samples over many records, read as one array, are the per-record samples joined, to
    the bit: with empty, missing, non-numeric, nested, negative and non-finite steps, and missing batch sizes."""
    import random

    import numpy as np

    from harness.regress.metrics import METRICS, joined_samples

    rng = random.Random(3)
    steps = [
        lambda: [rng.uniform(0.1, 50) for _ in range(rng.randint(1, 40))],
        lambda: [],
        lambda: None,
        lambda: "1.0, 2.0",
        lambda: [1.5, float("nan"), -2.0, 0.0, float("inf"), 3, True],
        lambda: [[1.0, 2.0], [3.0, 4.0]],
        lambda: [1.0, "x"],
        lambda: [1.0, None, 2.0],
        lambda: (1.0, 2.0),
        lambda: [-1.0, float("nan")],
    ]
    sizes = [1, 2, 8, 0, -4, None, "8", 2.5, True]

    def record():
        r = {"batch_size": rng.choice(sizes)}
        raw = rng.choice(steps)() if rng.random() < 0.5 else steps[0]()
        if raw is not None or rng.random() < 0.5:
            r["samples_ms"] = raw
        return r

    sampled = [m for m in METRICS if m.samples is not None]
    assert {m.name for m in sampled} == {"throughput_img_s", "step_ms_median"}
    for _ in range(400):
        records = [record() for _ in range(rng.randint(0, 12))]
        for metric in sampled:
            parts = [s for s in (metric.samples(r) for r in records) if s is not None]
            expected = np.concatenate(parts) if parts else None
            got = joined_samples(metric, records)
            if expected is None:
                assert got is None
            else:
                assert got is not None and got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
