"""The HTML report: one self-contained page (plotly.js inlined, nothing fetched) built from run folders.

``write_report(run_dirs, out_path)`` is the entry point; ``harness report RUN...`` and the end of ``harness run``
call it; ``write_hardware_report(comparison, out_path)`` writes the page of a hardware comparison
(``harness compare --hardware ... --html FILE``). Figures are pure functions of a DataFrame
(``harness.report.figures``). Nothing here imports torch. The package imports its pages lazily, so a light module
of it (``harness.report.anchors``, which ``harness compare`` uses for its links) costs no plotly, jinja2 or pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_ENTRY_POINTS = {
    "build_hardware_page": "harness.report.hardware",
    "write_hardware_report": "harness.report.hardware",
    "build_report": "harness.report.page",
    "write_report": "harness.report.page",
}
__all__ = sorted(_ENTRY_POINTS)


def __getattr__(name: str) -> Any:
    if name in _ENTRY_POINTS:
        return getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module 'harness.report' has no attribute {name!r}")
