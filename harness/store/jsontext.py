"""JSON text read as the standard library's ``json.loads`` reads it, sooner.

The store's readers parse every line of every records file they read, and a manifest per run: on a fleet store,
``harness compare --history 30`` parses 15,000 records, and most of its time went there. Two things make it
faster, neither changing what is read:

- ``loads``: orjson (a dependency; the harness reads without it, slower) parses a line several times faster than
  ``json``. It reads a few texts otherwise, and those go to ``json``: the tokens ``NaN`` and ``Infinity`` and
  numbers beyond a float (``1e400``), lone surrogate escapes (orjson refuses them: ``json`` reads them), and
  integers of 19 digits or more (orjson reads them as floats: ``json`` as exact ints; such a line is found by a
  run of 19 digits anywhere in it, before parsing). So every text gives the value ``json.loads`` gives, and a text
  that is not JSON gives ``json``'s own error (a ``ValueError`` or a ``RecursionError``), message and all.
- ``paused_gc``: the cyclic garbage collector runs again and again while many small objects are made, each time
  walking every object made so far; records hold no cycles, so it is paused while they are read (a third of the
  parsing time of a history of 30 runs).
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the dependency is installed with the harness; read without it, slower
    _orjson = None

#: Every digit made a ``0``, so a run of 19 digits (an integer orjson would read as a float) is one ``in`` away.
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG = b"0" * 19


def loads(data: bytes) -> Any:
    """``json.loads(data.decode("utf-8"))``: the same value, or the same error (see the module docstring)."""
    if _orjson is not None and _LONG not in data.translate(_DIGITS):
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass  # json reads it (NaN, lone surrogates, 1e400) or says why it is not JSON
    return json.loads(data.decode("utf-8"))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector paused for the block (and left as it was found: paused blocks may nest)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
