"""``harness site``: a static, offline folder that is the home page of a nightly results folder.

``build_site(results, out)`` writes, under ``out``: ``index.html`` (every suite and device with its latest night's
verdict, the open and recovered regressions), one trend page per suite and device under ``trends/`` (each case's
throughput over the nights with its detected steps, a case at a time or a few), one run report per run under
``runs/`` and one ``plotly.js`` that every page loads. ``site-state.json`` records what was built from which run,
so a later build only adds, rebuilds or removes what changed (see ``harness.site.build``).
"""

from __future__ import annotations

from harness.site.build import SiteBuild, build_site

__all__ = ["SiteBuild", "build_site"]
