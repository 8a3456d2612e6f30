"""The report in a real headless Chromium: it draws every chart, loads nothing from the network, logs no errors,
its filter changes what the charts and tables show, its tables sort, and a hostile suite name stays text.

Two reports are opened: a rich synthetic one (two runs with telemetry, profile, accuracy and a failure; runs
everywhere) and the report of a real smoke run of the harness (needs the runner, ``harness run``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report import write_report
from tests.conftest import ROOT, run_cli
from tests.synthetic import make_record, make_run

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"
ARTIFACTS = ROOT / "test-artifacts"
SMOKE_SUITE = """\
name: report-smoke
defaults:
  device: cpu
  warmup: {min_iters: 1, max_iters: 3, max_seconds: 2}
  measure: {min_iters: 3, min_seconds: 0, repeats: 1}
matrix:
  model: [resnet18, resnet34]
  mode: [inference, train]
  batch_size: [2]
  resolution: [32, 64]
  precision: [fp32, amp_bf16]
  channels_last: [false, true]
"""


NOISY_CASE = "resnet34/inference/bs8/amp_bf16"
NOISE_REASON = f"other processes used 46% of the 2 cores this run may use {XSS}"


def rich_records(night: int) -> list[dict]:
    """Three models, both modes, two batch sizes, fp32 and amp_bf16, both memory formats; telemetry on every
    case, a profile and a measured accuracy on one, one OOM whose message holds markup, and (the second night)
    one case measured under noise whose reason holds markup."""
    base = {"resnet18": 8.0, "resnet34": 15.0, "resnet50": 30.0}
    records = []
    for model, ms in base.items():
        for mode in ("inference", "train"):
            for bs in (8, 32):
                for precision in ("fp32", "amp_bf16"):
                    for cl in (False, True):
                        step = ms * bs / 32 * (3 if mode == "train" else 1) * (0.5 if precision != "fp32" else 1)
                        step *= (0.9 if cl else 1.0) * (1.2 if night and model == "resnet50" else 1.0)
                        r = make_record(model, mode, bs, precision, cl, step_ms=step, seed=len(records), suite=XSS)
                        r["telemetry"] = {
                            "power_avg_w": 280.0,
                            "power_max_w": 320.0,
                            "energy_j": 500.0,
                            "img_per_j": r["throughput_img_s"] / 280,
                            "sm_clock_mhz": 1750,
                            "mem_clock_mhz": 1593,
                            "temperature_c": 66,
                            "utilization_pct": 97,
                            "memory_used_mib": 9000,
                            "throttle_reasons": ["sw_power_cap"] if model == "resnet50" else [],
                        }
                        r["mfu"] = 0.25
                        records.append(r)
    records[0]["profile"] = {
        "trace_dir": "profiles/resnet18-inference-bs8-fp32",
        "top_ops": [
            {
                "name": "aten::mkldnn_convolution",
                "calls": 20,
                "self_time_ms": 9.5,
                "self_cuda_time_ms": None,
                "share": 0.7,
            },
            {
                "name": "aten::native_batch_norm",
                "calls": 20,
                "self_time_ms": 2.1,
                "self_cuda_time_ms": None,
                "share": 0.15,
            },
        ],
        "error": None,
    }
    if night:
        (noisy,) = [r for r in records if r["case_id"] == NOISY_CASE]
        noisy.update(noisy=True, noise=[NOISE_REASON])
    records[1]["weights"] = "V1"
    records[1]["accuracy"] = {"acc1": 69.7, "acc5": 89.0}
    records.append(
        make_record("resnet50", "train", 256, "fp32", status="oom", suite=XSS, message="OOM <script>alert(2)</script>")
    )
    return records


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("synthetic")
    runs = [make_run(tmp, rich_records(n), suite=XSS, started_at=f"2026-01-0{n + 1}T02:00:00Z") for n in range(2)]
    return write_report(runs, tmp / "report.html")


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory) -> Path:
    if not (ROOT / "harness" / "commands" / "run.py").is_file():
        pytest.skip("runner not available")
    tmp = tmp_path_factory.mktemp("smoke")
    suite = tmp / "report-smoke.yaml"
    suite.write_text(SMOKE_SUITE)
    done = run_cli("run", str(suite), "--out", str(tmp / "results"), "--no-report", timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("run folder: "), last
    run_dir = Path(last.removeprefix("run folder: "))
    return write_report([run_dir], tmp / "report.html")


def chart_counts(page) -> dict[str, tuple[int, int, int]]:
    """Per section: (chart containers, charts plotly drew, charts with an SVG)."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('section')].map(s => [s.id, [
            s.querySelectorAll('.plot').length,
            s.querySelectorAll('.plot.js-plotly-plot').length,
            [...s.querySelectorAll('.plot')].filter(d => d.querySelector('.main-svg')).length]]))"""
    )


def visible_rows(page, section: str) -> list[str | None]:
    """The data-model of every visible row of the section's tables."""
    return page.evaluate(
        f"""() => [...document.querySelectorAll('#{section} tbody tr')]
            .filter(tr => tr.offsetParent !== null).map(tr => tr.getAttribute('data-model'))"""
    )


def choose(page, key: str, value: str) -> None:
    page.select_option(f"#filter-{key}", value)
    page.wait_for_function(
        "([k, v]) => JSON.parse(document.body.getAttribute('data-filtered') || '{}')[k] === v", arg=[key, value]
    )


# The smoke report measures 32 real cases first (about half a minute on two cores).
REPORTS = ["synthetic_report", pytest.param("smoke_report", marks=pytest.mark.slow)]
#: Sections that must hold drawn charts in each report (the smoke run is one CPU run: no telemetry, no trends).
CHARTED = {
    "synthetic_report": {"throughput", "speedups", "memory", "ops", "efficiency", "accuracy", "trends", "profile"},
    "smoke_report": {"throughput", "speedups", "memory", "ops", "accuracy"},
}


@pytest.mark.parametrize("report", REPORTS)
def test_every_chart_draws_offline_without_errors(report, request, open_report):
    path = request.getfixturevalue(report)
    opened = open_report(path)
    assert opened.errors == []
    assert opened.requests == [path.resolve().as_uri()]
    counts = chart_counts(opened.page)
    for section in CHARTED[report]:
        containers, drawn, with_svg = counts[section]
        assert containers > 0 and drawn == containers and with_svg == containers, (section, counts[section])
    assert all(drawn == containers for containers, drawn, _ in counts.values()), counts
    assert int(opened.page.get_attribute("body", "data-rendered")) == sum(c for c, _, _ in counts.values())
    ARTIFACTS.mkdir(exist_ok=True)
    name = "report.png" if report == "synthetic_report" else "report-smoke.png"
    opened.page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.mark.parametrize("report", REPORTS)
def test_filter_changes_charts_and_tables(report, request, open_report):
    page = open_report(request.getfixturevalue(report)).page
    points = "() => document.querySelectorAll('#throughput .plot .point').length"
    rows_before, points_before = visible_rows(page, "throughput"), page.evaluate(points)
    assert {"resnet18", "resnet34"} <= set(rows_before)

    choose(page, "model", "resnet18")
    rows_after, points_after = visible_rows(page, "throughput"), page.evaluate(points)
    assert set(rows_after) == {"resnet18"} and len(rows_after) == rows_before.count("resnet18")
    assert 0 < points_after < points_before
    ticks = page.evaluate("() => [...document.querySelectorAll('#throughput .xtick text')].map(t => t.textContent)")
    assert ticks and all(t.startswith("resnet18") or t.isdigit() for t in ticks), ticks
    assert set(visible_rows(page, "accuracy")) == {"resnet18"}

    titles = "() => [...document.querySelectorAll('#throughput .plot')].map(d => d.hidden ? null : d.layout.title.text)"
    shown = page.evaluate(titles)
    choose(page, "mode", "train")
    # The inference charts have nothing left to draw and are hidden; the train charts stay.
    after = page.evaluate(titles)
    assert [t for t in after if t] == [t for t in shown if "train" in t] and any("inference" in t for t in shown)
    assert page.evaluate(points) < points_after

    page.click("#filter-reset")
    page.wait_for_function(
        "() => document.body.getAttribute('data-filtered') === JSON.stringify({model: '', mode: '', precision: ''})"
    )
    assert visible_rows(page, "throughput") == rows_before and page.evaluate(points) == points_before


def test_tables_sort_by_a_click_on_a_header(synthetic_report, open_report):
    page = open_report(synthetic_report).page
    header = page.locator("#throughput th", has_text="img/s")
    column = "() => [...document.querySelectorAll('#throughput tbody tr')].map(tr => Number(tr.cells[8].dataset.sort))"
    header.click()
    ascending = page.evaluate(column)
    assert ascending == sorted(ascending) and ascending[0] < ascending[-1]
    header.click()
    assert page.evaluate(column) == sorted(ascending, reverse=True)


def test_a_hostile_suite_name_is_text_and_runs_nothing(synthetic_report, open_report):
    opened = open_report(synthetic_report)
    page = opened.page
    assert XSS in page.inner_text("h1") and XSS in page.title()
    assert page.locator("img").count() == 0
    assert "OOM <script>alert(2)</script>" in page.text_content("#failures")
    assert page.locator("script").count() == 3
    # Chart titles are drawn by plotly from the embedded JSON: the name is text there too.
    assert XSS in page.text_content("#trends .gtitle")
    page.hover("#throughput .plot .point >> nth=0", force=True)
    page.wait_for_selector(".hoverlayer .hovertext")
    page.wait_for_timeout(300)
    assert opened.dialogs == [] and opened.errors == []


def test_a_noisy_case_is_marked_in_its_table_row_bars_and_speedup_cells(synthetic_report, open_report):
    opened = open_report(synthetic_report)
    page = opened.page
    noise = page.evaluate(
        """(id) => [...document.querySelectorAll('#throughput tbody tr')]
            .filter(tr => tr.cells[0].textContent.trim() === id)
            .map(tr => [tr.cells[8].textContent.trim(), tr.cells[tr.cells.length - 1].textContent.trim()])""",
        NOISY_CASE + "/r224",  # the page shows the resolution of every case, 224 px included
    )
    assert len(noise) == 1 and noise[0][0].endswith("⚠") and noise[0][1] == f"⚠ {NOISE_REASON}", noise
    marks = "(s) => [...document.querySelectorAll(s)].filter(t => t.textContent.includes('⚠')).length"
    assert page.evaluate(marks, "#throughput .plot text.bartext") == 1
    # amp_bf16 over fp32 (NCHW) and channels_last over NCHW (amp_bf16) each hold the noisy case once.
    assert page.evaluate(marks, "#speedups .plot text") == 2
    choose(page, "model", "resnet18")
    assert page.evaluate(marks, "#throughput .plot text.bartext") == 0
    choose(page, "model", "resnet34")
    assert page.evaluate(marks, "#throughput .plot text.bartext") == 1
    assert opened.dialogs == [] and opened.errors == [] and page.locator("img").count() == 0
