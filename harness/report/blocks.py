"""The pieces a section is made of: notes, tables, charts, headings, commands, links, headline cards, the verdict
panel and collapsed details.

Sections hold these plain objects; the page template renders them (escaping every string), so no HTML is built
by string concatenation anywhere. Table rows carry the page filter's keys (model, mode, precision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.regress.metrics import number

#: The mark of a value measured under noise (contention or stalled steps), on bars, heatmap cells and table cells.
NOISY_MARK = "⚠"


@dataclass
class Note:
    """A sentence for the reader; ``kind`` is ``info``, ``nodata`` or ``warn`` (styling only)."""

    text: str
    kind: str = "info"
    block: str = "note"


@dataclass
class Heading:
    """A sub-heading inside a section."""

    text: str
    block: str = "heading"


@dataclass
class Code:
    """A command or path to copy, shown as text (never as a link)."""

    label: str
    text: str
    block: str = "code"


@dataclass
class Link:
    """A link to a file beside the report (a relative ``href``) with a line on what to do with it."""

    label: str
    href: str
    text: str
    hint: str = ""
    block: str = "link"


@dataclass
class Verdict:
    """One line of the verdict panel: a headline (``title``), its ``kind`` (``bad``, ``warn``, ``good`` or
    ``info``: styling only) and its items, each (text, in-page ``href`` or '', detail)."""

    title: str
    kind: str = "info"
    items: list[tuple[str, str, str]] = field(default_factory=list)
    block: str = "verdict"


@dataclass
class Details:
    """Blocks shown collapsed under a one-line ``summary`` (the reader opens them)."""

    summary: str
    blocks: list[Any] = field(default_factory=list)
    block: str = "details"


@dataclass
class Cards:
    """Headline numbers: (label, value) pairs shown as cards."""

    items: list[tuple[str, str]]
    block: str = "cards"


@dataclass
class Plot:
    """A chart: its figure as plotly JSON (a dict), the element id it is drawn into, whether it takes half
    the width (small charts sit side by side), and a chooser: (value, label) pairs of the traces' ``meta.case``
    the reader picks from (``*``: every one) and the one drawn first."""

    id: str
    figure: dict[str, Any]
    half: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    chosen: str = ""
    block: str = "plot"


@dataclass
class Cell:
    """A table cell: its text, the value it sorts by (numbers sort as numbers), and a CSS class."""

    text: str
    sort: float | str | None = None
    cls: str = ""
    href: str = ""


@dataclass
class Row:
    """A table row and its filter keys (missing keys match every filter value; a list matches any of them);
    ``id`` is the row's anchor (links land on it) and ``colour`` the colour of its device mark (set when the table
    holds several devices, the device's colour in the charts)."""

    cells: list[Cell]
    keys: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    colour: str = ""

    def key_attr(self, name: str) -> str | None:
        """The row's ``data-<name>`` attribute value: space-separated when the row stands for several values."""
        value = self.keys.get(name)
        if value is None:
            return None
        return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


@dataclass
class Table:
    """A sortable table; ``numeric`` column indexes are right-aligned."""

    columns: list[str]
    rows: list[Row]
    caption: str = ""
    numeric: tuple[int, ...] = ()
    block: str = "table"


@dataclass
class Group:
    """Blocks that belong to one case (its heading, commands, chart and table); the page filter hides the
    whole group when the case does not match."""

    keys: dict[str, Any]
    blocks: list[Any] = field(default_factory=list)
    block: str = "group"

    def add(self, block: Any) -> None:
        """Append a block (None is ignored)."""
        if block is not None:
            self.blocks.append(block)

    def key_attr(self, name: str) -> str | None:
        """The group's ``data-<name>`` attribute value."""
        value = self.keys.get(name)
        return None if value is None else str(value)


@dataclass
class Section:
    """One section of the page: an anchor id, a title, and its blocks in order."""

    id: str
    title: str
    blocks: list[Any] = field(default_factory=list)

    def add(self, block: Any) -> None:
        """Append a block (None is ignored, so optional charts can be added unconditionally)."""
        if block is not None:
            self.blocks.append(block)


def text(value: Any) -> str:
    """A cell's text for any value: '' for nulls, the string otherwise."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def fmt_number(value: float, digits: int = 4, signed: bool = False) -> str:
    """The one number format of every page: ``digits`` significant digits below 1,000, whole numbers with thousands
    separators from 1,000 up (17,691 and 4,303 alike; never 1.769e+04)."""
    sign = "+" if signed else ""
    if abs(value) >= 1000:
        return f"{value:{sign},.0f}"
    shown = f"{value:{sign}.{digits}g}"
    if "e" in shown:  # tiny values: plain decimals (as many as ``digits`` significant ones need), no exponent
        places = digits - 1 - math.floor(math.log10(abs(value)))
        shown = f"{value:{sign}.{places}f}".rstrip("0").rstrip(".")
    return shown


def num(value: Any, digits: int = 4, unit: str = "", scale: float = 1.0, signed: bool = False) -> Cell:
    """A numeric cell shown in the page's number format (``fmt_number``) with ``unit``, sorting by its value."""
    n = number(value, text=True)
    if n is None:
        return Cell("", None)
    n *= scale
    return Cell(fmt_number(n, digits, signed) + (f" {unit}" if unit else ""), n)


def noisy_cell(cell: Cell, record: Any) -> Cell:
    """``cell`` (a value measured against the clock) marked when its record (a derived frame row) was measured
    under noise."""
    if not record.get("noisy") or not cell.text:
        return cell
    return Cell(f"{cell.text} {NOISY_MARK}", cell.sort, "warn")


def pct(value: Any, digits: int = 2, signed: bool = True) -> Cell:
    """A fraction shown as a percentage (0.0123 -> +1.23%), sorting by the fraction."""
    n = number(value, text=True)
    if n is None:
        return Cell("", None)
    return Cell(f"{n * 100:+.{digits}f}%" if signed else f"{n * 100:.{digits}f}%", n)


def keys_of(record: Any) -> dict[str, str]:
    """The filter keys (model, mode, precision) of a record or frame row."""
    return {k: text(record.get(k)) for k in ("model", "mode", "precision")}
