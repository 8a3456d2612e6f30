"""The store's JSON reading (``harness.store.jsontext.loads``) against ``json.loads``: the same value for every text
(orjson's fast path where it reads the same, ``json`` for the texts it reads otherwise), and the same error, message
and all, for a text that is not JSON; with orjson absent, ``json`` alone. And the reading of a records file through
it: the same values and skips as ``json`` gives."""

from __future__ import annotations

import gc
import json
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.store import jsontext
from harness.store.jsontext import loads, paused_gc
from harness.store.rundir import read_values


def outcome(read, data: bytes):
    """What ``read(data)`` gives: ("value", repr) or ("error", type name, message)."""
    try:
        value = read(data)
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("value", repr(value))


def plain(data: bytes):
    return json.loads(data.decode("utf-8"))


#: Texts orjson reads otherwise than ``json`` (or refuses where ``json`` reads them), texts neither reads, and
#: ordinary ones.
TEXTS = [
    b'{"a": NaN, "b": Infinity, "c": -Infinity}',
    b'{"a": 1e400, "b": -1e400}',
    b'{"a": "\\ud800", "b": "\\udfff x"}',
    b'{"a": 123456789012345678901234567890}',
    b'{"a": -9223372036854775809, "b": 18446744073709551616}',
    b'{"a": 9223372036854775807, "b": 999999999999999999}',
    b'{"a": 0.12345678901234567890123}',
    b'{"a": 1, "a": 2}',
    b'{"a": "\\u0000harness"}',
    b'{"a": [1, 2.5, -0.0, 1E5, 2e-400]}',
    b'  {"a": 1}\r',
    b"\xef\xbb\xbf{}",
    b'{"a": "x\x01y"}',
    b'{"a": 1,}',
    b'{"a": 1} {"b": 2}',
    b'{"a": "\xff"}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a": tru',
    b"",
    b"nan",
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_loads_reads_every_text_as_json_does(text):
    assert outcome(loads, text) == outcome(plain, text)


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_loads_without_orjson_is_json(monkeypatch, text):
    monkeypatch.setattr(jsontext, "_orjson", None)
    assert outcome(loads, text) == outcome(plain, text)


def test_orjson_is_what_reads_an_ordinary_line():
    """The fast path is taken (orjson is a dependency): an ordinary record line does not reach ``json``."""
    pytest.importorskip("orjson")
    calls = []
    real = json.loads
    try:
        json.loads = lambda *a, **k: calls.append(a) or real(*a, **k)
        assert jsontext.loads(b'{"samples_ms": [1.5, 2.25], "status": "ok"}') == {
            "samples_ms": [1.5, 2.25],
            "status": "ok",
        }
        assert jsontext.loads(b'{"a": NaN}')["a"] != 0  # and json reads what orjson refuses
    finally:
        json.loads = real
    assert len(calls) == 1


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_loads_matches_json_on_any_value(value):
    text = json.dumps(value).encode()  # NaN and Infinity written as json writes them
    assert outcome(loads, text) == outcome(plain, text)


@settings(max_examples=400, deadline=None)
@given(json_values, st.data())
def test_loads_matches_json_on_broken_text(value, data):
    """A valid text cut, or with one byte changed: the same value or the same error."""
    text = bytearray(json.dumps(value, ensure_ascii=data.draw(st.booleans())).encode())
    if text and data.draw(st.booleans()):
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    elif text:
        text[data.draw(st.integers(0, len(text) - 1))] = data.draw(st.integers(0, 255))
    assert outcome(loads, bytes(text)) == outcome(plain, bytes(text))


def test_records_file_reads_the_same_with_and_without_orjson(tmp_path, monkeypatch):
    lines = [
        json.dumps({"case_id": "a", "samples_ms": [1.0, 2.0], "n": 10**20}),
        '{"case_id": "b", "x": NaN}',
        "not json",
        "",
        '{"case_id": "c", "s": "\\ud800"}',
        '{"case_id": "d"',  # cut short: the last line
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines))

    def read():
        skips = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = read_values(path, skips)
        return repr(values), [(s.where, s.kind, s.message) for s in skips]

    fast = read()
    monkeypatch.setattr(jsontext, "_orjson", None)
    assert fast == read()
    values, skips = fast
    assert [kind for _, kind, _ in skips] == ["corrupt line", "truncated line"]
    assert "100000000000000000000" in values and "nan" in values


def test_paused_gc_nests_restores_and_freezes_what_was_read():
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with paused_gc():
            assert not gc.isenabled()
            with paused_gc():
                assert not gc.isenabled()
                read = [{"samples_ms": [1.0, 2.0]} for _ in range(1000)]
            assert not gc.isenabled() and gc.get_freeze_count() == frozen  # the inner block neither resumes nor freezes
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + 1000  # out of the collector's later walks
        assert len(read) == 1000
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
    with pytest.raises(KeyError), paused_gc():
        raise KeyError("x")
    assert gc.isenabled()
