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
  walking every object made so far, and then again whenever the command makes more (its comparison, its output).
  Records hold no cycles, so the collector is paused while they are read, and what was read is then left out of
  its later walks (``gc.freeze``: it is still freed as usual when no longer used). On a history of 30 runs of 500
  records, that is a third of the reading time and a tenth of the command's.
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
    """The cyclic garbage collector paused for the block; then what the process holds is left out of its later
    walks (``gc.freeze``), and it runs again. A block inside another is part of it: only the outer one freezes
    and resumes, and a collector found paused is left paused (and nothing frozen).

    Only for blocks that make data without cycles: cyclic garbage frozen is never collected (anything else is
    freed by its reference count as always)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.enable()
