"""The HTML report: one self-contained page (plotly.js inlined, nothing fetched) built from run folders.

``write_report(run_dirs, out_path)`` is the entry point; ``harness report RUN...`` and the end of ``harness run``
call it. Figures are pure functions of a DataFrame (``harness.report.figures``). Nothing here imports torch.
"""

from __future__ import annotations

from harness.report.page import build_report, write_report

__all__ = ["build_report", "write_report"]
