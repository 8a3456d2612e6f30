"""Opening a page in the shared headless Chromium: a fresh context at 1400x1000, waited on until every chart is
drawn, with its console errors, requests and dialogs collected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Opened:
    page: object
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def open_page(browser, path: Path) -> Opened:
    """``path`` opened in a new context of ``browser`` (close it with ``opened.page.context.close()``)."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    opened = Opened(page)
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    page.on("request", lambda r: opened.requests.append(r.url))
    page.on("dialog", lambda d: (opened.dialogs.append(d.message), d.dismiss()))
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-rendered]", timeout=60_000)
    return opened
