"""Stable anchors into a run report, so other pages and commands can link to one case.

``harness compare`` and ``harness site`` link to ``report.html#<case_anchor(case_id)>``; the report puts that id on
the case's row. The anchor is a pure function of the case id, so a link written before the report is built still
lands on it.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def case_anchor(case_id: str) -> str:
    """The HTML id of ``case_id``'s row: ``case-`` and the id with every run of other characters made ``_``."""
    return "case-" + _UNSAFE.sub("_", str(case_id)).strip("_")
