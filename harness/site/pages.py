"""The site's own pages: the index (a summary only, no chart library: it must open fast whatever the history) and
one trend page per suite and device (each case's series as embedded JSON; the page script draws the cases chosen,
a case at a time or a few, with the shared ``plotly.js``).

Every string from the runs goes through the templates' autoescaping, and the embedded JSON is escaped so it cannot
close its ``<script>`` element (``harness.report.page.script_json``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import resources
from typing import Any

from harness.report.anchors import case_anchor
from harness.report.page import script_json
from harness.store.skips import Skip


def _asset(name: str) -> str:
    return resources.files("harness.site").joinpath("templates", name).read_text(encoding="utf-8")


def _env():
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["pct"] = lambda v: "" if v is None else f"{v:+.1%}".replace("-", "\u2212")
    env.filters["num"] = lambda v: "" if v is None else f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    env.filters["night"] = lambda t: (t or "start unknown").replace("T", " ").removesuffix("Z")[:16]
    env.filters["anchor"] = case_anchor
    return env


def _common() -> dict[str, Any]:
    from harness import __version__

    return {
        "version": __version__,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "css": _asset("site.css"),
    }


def render_index(groups: dict[str, dict[str, Any]], skips: list[Skip], results: str) -> str:
    """The index: a row per suite and device (latest night and its verdict), the open regressions, the latest
    nights' regressions against their history, the recovered regressions and what was skipped."""
    rows = sorted(groups.values(), key=lambda g: (g["suite"], g["device"]))
    open_, closed, tonight = [], [], []
    for g in rows:
        for reg in g["regressions"]:
            (closed if reg["recovered"] else open_).append({**reg, "group": g})
        for reg in g["verdict"]["regressed"]:
            tonight.append({**reg, "group": g})
    open_.sort(key=lambda r: (r["change"], r["case"]))
    closed.sort(key=lambda r: (r["recovered"]["t"], r["case"]), reverse=True)
    return (
        _env()
        .from_string(_asset("index.html.j2"))
        .render(
            groups=rows,
            open_regressions=open_,
            recovered=closed,
            tonight=tonight,
            skips=[str(s) for s in dict.fromkeys(skips)],
            results=results,
            **_common(),
        )
    )


def render_trend(trend: dict[str, Any]) -> str:
    """A trend page: the chooser of cases (those with an open regression first), the chart of the chosen ones with
    their steps, the steps listed with links to the nights' reports, and every night's report."""
    group = trend["group"]
    open_cases = {r["case"]: r["change"] for r in group["regressions"] if not r["recovered"]}
    cases = sorted(trend["series"], key=lambda c: (c not in open_cases, open_cases.get(c, 0), c))
    data = {
        "nights": [{"t": n["t"], "r": "../" + n["report"]} for n in trend["nights"]],
        "cases": [
            {
                "id": c,
                "a": case_anchor(c),
                "y": trend["series"][c],
                "steps": trend["steps"].get(c, []),
                "open": open_cases.get(c),
                **trend["marks"].get(c, {}),
            }
            for c in cases
        ],
        "threshold": trend["threshold"],
    }
    return (
        _env()
        .from_string(_asset("trend.html.j2"))
        .render(
            group=group,
            nights=trend["nights"],
            cases=data["cases"],
            data_json=script_json(data),
            js=_asset("trend.js"),
            **_common(),
        )
    )
