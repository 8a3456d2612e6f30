"""What the loader left out, and the one way every command reports it.

A ``Skip`` is one input that was not read: a line of a records file (corrupt, truncated, not a record, an invalid
record, a record of a newer schema), a run whose manifest cannot be read or is of a newer schema, a folder that
holds records but no manifest, or a path that holds no run. ``report``, ``compare`` and ``export`` read through
``harness.store.loader`` and print what it skipped with ``print_skips``: a count by kind, then one line per skip
(what, where, how to fix), on stderr. A command that completed but skipped some input exits with
``EXIT_SKIPPED`` (unless it has a more important code to give: bad input is 2, a regression under ``compare
--fail-on regression`` is 1).
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

#: Exit code of a command that did its work but left some input out (see the module docstring). 3 and 4 are
#: taken by examples/nightly.sh for its own failures, and it exits with compare's code, so this is 5.
EXIT_SKIPPED = 5

#: How many skips ``print_skips`` lists one by one before it only counts the rest.
SHOWN = 20


@dataclass(frozen=True)
class Skip:
    """One input left out: ``where`` (a file, ``file:line`` or folder), ``kind`` (a short name, counted in the
    summary) and ``message`` (what is wrong and how to fix it)."""

    where: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def note(skips: list[Skip] | None, skip: Skip, *, warn: bool = True) -> Skip:
    """Add ``skip`` to ``skips`` and, for scripts and notebooks that call the loader, warn with it."""
    if skips is not None:
        skips.append(skip)
    if warn:
        warnings.warn(str(skip), stacklevel=3)
    return skip


def summary(skips: Iterable[Skip]) -> str:
    """``skipped N input(s): 2 invalid record, 1 unreadable manifest`` (kinds by count, then by name)."""
    counts = Counter(s.kind for s in skips)
    total = sum(counts.values())
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"skipped {total} input(s): {kinds}"


def format_skips(skips: Iterable[Skip], limit: int = SHOWN) -> list[str]:
    """The lines every command prints for what was skipped: the summary, then each skip (up to ``limit``)."""
    skips = list(dict.fromkeys(skips))
    if not skips:
        return []
    lines = [summary(skips)]
    lines += [f"  {skip}" for skip in skips[:limit]]
    if len(skips) > limit:
        lines.append(f"  ... and {len(skips) - limit} more")
    return lines


def print_skips(command: str, skips: Iterable[Skip], file: TextIO | None = None) -> int:
    """Print ``format_skips`` on stderr, the first line prefixed ``harness COMMAND:``; returns how many inputs were
    skipped."""
    skips = list(dict.fromkeys(skips))
    out = file or sys.stderr
    for number, line in enumerate(format_skips(skips)):
        print(f"harness {command}: {line}" if number == 0 else line, file=out)
    return len(skips)


def exit_code(skips: Iterable[Skip], code: int = 0) -> int:
    """``code`` when it already says something (non-zero), else ``EXIT_SKIPPED`` when anything was skipped."""
    return code or (EXIT_SKIPPED if any(True for _ in skips) else 0)
