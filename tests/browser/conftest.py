"""The headless Chromium the browser tests share (Debian's, started with ``CHROMIUM_ARGS``; never downloaded), and
``open_report``: a page opened on a report in a fresh context at 1400x1000, waited on until every chart is drawn,
with its console errors, requests and dialogs collected."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.pages import Opened, open_page
from tests.conftest import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_report(browser):
    contexts = []

    def opener(path: Path) -> Opened:
        opened = open_page(browser, path)
        contexts.append(opened.page.context)
        return opened

    yield opener
    for context in contexts:
        context.close()
