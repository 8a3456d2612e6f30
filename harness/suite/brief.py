"""A bounded, non-recursive ``repr`` for putting a user's value into a message. Imports nothing heavy.

``repr()`` walks the whole value before anything can be cut: a YAML alias bomb (nine levels of nine aliases, a
few hundred bytes of text) stands for hundreds of millions of items, and ``repr`` of it runs for minutes and
gigabytes. ``brief`` walks the value with its own stack and stops once ``width`` characters are written, so its
cost is bounded by ``width`` whatever the value: at most about ``width`` items are visited, containers nested
deeper than ``depth`` show as ``[...]`` / ``{...}``, and a long text or a huge integer is cut before it is
converted. Scalars read as YAML wrote them: ``true``, ``null``, ``.inf``; text keeps its quotes (``'64'``).
"""

from __future__ import annotations

import math
from typing import Any

#: Characters of a value shown in a message; longer values end in "...".
WIDTH = 60
#: Container levels shown; deeper ones show as [...] or {...}.
DEPTH = 4
# Integers with more bits than this are not converted to decimal (Python refuses past 4300 digits, and the
# conversion is quadratic); they show as "<an integer of about N digits>".
_INT_BITS = 4096

_OPEN = {list: "[", tuple: "(", dict: "{", set: "{", frozenset: "{"}
_CLOSE = {"[": "]", "(": ")", "{": "}"}


def _container_type(value: Any) -> type | None:
    for kind in _OPEN:
        if isinstance(value, kind):
            return kind
    return None


def scalar(value: Any, width: int = WIDTH) -> str:
    """One non-container value as text of at most about ``width`` characters (before the caller's cut)."""
    if value is True or value is False:
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, int):
        if value.bit_length() > _INT_BITS:
            digits = int(value.bit_length() * math.log10(2)) + 1
            return f"<an integer of about {digits:,} digits>"
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, (str, bytes, bytearray)):
        return repr(value[: width + 1])  # one more than fits, so the caller sees it was cut
    if type(value).__module__ == "datetime":
        return str(value)
    return f"<{type(value).__name__}>"


def brief(value: Any, width: int = WIDTH, depth: int = DEPTH) -> str:
    """``value`` as text of at most ``width`` characters (cut ones end in ``...``), computed in time and memory
    bounded by ``width``: the walk is iterative and stops as soon as the budget is spent."""
    out: list[str] = []
    size = 0
    budget = width + 1  # one more than fits tells "cut" from "exactly full"
    # The stack holds text to write (str) or a frame: [iterator, closer, level, is_mapping, first].
    stack: list[Any] = [("value", value, 0)]
    while stack and size < budget:
        top = stack[-1]
        if isinstance(top, str):
            stack.pop()
            out.append(top)
            size += len(top)
            continue
        if isinstance(top, tuple):  # ("value", v, level): a value to write
            stack.pop()
            _, item, level = top
            kind = _container_type(item)
            if kind is None:
                text = scalar(item, width)
                out.append(text)
                size += len(text)
                continue
            opener = _OPEN[kind]
            if level >= depth:
                text = f"{opener}...{_CLOSE[opener]}" if len(item) else f"{opener}{_CLOSE[opener]}"
                out.append(text)
                size += len(text)
                continue
            out.append(opener)
            size += 1
            items = iter(item.items()) if kind is dict else iter(item)
            stack.append([items, _CLOSE[opener], level + 1, kind is dict, True])
            continue
        items, closer, level, is_mapping, first = top
        try:
            item = next(items)
        except StopIteration:
            stack.pop()
            out.append(closer)
            size += 1
            continue
        if not first:
            out.append(", ")
            size += 2
        top[4] = False
        if is_mapping:
            key, item = item
            stack.append(("value", item, level))
            stack.append(": ")
            stack.append(("value", key, level))
        else:
            stack.append(("value", item, level))
    text = "".join(out)
    if stack or len(text) > width:
        return text[: max(width - 3, 0)] + "..."
    return text
