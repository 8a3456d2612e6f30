"""The site of ``harness site`` in a real headless Chromium, with every request that is not a local file failed:
the index loads without errors, its links open the trend page and the run reports, the trend page's chooser
switches the plotted case, and the detected steps are drawn. Screenshots of the index and of a trend page go to
``test-artifacts/``."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.site import build_site
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT
from tests.synthetic import make_record, make_run
from tests.unit.test_site import MARKED, OPEN, RECOVERED, nightly_history

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("site")
    nightly_history(tmp / "results", 12)
    nightly_history(tmp / "results", 4, device="Other CPU")
    for night in (1, 2):  # a suite whose name is markup stays text on every page
        make_run(tmp / "results", [make_record(suite=XSS)], suite=XSS, started_at=f"2026-01-0{night}T00:00:00Z")
    build_site(tmp / "results", tmp / "site")
    return tmp / "site"


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.errors, page.blocked, page.dialogs = [], [], []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(str(e)))

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                page.blocked.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        yield page
        context.close()
        browser.close()


def plotted(page) -> list[str]:
    return page.evaluate("() => document.getElementById('chart').data.map(t => t.name)")


def test_index_trend_and_reports_offline(site, page):
    page.goto((site / "index.html").as_uri())
    page.wait_for_selector("html[data-ready]")
    rows = page.locator("#groups tbody tr")
    assert rows.count() == 3
    assert page.locator(f'#groups tr[data-suite="{XSS}"] td').first.inner_text() == XSS
    assert page.locator("#open tr.open-regression").count() == 1
    assert OPEN in page.locator("#open").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "site-index.png"), full_page=True)

    # The latest night's report opens from the index and draws with the site's shared plotly.js.
    page.locator('#groups tr[data-suite="synthetic"][data-device="Synthetic CPU"] a.report').click()
    page.wait_for_selector("body[data-rendered]", timeout=60_000)
    assert "night11" in page.url
    assert page.evaluate("() => typeof Plotly") == "object"
    assert page.locator(".js-plotly-plot").count() > 0

    # The trend page opens from the index; the case with the open regression is drawn first, with its step.
    page.goto((site / "index.html").as_uri())
    page.locator('#groups tr[data-suite="synthetic"][data-device="Synthetic CPU"] a.trend').click()
    page.wait_for_selector("html[data-ready]")
    assert plotted(page) == [OPEN, "step down (regression)"]
    assert page.locator("#chart .scatterlayer .trace").count() == 2
    assert page.locator("#steps tbody tr").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "site-trend.png"), full_page=True)

    # The chooser switches the plotted case: the recovered one has a step down and a step back up.
    page.select_option("#case-choice", RECOVERED)
    page.wait_for_function(f"() => document.getElementById('chart').dataset.cases === {RECOVERED!r}")
    names = plotted(page)
    assert names[0] == RECOVERED and OPEN not in names
    assert {"step down (regression)", "step up"} <= set(names)
    assert "not recovered" not in page.locator("#steps").inner_text()
    # A few at once.
    page.select_option("#case-choice", [OPEN, RECOVERED])
    page.wait_for_function("() => document.getElementById('chart').dataset.cases.split('\\n').length === 2")
    assert {OPEN, RECOVERED} <= set(plotted(page))

    # A night that failed and one measured under noise are marked on the case's line.
    page.select_option("#case-choice", MARKED)
    page.wait_for_function(f"() => document.getElementById('chart').dataset.cases === {MARKED!r}")
    assert {"failed", "noisy night"} <= set(plotted(page))
    page.select_option("#case-choice", [OPEN, RECOVERED])
    page.wait_for_function("() => document.getElementById('chart').dataset.cases.split('\\n').length === 2")

    # A step's night links to that night's report, at the case's row.
    link = page.locator("#steps tbody a").first.get_attribute("href")
    assert link.startswith("../runs/") and "#case-" in link
    target = (site / "trends" / link.split("#")[0]).resolve()
    assert target.is_file()

    # The trend page's own link back, and a link into the trend page from the index with a case chosen.
    page.goto((site / "index.html").as_uri())
    page.locator("#open a", has_text="trend").first.click()
    page.wait_for_selector("html[data-ready]")
    assert plotted(page)[0] == OPEN

    # The trend page of the suite named with markup shows the name as text.
    page.goto((site / "index.html").as_uri())
    page.locator(f'#groups tr[data-suite="{XSS}"] a.trend').click()
    page.wait_for_selector("html[data-ready]")
    assert page.locator("h1").inner_text().startswith(XSS)

    assert page.errors == []
    assert page.blocked == []
    assert page.dialogs == []
