"""What the sections of one page share while they are built: the chart numbering, and for the run report the
report data with its successful rows and modes, and the comparisons against the baseline.

Every section module takes a ``Builder`` and imports it from here; the page order lives in
``harness.report.sections.build_sections``, the one module that imports the section modules, so none of them
imports another to learn the page.
"""

from __future__ import annotations

from typing import Any

from harness.report.blocks import Plot
from harness.report.data import MODE_ORDER, ReportData, device_colours, ordered


class Charts:
    """Numbers the charts of one page: each figure becomes a ``Plot`` block with the next id (``plot-1``, ...),
    which is how the page script finds its data."""

    def __init__(self) -> None:
        self._count = 0

    def plot(
        self, fig: Any, half: bool = False, choices: list[tuple[str, str]] | None = None, chosen: str = ""
    ) -> Plot | None:
        """A ``Plot`` block for a figure (None stays None), with a chooser of its cases when ``choices`` are given."""
        if fig is None:
            return None
        self._count += 1
        return Plot(f"plot-{self._count}", fig.to_plotly_json(), half, list(choices or []), chosen)


class Builder(Charts):
    """The state of one run report's sections: the report data, its successful rows (``ok``) and their modes in
    page order, the device colours (empty unless the records come from several devices), and ``changes`` /
    ``change_notes``: ``harness compare``'s verdicts against the baseline (``harness.report.changes``), set by
    ``build_sections`` before any section is built."""

    def __init__(self, data: ReportData) -> None:
        super().__init__()
        self.data = data
        self.ok = data.ok
        self.modes = ordered(self.ok["mode"], MODE_ORDER) if not self.ok.empty else []
        self.colours = device_colours(data.devices) if data.many_devices else {}
        self.changes: list[Any] = []
        self.change_notes: list[str] = []

    def row_colour(self, record: Any) -> str:
        """The colour mark of a table row: its device's colour when the page holds several devices, else ''."""
        return self.colours.get(str(record.get("device_key")), "") if self.colours else ""
