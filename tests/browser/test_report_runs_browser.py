"""The run report as its readers use it, in headless Chromium: the verdict panel on the first screen links to each
case it names; a two-run report's changes agree case by case with ``harness compare`` on the same runs; the report
of three published GPUs tells the devices apart; every table downloads as CSV; plotly's toolbar offers nothing
that reaches the network.

Screenshots of each page type go to ``test-artifacts/`` (report-verdict.png, report-two-runs.png,
report-three-gpus.png).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from harness.report import write_report
from harness.report.anchors import case_anchor
from tests.conftest import ROOT, run_cli
from tests.synthetic import make_record, make_run

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
PUBLISHED = ROOT / "examples" / "published-timm" / "timm-infer-amp-nchw"
GPUS = {
    "NVIDIA GeForce RTX 3090": PUBLISHED / "rtx3090-pt240-cu124",
    "NVIDIA GeForce RTX 4090": PUBLISHED / "rtx4090-pt291-cu128",
    "NVIDIA GeForce RTX 5090": PUBLISHED / "rtx5090-pt291-cu130",
}
FAILED = "resnet50/train/bs256/fp32"
NOISY = "resnet18/inference/bs32/amp_bf16"
SLOWED = "resnet50/inference/bs32/fp32"
NOISE = "other processes used 41% of the 2 cores this run may use"


def night(slow: bool) -> list[dict]:
    """Two models x two precisions x two batch sizes; ``slow``: resnet50 fp32 at bs32 is 40% slower."""
    records = []
    for model, ms in (("resnet18", 8.0), ("resnet50", 30.0)):
        for bs in (8, 32):
            for precision in ("fp32", "amp_bf16"):
                step = ms * bs / 32 * (0.5 if precision != "fp32" else 1.0)
                if slow and (model, bs, precision) == ("resnet50", 32, "fp32"):
                    step *= 1.4
                records.append(make_record(model, "inference", bs, precision, step_ms=step, seed=len(records) + slow))
    return records


@pytest.fixture(scope="module")
def verdict_report(tmp_path_factory) -> Path:
    """One run with a failed case and a case measured under noise."""
    tmp = tmp_path_factory.mktemp("verdict")
    records = night(False)
    (noisy,) = [r for r in records if r["case_id"] == NOISY]
    noisy.update(noisy=True, noise=[NOISE])
    records.append(make_record("resnet50", "train", 256, "fp32", status="oom", message="CUDA out of memory"))
    return write_report([make_run(tmp, records)], tmp / "report.html")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(baseline run, candidate run with one case clearly slower, the report of both)."""
    tmp = tmp_path_factory.mktemp("two")
    base = make_run(tmp, night(False), started_at="2026-01-01T02:00:00Z")
    cand = make_run(tmp, night(True), started_at="2026-01-02T02:00:00Z")
    return base, cand, write_report([cand, base], tmp / "report.html")


@pytest.fixture(scope="module")
def gpu_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpus") / "report.html"
    done = run_cli("report", *map(str, GPUS.values()), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


def verdict_links(page) -> dict[str, list[tuple[str, str]]]:
    """Per verdict box title: (link text, href) of its links."""
    found = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#summary .verdict')].map(v => [
            v.querySelector('.verdict-title').textContent,
            [...v.querySelectorAll('a')].map(a => [a.textContent.trim(), a.getAttribute('href')])]))"""
    )
    return {title: [tuple(link) for link in links] for title, links in found.items()}


def table_rows(page, selector: str) -> list[list[str]]:
    """The text of every cell of every visible row of the first table under ``selector``, header first."""
    return page.evaluate(
        """(s) => { const t = document.querySelector(s + ' table');
            return [[...t.tHead.rows[0].cells].map(c => c.textContent.trim()),
                    ...[...t.tBodies[0].rows].filter(r => !r.hidden)
                        .map(r => [...r.cells].map(c => c.textContent.trim()))]; }""",
        selector,
    )


def column(rows: list[list[str]], name: str) -> list[str]:
    index = rows[0].index(name)
    return [r[index] for r in rows[1:]]


def in_view(page, anchor: str) -> bool:
    return page.evaluate(
        """(id) => { const r = document.getElementById(id).getBoundingClientRect();
            return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight; }""",
        anchor,
    )


def test_the_verdict_panel_links_the_failed_and_the_noisy_case_to_their_rows(verdict_report, open_report):
    opened = open_report(verdict_report)
    page = opened.page
    boxes = verdict_links(page)
    (failed,) = [links for title, links in boxes.items() if "failed" in title]
    (noisy,) = [links for title, links in boxes.items() if "noise" in title]
    assert failed == [(f"{FAILED}/r224", f"#{case_anchor(FAILED)}")]
    assert noisy == [(f"{NOISY}/r224", f"#{case_anchor(NOISY)}")]
    assert any("Fastest case" in title for title in boxes)
    # One run: the panel says plainly that nothing was compared.
    assert "Regressions: not judged" in page.inner_text("#summary") and "no baseline" in page.inner_text("#summary")
    # The panel is on the first screen, above the runs and the (collapsed) environment.
    assert page.evaluate("document.querySelector('#summary .verdict').getBoundingClientRect().bottom") < 1000
    assert page.evaluate("document.querySelector('#summary details').open") is False
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-verdict.png"))
    for label, href in (*failed, *noisy):
        page.click(f"#summary .verdict a[href='{href}']")
        page.wait_for_function("(h) => location.hash === h", arg=href)
        page.wait_for_timeout(200)
        assert in_view(page, href[1:]), href
        row = page.evaluate("(id) => document.getElementById(id).cells[0].textContent.trim()", href[1:])
        assert row == label
    assert "CUDA out of memory" in page.inner_text(f"#{case_anchor(FAILED)}")
    assert opened.errors == [] and opened.requests == [verdict_report.resolve().as_uri()]  # nothing fetched


def test_a_two_run_report_agrees_with_harness_compare_case_by_case(two_runs, open_report, tmp_path):
    base, cand, report = two_runs
    done = run_cli("compare", str(base), str(cand), "--format", "json", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    verdicts = {c["key"]: bucket for bucket, cases in json.loads(done.stdout)["buckets"].items() for c in cases}
    assert verdicts[SLOWED] == "regressed" and len(verdicts) == 8
    opened = open_report(report)
    page = opened.page
    shown = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#changes tbody tr')].map(tr =>
            [tr.cells[0].dataset.sort, tr.cells[2].dataset.sort]))"""
    )
    assert shown == verdicts
    # The regression is named on the first screen and its link lands on its row of the changes table.
    (regressed,) = [links for title, links in verdict_links(page).items() if "regression(s)" in title]
    assert [label for label, _ in regressed] == [f"{SLOWED}/r224"]
    page.click(f"#summary .verdict a[href='{regressed[0][1]}']")
    page.wait_for_timeout(200)
    assert in_view(page, regressed[0][1][1:])
    # Cards count runs and records honestly; the per-case table says which run each row comes from.
    cards = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#summary .card')].map(c => "
        "[c.querySelector('.card-label').textContent, c.querySelector('.card-value').textContent]))"
    )
    assert cards["runs"] == "2" and cards["records"] == "16" and cards["cases"] == "8"
    rows = table_rows(page, "#throughput")
    assert set(column(rows, "run")) == {f"synthetic/{cand.name}"}
    # Trends: one case at a time, chosen from a list; the chart opens on the case that moved.
    chooser = "#trends label.chooser select"
    assert page.eval_on_selector(chooser, "s => s.value") == f"{SLOWED}/r224"
    drawn = "() => document.querySelector('#trends .plot').data.map(t => t.name)"
    assert page.evaluate(drawn) == [f"{SLOWED}/r224"]
    page.select_option(chooser, f"{NOISY}/r224")
    page.wait_for_function(
        "(v) => document.querySelector('#trends .plot').dataset.drawnChoice === v", arg=NOISY + "/r224"
    )
    assert page.evaluate(drawn) == [f"{NOISY}/r224"]
    assert page.evaluate("() => document.querySelector('#trends .plot .legend') !== null")
    page.select_option(chooser, "*")
    page.wait_for_function("() => document.querySelector('#trends .plot').dataset.drawnChoice === '*'")
    assert len(page.evaluate(drawn)) == 8
    # The chooser follows the page filter: a case the filter leaves out is not offered, nor drawn.
    page.select_option(chooser, f"{SLOWED}/r224")
    page.wait_for_function(
        "(v) => document.querySelector('#trends .plot').dataset.drawnChoice === v", arg=SLOWED + "/r224"
    )
    page.select_option("#filter-model", "resnet18")
    page.wait_for_function("() => JSON.parse(document.body.dataset.filtered || '{}').model === 'resnet18'")
    offered = page.eval_on_selector_all(f"{chooser} option:not([disabled])", "os => os.map(o => o.value)")
    assert offered[0] == "*" and all(v.startswith("resnet18/") for v in offered[1:]) and len(offered) == 5
    assert page.eval_on_selector(chooser, "s => s.value") == "*"
    assert sorted(page.evaluate(drawn)) == sorted(offered[1:])
    page.click("#filter-reset")
    page.evaluate("document.getElementById('changes').scrollIntoView()")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-two-runs.png"))
    assert opened.errors == [] and opened.requests == [report.resolve().as_uri()]  # nothing fetched


def test_the_three_gpu_report_names_and_colours_each_device(gpu_report, open_report):
    opened = open_report(gpu_report)
    page = opened.page
    rows = table_rows(page, "#throughput")
    cases, devices = column(rows, "case"), column(rows, "device")
    assert len(rows) - 1 == 93 and set(devices) == set(GPUS)
    # Every case appears once per GPU: its id names it three times, the device column tells the three apart.
    assert len(set(cases)) == 31 and all(cases.count(c) == 3 for c in cases)
    assert len(set(zip(cases, devices, strict=True))) == 93
    assert all("/r" in c for c in cases) and f"{cases[3]}".endswith("/r224")  # 224 px ids keep their resolution
    colours = page.evaluate(
        "() => [...document.querySelectorAll('#throughput tbody tr')].map(tr => tr.style.getPropertyValue('--dev'))"
    )
    assert len(set(colours)) == 3 and "" not in colours
    bars = page.evaluate("() => document.querySelector('#throughput .plot').data.map(t => [t.name, t.marker.color])")
    assert len(bars) == 3 and len({c for _, c in bars}) == 3
    assert all(any(d in name for d in GPUS) for name, _ in bars)
    headers = page.evaluate(
        "() => [...document.querySelectorAll('#summary thead tr')].map(tr => [...tr.cells].map(c => c.textContent))"
    )
    assert all("device" in h for h in headers if "best img/s" in h or "geometric mean img/s" in h)
    header = page.inner_text("header")
    assert "start time unknown" not in header and "imported from timm benchmark.py 2026-11-23" in header
    efficiency = page.inner_text("#efficiency")
    assert "CPU run" not in efficiency and "published figures" in efficiency
    runs = table_rows(page, "#summary")
    assert all(re.fullmatch(r"2026-\S+Z \(imported\)", d) for d in column(runs, "date (UTC)"))
    assert all("timm benchmark.py" in s and ".csv" in s for s in column(runs, "source"))
    # The runs table fits the page: the long file names of imported runs wrap instead of scrolling it sideways.
    overflow = page.evaluate(
        """() => [...document.querySelectorAll('#summary .table-wrap')]
            .filter(w => [...w.querySelectorAll('th')].some(th => th.textContent.trim() === 'source'))
            .map(w => w.scrollWidth - w.clientWidth)"""
    )
    assert overflow == [0]
    # No number, id or single word breaks across lines (cells of several words wrap between them).
    broken = page.evaluate(
        """() => [...document.querySelectorAll('td')].filter(td => td.matches('.num, .id')
                || !/\\s/.test(td.textContent.trim())).filter(td => {
            const r = document.createRange(); r.selectNodeContents(td);
            const lines = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
            return lines.size > 1; }).map(td => td.textContent)"""
    )
    assert broken == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-three-gpus.png"))
    page.evaluate("document.getElementById('throughput').scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / "report-three-gpus-throughput.png"))
    assert opened.errors == [] and opened.requests == [gpu_report.resolve().as_uri()]  # nothing fetched


def test_each_table_downloads_as_csv_with_the_rows_it_shows(gpu_report, open_report):
    page = open_report(gpu_report).page
    buttons = page.locator("button.csv")
    assert buttons.count() == page.locator("table.sortable").count() > 3
    with page.expect_download() as info:
        page.click("#throughput button.csv")
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    assert list(csv.reader(io.StringIO(text))) == table_rows(page, "#throughput")
    page.select_option("#filter-model", "resnet50")
    page.wait_for_function("() => JSON.parse(document.body.dataset.filtered || '{}').model === 'resnet50'")
    with page.expect_download() as info:
        page.click("#throughput button.csv")
    filtered = list(csv.reader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8-sig"))))
    assert filtered == table_rows(page, "#throughput") and len(filtered) - 1 == 3 * 4
    assert {r[filtered[0].index("model")] for r in filtered[1:]} == {"resnet50"}


def test_the_chart_toolbar_offers_no_cloud_share_and_no_logo(two_runs, open_report):
    page = open_report(two_runs[2]).page
    page.hover("#throughput .plot")
    page.wait_for_selector("#throughput .modebar-btn", state="attached")
    titles = page.evaluate(
        "() => [...document.querySelectorAll('.modebar-btn')].map(b => b.getAttribute('data-title') || '')"
    )
    assert titles and "Download plot as a PNG" in titles
    assert not [t for t in titles if any(w in t.lower() for w in ("cloud", "chart studio", "share", "edit"))]
    assert page.locator(".modebar-btn--logo").count() == 0
    assert page.locator("a[href*='plotly.com'], a[href*='plot.ly']").count() == 0
