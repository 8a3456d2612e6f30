"""``harness compare``: baselines from folders and histories, refusals, outputs, exit codes, hardware mode."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.regress import hardware_compare
from harness.store import read_run
from harness.store.skips import EXIT_SKIPPED
from tests.synthetic import FINGERPRINT, health, make_record, make_run, probe

ONE_THREAD = {**FINGERPRINT, "num_threads": 1}


def records(step_ms: float = 100.0, seed: int = 0, **extra) -> list[dict]:
    return [
        make_record(model="resnet18", step_ms=step_ms, seed=seed, **extra),
        make_record(model="resnet50", step_ms=2 * step_ms, seed=seed + 1, **extra),
    ]


def night(root, day: int, step_ms: float = 100.0, suite: str = "nightly", **kw):
    return make_run(root, records(step_ms, seed=day * 10), suite=suite, started_at=f"2026-01-{day:02d}T02:00:00Z", **kw)


def compare_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_history_takes_the_last_matching_runs_before_the_candidate(tmp_path, capsys):
    root = tmp_path / "results"
    days = [night(root, d) for d in range(1, 6)]
    night(root, 3, suite="other", name="other-suite")
    night(root, 4, name="one-thread", fingerprint=ONE_THREAD)
    night(root, 9, name="later")
    candidate = night(root, 7, step_ms=112, name="candidate")
    code, out, err = compare_cli(capsys, "--history", 3, "--root", root, candidate, "--fail-on", "regression")
    assert code == 1
    written = json.loads((candidate / "regressions.json").read_text())
    assert written["baseline_runs"] == [str(p) for p in days[2:5]]
    assert written["counts"]["regressed"] == 2
    assert any("another environment were passed over" in n for n in written["notes"])
    assert "REGRESSION: 2 regressed" in out and "history of 3 runs" in out
    assert (candidate / "summary.md").read_text().startswith("### harness compare: REGRESSION")


def test_without_fail_on_a_regression_exits_zero_and_out_chooses_the_folder(tmp_path, capsys):
    base, cand = night(tmp_path, 1), night(tmp_path, 2, step_ms=115)
    code, out, _ = compare_cli(capsys, base, cand, "--out", tmp_path / "report")
    assert code == 0 and "REGRESSION" in out
    assert (tmp_path / "report" / "regressions.json").is_file() and not (cand / "regressions.json").exists()


def test_an_environment_mismatch_is_refused_listing_what_differs(tmp_path, capsys):
    base, cand = night(tmp_path, 1), night(tmp_path, 2, name="one-thread", fingerprint=ONE_THREAD)
    code, _, err = compare_cli(capsys, base, cand)
    assert code == 2 and "num_threads: 2 vs 1" in err and "--allow-mismatch" in err
    code, _, err = compare_cli(capsys, "--history", 5, "--root", tmp_path, cand)
    assert code == 2 and "num_threads: 2 vs 1" in err
    code, out, _ = compare_cli(capsys, base, cand, "--allow-mismatch", "--format", "json")
    assert code == 0 and any("num_threads: 2 vs 1" in n for n in json.loads(out)["notes"])


def test_runs_of_different_suites_are_refused_naming_both(tmp_path, capsys):
    base, cand = night(tmp_path, 1, suite="smoke"), night(tmp_path, 2)
    code, _, err = compare_cli(capsys, base, cand)
    assert code == 2 and "'smoke'" in err and "'nightly'" in err
    assert compare_cli(capsys, base, cand, "--allow-mismatch")[0] == 0


def test_no_earlier_run_names_the_default_root_as_an_absolute_path_and_the_option(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    candidate = night(tmp_path / "results", 2)
    code, _, err = compare_cli(capsys, "--history", 3, candidate)
    assert code == 2 and "Traceback" not in err
    assert f"no earlier run of suite 'nightly' under {tmp_path.resolve() / 'results'}" in err
    assert "--root DIR (default: results, relative to the current directory)" in err


def test_bad_baselines_are_clear_errors(tmp_path, capsys):
    cand = night(tmp_path, 2)
    code, _, err = compare_cli(capsys, tmp_path / "nope", cand)
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    code, _, err = compare_cli(capsys, cand)
    assert code == 2 and "nothing to compare against" in err
    code, _, err = compare_cli(capsys, "--history", 3, "--root", tmp_path, cand)
    assert code == 2 and "no earlier run of suite 'nightly'" in err
    assert f"under {tmp_path.resolve()}" in err and "--root DIR" in err
    code, _, err = compare_cli(capsys, "--history", 0, "--root", tmp_path, cand)
    assert code == 2 and "--history 0" in err
    empty = make_run(tmp_path, [], suite="nightly", started_at="2026-01-01T00:00:00Z")
    code, _, err = compare_cli(capsys, empty, cand)
    assert code == 2 and "baseline holds no records" in err
    code, _, err = compare_cli(capsys, night(tmp_path, 1), cand, "--threshold", "5")
    assert code == 2 and "fraction such as 0.05" in err


def test_disjoint_case_sets_are_said_plainly(tmp_path, capsys):
    base = make_run(tmp_path, [make_record(model="resnet18")], suite="nightly", name="a")
    cand = make_run(tmp_path, [make_record(model="resnet34")], suite="nightly", name="b")
    code, out, _ = compare_cli(capsys, base, cand, "--format", "markdown")
    assert code == 0 and "NOTHING COMPARED" in out and "no case in common" in out
    assert compare_cli(capsys, base, cand, "--fail-on", "regression")[0] == 1


def test_the_suite_sets_threshold_and_history(tmp_path, capsys):
    suite = {"name": "nightly", "regression": {"threshold": 0.2, "baseline": "last-2"}}
    runs = [night(tmp_path, d) for d in (1, 2, 3)]
    cand = night(tmp_path, 4, step_ms=112, name="cand")
    manifest = json.loads((cand / "manifest.json").read_text())
    (cand / "manifest.json").write_text(json.dumps({**manifest, "suite": suite}))
    code, out, _ = compare_cli(capsys, cand, "--root", tmp_path, "--format", "json", "--fail-on", "regression")
    result = json.loads(out)
    assert code == 0 and result["thresholds"]["relative"] == 0.2 and result["counts"]["unchanged"] == 2
    assert result["baseline_runs"] == [str(p) for p in runs[1:]]
    code, out, _ = compare_cli(
        capsys, cand, "--root", tmp_path, "--threshold", "0.05", "--format", "json", "--fail-on", "regression"
    )
    assert code == 1 and json.loads(out)["counts"]["regressed"] == 2


def test_latest_is_the_newest_run_under_the_root(tmp_path, capsys):
    night(tmp_path, 1)
    newest = night(tmp_path, 2, step_ms=130)
    code, out, _ = compare_cli(capsys, "--history", 1, "--root", tmp_path, "latest", "--format", "json")
    assert code == 0 and json.loads(out)["candidate_run"] == str(newest)


def test_history_steps_are_reported(tmp_path, capsys):
    for d in range(1, 10):
        night(tmp_path, d, step_ms=100 if d < 5 else 120)
    cand = night(tmp_path, 10, step_ms=120, name="cand")
    code, out, _ = compare_cli(capsys, "--history", 9, "--root", tmp_path, cand, "--format", "json")
    steps = json.loads(out)["steps"]
    assert set(steps) == {"resnet18/inference/bs32/fp32", "resnet50/inference/bs32/fp32"}
    step = steps["resnet18/inference/bs32/fp32"][0]
    assert step["run"].endswith("20260105T020000Z") and step["change"] == pytest.approx(-1 / 6, abs=0.02)
    assert step["recovered_run"] is None


def hardware_runs(tmp_path):
    slow = make_run(tmp_path, records(100.0, seed=1, mfu=0.30), suite="hw", name="a")
    fast_fp = {**FINGERPRINT, "device_name": "Faster CPU", "cpu_model": "Faster CPU"}
    fast = make_run(
        tmp_path,
        records(50.0, seed=5, mfu=0.6, telemetry={"img_per_j": 8.0}),
        suite="hw",
        name="b",
        fingerprint=fast_fp,
    )
    return slow, fast


def test_hardware_compare_gives_speedups_and_geometric_means(tmp_path):
    slow, fast = hardware_runs(tmp_path)
    result = hardware_compare([read_run(slow), read_run(fast)])
    assert result.labels == ["Synthetic CPU (torch 2.13.0)", "Faster CPU (torch 2.13.0)"]
    rows = result.frame[result.frame.run_index == 1]
    assert rows["speedup"].tolist() == pytest.approx([2.0, 2.0], rel=0.02)
    assert rows["img_per_j"].tolist() == [8.0, 8.0] and rows["mfu"].tolist() == [0.6, 0.6]
    summary = result.summary[result.summary.run_index == 1]
    assert summary["geomean_speedup"].item() == pytest.approx(2.0, rel=0.02) and summary["cases"].item() == 2
    assert "cases match on model, mode, batch_size, resolution, precision and channels_last" in result.rule


def test_both_pairings_build_the_same_rows_summary_and_labels(tmp_path):
    from harness.regress import EXACT, NEAREST_BATCH

    slow, fast = hardware_runs(tmp_path)
    runs = [read_run(slow), read_run(fast)]
    exact, nearest = hardware_compare(runs, EXACT), hardware_compare(runs, NEAREST_BATCH)
    assert list(exact.frame.columns) == list(nearest.frame.columns)
    assert list(exact.summary.columns) == list(nearest.summary.columns)
    assert exact.labels == nearest.labels
    # One batch size per case: the nearest batch is the same batch, so the numbers are the same.
    assert exact.frame["speedup"].tolist() == nearest.frame["speedup"].tolist()
    assert exact.summary.to_dict("records") == nearest.summary.to_dict("records")
    assert "batch size is not matched" in nearest.rule and "batch_size" in exact.rule


def test_nearest_batch_pairing_keeps_sweep_cases_of_every_rank(tmp_path):
    from harness.regress import NEAREST_BATCH

    # A sweep spreads cases over ranks with world size 1: the case rank 1 ran is a case like any other.
    ref = make_run(tmp_path, [make_record(model="resnet18", rank=1, step_ms=50.0)], suite="hw", name="a")
    other = make_run(tmp_path, [make_record(model="resnet18", batch_size=64, step_ms=50.0)], suite="hw", name="b")
    result = hardware_compare([read_run(ref), read_run(other)], NEAREST_BATCH)
    assert result.frame["speedup"].tolist()[1] == pytest.approx(2.0, rel=0.05)
    assert result.frame["case"].tolist() == ["resnet18/inference/fp32/r224 bs 32 | 64"] * 2


def test_an_empty_comparison_has_every_column(tmp_path):
    runs = [read_run(make_run(tmp_path, [], suite="hw", name=name)) for name in ("a", "b")]
    result = hardware_compare(runs)
    assert result.frame.empty and "speedup" in result.frame.columns
    assert result.summary[["run_index", "cases"]].to_dict("records") == [
        {"run_index": 0, "cases": 0},
        {"run_index": 1, "cases": 0},
    ]
    assert {"min_speedup", "max_speedup"} <= set(result.summary.columns)


def test_hardware_cli_formats_and_the_html_flag(tmp_path, capsys):
    slow, fast = hardware_runs(tmp_path)
    code, out, _ = compare_cli(capsys, "--hardware", slow, fast)
    assert code == 0 and "Faster CPU" in out and "2.0" in out and "cases match on" in out
    code, out, _ = compare_cli(capsys, "--hardware", slow, fast, "--format", "json")
    assert code == 0 and len(json.loads(out)["cases"]) == 4
    code, out, _ = compare_cli(capsys, "--hardware", slow, fast, "--format", "markdown")
    assert "| run | mode | precision |" in out
    import harness.report

    if not hasattr(harness.report, "write_hardware_report"):
        code, _, err = compare_cli(capsys, "--hardware", slow, fast, "--html", tmp_path / "hw.html")
        assert code == 2 and "write_hardware_report" in err
    assert compare_cli(capsys, "--hardware", slow)[0] == 2


def test_imported_runs_without_samples_compare_on_the_threshold(tmp_path, capsys):
    published = [{**r, "samples_ms": None, "throughput_ci95": None} for r in records(100.0)]
    base = make_run(tmp_path, published, suite="timm", name="a")
    cand = make_run(tmp_path, [{**r, "throughput_img_s": r["throughput_img_s"] * 0.8} for r in published], suite="timm")
    for run in (base, cand):
        manifest = json.loads((run / "manifest.json").read_text())
        (run / "manifest.json").write_text(json.dumps({**manifest, "source": "timm benchmark.py"}))
    code, out, _ = compare_cli(capsys, base, cand, "--format", "json")
    regressed = json.loads(out)["buckets"]["regressed"]
    assert code == 0 and len(regressed) == 2
    assert regressed[0]["metrics"][0]["note"] == "no samples on either side: threshold only"
    code, out, _ = compare_cli(capsys, "--hardware", base, cand)
    assert code == 0 and "0.80x" in out and "published figures, no samples" in out


def test_the_suite_may_pin_a_baseline_run(tmp_path, capsys):
    pinned, cand = night(tmp_path, 1), night(tmp_path, 5, step_ms=130, name="cand")
    night(tmp_path, 3)  # newer, but not the pinned one
    manifest = json.loads((cand / "manifest.json").read_text())
    suite = {"name": "nightly", "regression": {"threshold": 0.05, "baseline": str(pinned)}}
    (cand / "manifest.json").write_text(json.dumps({**manifest, "suite": suite}))
    code, out, _ = compare_cli(capsys, cand, "--format", "json")
    assert code == 0 and json.loads(out)["baseline_runs"] == [str(pinned)]
    (cand / "manifest.json").write_text(json.dumps({**manifest, "suite": {**suite, "regression": {"baseline": "x"}}}))
    code, _, err = compare_cli(capsys, cand)
    assert code == 2 and "neither last-N nor an existing run folder" in err


def test_a_corrupted_records_file_is_compared_as_far_as_it_goes(tmp_path, capsys):
    base, cand = night(tmp_path, 1), night(tmp_path, 2)
    lines = (cand / "records.jsonl").read_text().splitlines()
    (cand / "records.jsonl").write_text(lines[0] + "\n" + lines[1][:50] + "\n")
    code, out, err = compare_cli(capsys, base, cand, "--format", "markdown")
    assert code == EXIT_SKIPPED and "1 missing" in out and "truncated last line skipped" in out
    assert "UserWarning" not in err
    assert "harness compare: skipped 1 input(s): 1 truncated line" in err and f"{cand}/records.jsonl:2:" in err


BUSY = "other processes used 46% of the 2 cores this run may use"


def test_fail_on_regression_ignores_inconclusive_cases_and_fail_on_inconclusive_does_not(tmp_path, capsys):
    base = night(tmp_path, 1)
    noisy = make_run(tmp_path, records(150.0, seed=20, noisy=[BUSY]), suite="nightly", name="noisy")
    code, out, _ = compare_cli(capsys, base, noisy, "--fail-on", "regression")
    assert code == 0 and "INCONCLUSIVE: 2 cases inconclusive" in out and BUSY in out and "Inconclusive" in out
    assert compare_cli(capsys, base, noisy, "--fail-on", "inconclusive")[0] == 1
    assert compare_cli(capsys, base, noisy)[0] == 0
    result = json.loads((noisy / "regressions.json").read_text())
    assert result["counts"]["inconclusive"] == 2 and result["failed"] is False
    case = result["buckets"]["inconclusive"][0]
    assert case["noise"] == [f"candidate: {BUSY}"] and case["metrics"][0]["verdict"] == "inconclusive"
    assert "run_inconclusive" not in result
    assert all(
        "noise" not in c
        for c in json.loads(compare_cli(capsys, base, night(tmp_path, 3), "--format", "json")[1])["buckets"][
            "unchanged"
        ]
    )
    # A regression fails under either; a clean comparison passes under either.
    slow = night(tmp_path, 4, step_ms=150, name="slow")
    assert compare_cli(capsys, base, slow, "--fail-on", "regression")[0] == 1
    assert compare_cli(capsys, base, slow, "--fail-on", "inconclusive")[0] == 1
    assert compare_cli(capsys, base, night(tmp_path, 5, name="same"), "--fail-on", "inconclusive")[0] == 0
    code, out, _ = compare_cli(capsys, base, noisy, "--format", "markdown")
    assert (
        "### harness compare: INCONCLUSIVE: 2 cases inconclusive" in out
        and "<summary>Inconclusive (2)</summary>" in out
    )


def test_max_interval_sets_how_wide_a_throughput_interval_may_be(tmp_path, capsys):
    base = night(tmp_path, 1)
    wide = make_run(tmp_path, records(130.0, seed=7, throughput_ci95=[1.0, 1000.0]), suite="nightly", name="wide")
    code, out, _ = compare_cli(capsys, base, wide, "--format", "json", "--fail-on", "regression")
    assert code == 0 and json.loads(out)["counts"]["inconclusive"] == 2
    code, out, _ = compare_cli(
        capsys, base, wide, "--format", "json", "--max-interval", "1000", "--fail-on", "regression"
    )
    assert code == 1 and json.loads(out)["thresholds"]["interval"] == 1000
    code, _, err = compare_cli(capsys, base, wide, "--max-interval", "0")
    assert code == 2 and "relative width" in err


def test_recorded_probes_that_differ_3x_make_compare_name_the_busy_run(tmp_path, capsys):
    # The probes of two runs of one suite on one machine, one of them with a package install beside it.
    busy = health(probe(7.6, {"fp32": 0.076, "bf16": 0.025}), probe(8.1, {"fp32": 0.080, "bf16": 0.027}))
    quiet = health(probe(23.5, {"fp32": 0.150, "bf16": 0.058}), probe(22.9, {"fp32": 0.148, "bf16": 0.057}))
    base = night(tmp_path, 1, name="busy", health=busy)
    cand = night(tmp_path, 2, name="quiet", health=quiet)
    code, out, _ = compare_cli(capsys, base, cand, "--fail-on", "regression")
    reason = "baseline looks busy: copy 8.1 vs 23.5 GB/s, fp32 matmul 0.08 vs 0.15 TFLOP/s, bf16 matmul 0.027 vs 0.058"
    reason += " TFLOP/s"
    text = " ".join(out.split())  # the console folds long lines
    assert code == 0 and f"run inconclusive: {reason} (baseline {base}, against {cand};" in text
    assert "INCONCLUSIVE: baseline looks busy" in out
    assert compare_cli(capsys, base, cand, "--fail-on", "inconclusive")[0] == 1
    result = json.loads((cand / "regressions.json").read_text())
    (found,) = result["run_inconclusive"]
    assert found["role"] == "baseline" and found["run"] == str(base) and found["reason"] == reason
    assert found["source"] == "health" and set(found["probes"]) == {
        "copy_gbps",
        "matmul_tflops.fp32",
        "matmul_tflops.bf16",
    }
    summary = (cand / "summary.md").read_text()
    assert "#### Inconclusive at run level" in summary and reason in summary
