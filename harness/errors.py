"""The harness's exceptions. Every message names the bad value, where it came from, and how to fix it.

The CLI prints a ``HarnessError`` as one message and exits with ``exit_code`` (2 for bad input), never with a
traceback. Failures while measuring a case are not exceptions: they become records with a status.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``value``, or None when nothing is close (for "did you mean ...?")."""
    matches = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """A " (did you mean X?)" suffix, or an empty string when no choice is close."""
    match = closest(value, choices)
    return f" (did you mean {match}?)" if match else ""


class HarnessError(Exception):
    """Bad input or an unusable environment; the message says what, where and how to fix it."""

    exit_code = 2


def run_reporting(who: str, fn, *args) -> int:
    """``fn(*args)`` as an exit code: a HarnessError is printed as one line ``WHO: error: MESSAGE`` on stderr and
    exits with its code, Ctrl-C with 130; no traceback either way."""
    import sys

    try:
        return int(fn(*args) or 0)
    except HarnessError as exc:
        print(f"{who}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{who}: interrupted", file=sys.stderr)
        return 130


class UnknownModelError(HarnessError, KeyError):
    """A model name that is not in the zoo."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        valid = list(valid)
        self.name = name
        super().__init__(f"unknown model {name!r}{did_you_mean(name, valid)}; valid models: {', '.join(valid)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class WeightsError(HarnessError):
    """A weights file that is missing, has the wrong hash, or belongs to another architecture."""


class SuiteError(HarnessError):
    """A suite file that cannot be read or does not validate."""


class StoreError(HarnessError):
    """A results folder or file that cannot be read or written."""


class LaunchError(HarnessError):
    """A launch that cannot start: bad world size, unreachable rendezvous, missing devices."""


class RunStopped(LaunchError):
    """This process cannot go on measuring (its device is lost, or its records file cannot be written): the case
    in hand is recorded, and the remaining cases need a fresh process (``harness run --resume``, or the elastic
    agent's restart)."""
