"""The hardware comparison page in a real headless Chromium: every chart draws, nothing is fetched, nothing is
logged as an error, a hostile device name stays text (no dialog), and the filter and sorting work."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.regress import hardware_compare
from harness.report import write_hardware_report
from tests.browser.pages import open_page
from tests.conftest import CHROMIUM_ARGS, ROOT, run_cli
from tests.synthetic import FINGERPRINT, make_record, make_run

pytestmark = pytest.mark.browser

ARGS = CHROMIUM_ARGS
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
ARTIFACTS = ROOT / "test-artifacts"
DEVICES = ("NVIDIA GeForce RTX 3090", f"NVIDIA GeForce {HOSTILE}", "NVIDIA GeForce RTX 5090")


def records(factor: float, telemetry: bool) -> list[dict]:
    out = []
    for model, ms in {"resnet18": 8.0, "resnet50": 30.0, "wide_resnet50_2": 70.0}.items():
        for mode in ("inference", "train"):
            for precision in ("fp32", "amp_fp16"):
                for cl in (False, True):
                    step = ms * factor * (3 if mode == "train" else 1) * (0.55 if precision != "fp32" else 1)
                    rec = make_record(model, mode, 64, precision, cl, step_ms=step * (0.9 if cl else 1), seed=len(out))
                    if telemetry:
                        rec["telemetry"] = {"power_avg_w": 300.0, "img_per_j": rec["throughput_img_s"] / 300.0}
                        rec["mfu"] = 0.3 / factor
                    out.append(rec)
    return out


@pytest.fixture(scope="module")
def hardware_page(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("hardware")
    runs = []
    for i, (device, factor) in enumerate(zip(DEVICES, (1.0, 0.6, 0.45), strict=True)):
        recs = records(factor, telemetry=i < 2)
        if i == 2:
            recs.append(make_record("resnet101", "inference", 64, "fp32", step_ms=40.0))
        fingerprint = {**FINGERPRINT, "device_name": device, "device_type": "cuda", "cuda": "12.4"}
        runs.append(make_run(tmp, recs, fingerprint=fingerprint, name=f"run{i}"))
    (runs[1] / "report.html").write_text("<!DOCTYPE html><title>run 1</title>")  # only run 1 has a report
    return write_hardware_report(hardware_compare(runs), tmp / "hardware.html")


EXAMPLES = ROOT / "examples" / "published-timm" / "timm-infer-amp-nchw"


@pytest.fixture(scope="module")
def published_page(tmp_path_factory) -> Path:
    """The published 3090, 4090 and 5090 figures (AMP, NCHW, eager) through the command, as a user writes them."""
    if not EXAMPLES.is_dir():
        pytest.skip("examples/published-timm not in this tree")
    out = tmp_path_factory.mktemp("published") / "published.html"
    runs = [str(EXAMPLES / name) for name in ("rtx3090-pt240-cu124", "rtx4090-pt291-cu128", "rtx5090-pt291-cu130")]
    done = run_cli("compare", "--hardware", *runs, "--html", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def opened(browser, hardware_page):
    result = open_page(browser, hardware_page)
    yield result
    result.page.context.close()


def test_every_chart_draws_offline_without_errors(opened, hardware_page):
    page = opened.page
    assert opened.errors == []
    assert opened.requests == [hardware_page.resolve().as_uri()]
    containers = page.locator(".plot").count()
    # Speedups: 2 modes x 2 precisions x 2 memory formats; the geometric mean; throughput per mode and precision;
    # images per joule and MFU per mode.
    assert containers == 8 + 1 + 4 + 4
    assert page.locator(".plot.js-plotly-plot").count() == containers
    assert page.locator(".plot .main-svg").count() >= containers
    assert int(page.get_attribute("body", "data-rendered")) == containers
    bars = page.locator("#speedup .plot .point").count()
    assert bars == 8 * 3 * 2  # eight charts, three models, two runs after the reference
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hardware-report.png"), full_page=True)


def test_a_hostile_device_name_is_text_and_runs_nothing(opened):
    page = opened.page
    assert HOSTILE in page.inner_text("h1") and HOSTILE in page.title()
    assert page.locator("img").count() == 0 and page.locator("script").count() == 3
    assert HOSTILE in page.text_content("#runs table")
    legend = page.locator("#speedup .legendtext").all_text_contents()
    assert any(f"{HOSTILE} (torch 2.13.0)" in text for text in legend), legend
    page.hover("#speedup .plot .point >> nth=0", force=True)
    page.wait_for_selector(".hoverlayer .hovertext")
    page.wait_for_timeout(300)
    assert opened.dialogs == [] and opened.errors == []


def test_filter_and_sort(opened):
    page = opened.page
    points = "() => document.querySelectorAll('#speedup .plot .point').length"
    rows = "() => [...document.querySelectorAll('#throughput tbody tr')].filter(r => r.offsetParent).length"
    before_points, before_rows = page.evaluate(points), page.evaluate(rows)
    page.select_option("#filter-model", "resnet50")
    page.wait_for_function("() => JSON.parse(document.body.getAttribute('data-filtered') || '{}').model === 'resnet50'")
    assert page.evaluate(points) == before_points // 3
    assert page.evaluate(rows) == 8  # resnet50 has one case per mode, precision and memory format
    page.click("#filter-reset")
    page.wait_for_function("() => JSON.parse(document.body.getAttribute('data-filtered')).model === ''")
    assert page.evaluate(points) == before_points and page.evaluate(rows) == before_rows
    header = page.locator("#throughput th").nth(1)
    column = "() => [...document.querySelectorAll('#throughput tbody tr')].map(r => r.cells[1].dataset.sort)"
    header.click()
    values = [float(v) for v in page.evaluate(column) if v is not None]
    assert values == sorted(values) and values[0] < values[-1]


def test_the_published_comparison_draws_offline(browser, published_page):
    opened = open_page(browser, published_page)
    page = opened.page
    assert opened.errors == [] and opened.requests == [published_page.resolve().as_uri()]
    # One speedup chart per published resolution (160, 176, 224, 288 px), the geometric mean and the absolute
    # throughput (one mode and precision); no telemetry.
    assert page.locator("#speedup .plot.js-plotly-plot").count() == 4
    assert page.locator(".plot.js-plotly-plot").count() == page.locator(".plot").count() == 6
    assert "RTX 5090" in page.inner_text("h1") and "No telemetry" in page.inner_text("#efficiency")
    assert page.inner_text("#runs table").count("published figures (timm benchmark.py), no samples") == 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hardware-report-published.png"), full_page=True)
    page.context.close()


PAIRS = ((0, 1), (0, 2), (1, 2))
GPUS = ("RTX 3090", "RTX 4090", "RTX 5090")


def visible_throughputs(page) -> list[list[float | None]]:
    """Each visible row of the throughput table: the img/s of the three runs (None where a run has none)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#throughput tbody tr')].filter(r => !r.hidden).map(
            r => [1, 2, 3].map(i => r.cells[i].dataset.sort === undefined ? null : Number(r.cells[i].dataset.sort)))"""
    )


def glance(page) -> list[dict]:
    """The "At a glance" rows: pair name, case count, geometric mean (text and value)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#glance tbody tr')].map(r => ({
            pair: r.cells[0].textContent, cases: Number(r.cells[1].textContent),
            text: r.cells[2].textContent, value: Number(r.cells[2].dataset.sort)}))"""
    )


def expected(rows: list[list[float | None]]) -> list[tuple[int, float]]:
    out = []
    for a, b in PAIRS:
        ratios = [r[b] / r[a] for r in rows if r[a] and r[b]]
        out.append((len(ratios), math.exp(sum(math.log(x) for x in ratios) / len(ratios))))
    return out


def test_published_geometric_means_follow_the_filter(browser, published_page):
    """The first screen holds every pair's geometric mean and the version warning; choosing a model recomputes the
    means from the rows left visible, and reset brings the whole set back."""
    opened = open_page(browser, published_page)
    page = opened.page
    box = page.locator("#glance table").bounding_box()
    assert box["y"] + box["height"] <= 1000  # on the first screen of a 1400x1000 window
    warning = page.inner_text("#glance .note.warn")
    assert "Software differs as well as hardware" in warning
    stacks = ("torch 2.4.0, CUDA 12.4", "torch 2.9.1, CUDA 12.8", "torch 2.9.1, CUDA 13.0")
    for device, versions in zip(GPUS, stacks, strict=True):
        assert f"NVIDIA GeForce {device}: {versions}" in warning
    every = glance(page)
    assert [(r["pair"].split(" (")[0], r["pair"].split(" → ")[1].split(" (")[0]) for r in every] == [
        (GPUS[a], GPUS[b]) for a, b in PAIRS
    ]
    rows = visible_throughputs(page)
    assert len(rows) == 31
    # Every pair's ratio per case, 4090 -> 5090 included, is the ratio of the two throughputs in the row.
    ratios = page.evaluate(
        """() => [...document.querySelectorAll('#throughput tbody tr')].map(
            r => [4, 5, 6].map(i => Number(r.cells[i].dataset.sort)))"""
    )
    for row, got in zip(rows, ratios, strict=True):
        assert got == pytest.approx([row[b] / row[a] for a, b in PAIRS], rel=1e-12)
    for shown, (cases, value) in zip(every, expected(rows), strict=True):
        assert shown["cases"] == cases == 31 and shown["value"] == pytest.approx(value, rel=1e-9)
        assert shown["text"] == f"{value:.2f}×"
    for model in ("resnet50", "wide_resnet101_2"):
        page.select_option("#filter-model", model)
        page.wait_for_function(
            f"() => JSON.parse(document.querySelector('#glance table').dataset.filter || '{{}}').model === '{model}'"
        )
        rows = visible_throughputs(page)
        assert 0 < len(rows) < 31
        now = glance(page)
        for shown, before, (cases, value) in zip(now, every, expected(rows), strict=True):
            assert shown["cases"] == cases == len(rows)
            assert shown["value"] == pytest.approx(value, rel=1e-9) and shown["text"] == f"{value:.2f}×"
            assert shown["value"] != pytest.approx(before["value"], rel=1e-6)
    page.click("#filter-reset")
    page.wait_for_function("() => JSON.parse(document.querySelector('#glance table').dataset.filter).model === ''")
    assert [(r["cases"], r["text"]) for r in glance(page)] == [(r["cases"], r["text"]) for r in every]
    assert opened.errors == []
    page.context.close()


def test_published_absolute_throughput_chart_has_every_gpu(browser, published_page):
    opened = open_page(browser, published_page)
    page = opened.page
    chart = page.locator("#throughput .plot.js-plotly-plot")
    assert chart.count() == 1
    legend = chart.locator(".legendtext").all_text_contents()
    assert [text.split(" (")[0] for text in legend] == list(GPUS)
    # One bar per case and GPU (31 cases on each), drawn from the throughput table's numbers.
    assert chart.locator(".point").count() == 31 * 3
    heights = page.evaluate(
        "() => document.querySelector('#throughput .plot').data.map(t => t.y.reduce((a, b) => a + b, 0))"
    )
    rows = visible_throughputs(page)
    for run, total in enumerate(heights):
        assert total == pytest.approx(sum(r[run] for r in rows), rel=1e-4)
    page.select_option("#filter-model", "resnet18")
    page.wait_for_function("() => JSON.parse(document.body.getAttribute('data-filtered') || '{}').model === 'resnet18'")
    assert chart.locator(".point").count() == len(visible_throughputs(page)) * 3
    assert opened.errors == []
    page.context.close()


def test_a_throughput_links_to_the_case_in_its_runs_report(opened, hardware_page):
    from harness.report.anchors import case_anchor

    page = opened.page
    links = page.evaluate(
        """() => [...document.querySelectorAll('#throughput tbody tr')].map(r => [...r.cells].slice(1, 4).map(
            c => { const a = c.querySelector('a'); return a ? a.href : null; }))"""
    )
    cases = page.evaluate(
        "() => [...document.querySelectorAll('#throughput tbody tr')].map(r => r.cells[0].textContent)"
    )
    assert len(links) == 25 and all(row[0] is None and row[2] is None for row in links)  # runs 0 and 2: no report
    linked = [(case, row[1]) for case, row in zip(cases, links, strict=True) if row[1]]
    assert len(linked) == 24  # every case of run 1 (resnet101 is only on run 2)
    report = (hardware_page.parent / "synthetic" / "run1" / "report.html").resolve()
    for case, href in linked:
        path, anchor = href.split("#")
        assert path == report.as_uri() and anchor == case_anchor(case.removesuffix("/r224"))
    # The link keeps the number, and sorting and the filter still read it.
    row = page.locator("#throughput tbody tr").first
    assert row.locator("td").nth(2).locator("a").inner_text() == row.locator("td").nth(2).inner_text()
