"""A run's records checked as columns: the JSONL parsed by Arrow, and the validity rule of
``harness.store.record.problems`` applied to each column as a whole.

The loader checks a records file line by line (``harness.store.loader.accept``): right for the lines it refuses,
whose skips name the line and what is wrong with it, and slow for a store of many runs whose lines are nearly all
valid (500 records: ~40 ms, most of a store's first read). ``checked_table(data)`` is the fast way for those runs:
it parses the text with ``pyarrow.json`` into typed columns (each declared field in its declared type, so a value
of another type stops the parse), checks what the types do not (values present, finite, in range, of the current
schema version), and gives the records table the loader's records would make (``harness.store.index
.records_table``, same columns, same types, same values), or None. None means only "not vouched for here": the
run is then read by the loader line by line, which finds what is wrong and says it the way it always has. So a
record that the rule refuses is never in a table made here, and a run that holds one is skipped and listed
exactly as before.

It vouches only for what it can tell apart in Arrow, and leaves the rest to the loader (None):

- every non-blank line must be one JSON object (``{`` ... ``}``) and parse to one row; integers of 19 digits or
  more (beyond int64), a repeated key, text that is not UTF-8 and anything else Arrow cannot parse (or reads
  otherwise than ``json``) send the run to the loader;
- every number read as a float must be finite, in the nested groups too: ``NaN`` and the infinities (which Arrow
  and Python's ``json`` spell differently) are left to the loader;
- every record must be of the current schema version (an older one is migrated by the loader);
- a field that must not be null (``rank``, ``world_size``, ``tags``, ``noise``, ``status``, ``schema_version``)
  must have a value on every line: Arrow reads a missing field and a null alike, and the rule does not;
- no field the schema does not declare, at the top or in a nested group (the loader's column order for those
  depends on which line has them first, which a column does not keep), no ``accuracy`` object (written as JSON
  text by the loader), and in the nested groups only numbers, strings, booleans, nulls and flat lists of those
  (no object, and no string Arrow takes for a time stamp).

Records written by ``harness run`` (but for a case's accuracy result) and by the importers meet all of these.
Without pyarrow, every run is read by the loader.
"""

from __future__ import annotations

from typing import Any

from harness.store.record import _RULES, _TEMPLATE, GROUPS, RECORD_FIELDS, REQUIRED, SCHEMA_VERSION, STATUSES

#: Declared type (in the words of ``harness.store.record``) -> the Arrow type the records table gives it.
_TYPES = {
    "an integer": "int64",
    "a finite number": "float64",
    "a string": "string",
    "true or false": "bool_",
    "a list of finite numbers": "list<float64>",
    "a list of strings": "list<string>",
}
#: Fields written as JSON text by the loader's table (``dict`` fields other than the nested groups).
_TEXT = tuple(n for n, (_, words, _) in _RULES.items() if words == "an object" and n not in GROUPS)
#: Each digit as "0", a point as itself, anything else as a space: then nineteen digits in a row that do not follow
#: a point (an integer that may not fit int64, which Arrow reads as a float and the loader as an integer) are found
#: as a space and nineteen zeros. (A float's fraction may be as long, after its point; its integer part never is.)
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else i if i == 0x2E else 0x20 for i in range(256))
_LONG_DIGITS = b" " + b"0" * 19
_schema = None


def _arrow_type(words: str):
    import pyarrow as pa

    kind = _TYPES[words]
    if kind.startswith("list<"):
        return pa.list_(getattr(pa, kind[5:-1])())
    return getattr(pa, kind)()


def schema():
    """The Arrow schema the parse is told: every declared field but the nested groups and the JSON-text fields,
    in its declared type."""
    global _schema
    if _schema is None:
        import pyarrow as pa

        _schema = pa.schema(
            [
                (name, _arrow_type(words))
                for name, (_, words, _) in _RULES.items()
                if name not in GROUPS and name not in _TEXT
            ]
        )
    return _schema


def count_lines(data: bytes) -> int | None:
    """How many records ``data`` holds if every line that is not blank (as the loader sees it) is one JSON object
    with nothing but JSON white space around it; None when a line may be something else."""
    n = 0
    for line in data.split(b"\n"):
        if line[:1] == b"{" and line[-1:] == b"}":
            n += 1
            continue
        bare = line.strip()
        if not bare:
            if line.strip(b" \t\r"):
                return None  # blank to the loader, maybe not to Arrow
            continue
        if bare != line.strip(b" \t\r") or bare[:1] != b"{" or bare[-1:] != b"}":
            return None
        n += 1
    return n


def checked_table(data: bytes):
    """The records table of ``data`` (the text of a run's records files, joined by newlines) when every line is a
    valid record that the check can vouch for (see the module docstring); None otherwise, and when pyarrow is not
    installed."""
    try:
        import pyarrow as pa
        import pyarrow.json as pj
    except ImportError:
        return None
    if _LONG_DIGITS in data.translate(_DIGITS):
        return None
    if not data.isascii():
        try:
            data.decode("utf-8")  # Arrow takes text that is not UTF-8 into its strings; the loader skips the line
        except UnicodeDecodeError:
            return None
    lines = count_lines(data)
    if not lines:
        return None  # nothing to gain
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 20)),
            parse_options=pj.ParseOptions(explicit_schema=schema(), unexpected_field_behavior="infer"),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != lines:
        return None
    return _vouched(table)


def _vouched(table):
    """The records table of the parsed ``table`` when its columns keep the rule; None when one may not."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    known = set(schema().names)
    for name in table.column_names:
        if name in known:
            continue
        kind = table.schema.field(name).type
        if name in _TEXT and pa.types.is_null(kind):
            continue
        if name in GROUPS and (pa.types.is_null(kind) or _plain_group(name, kind)):
            continue
        return None  # an undeclared field, an object to write as text, a group of other values
    columns = {}
    for name, (_, words, nullable) in _RULES.items():
        if name in GROUPS or name in _TEXT:
            continue
        column = table.column(name).combine_chunks()
        if column.null_count and (not nullable or name in REQUIRED):
            return None
        if words == "a finite number" and not _all_true(pc.is_finite(column)):
            return None
        if words == "a list of finite numbers":
            values = pc.list_flatten(column)
            if values.null_count or not _all_true(pc.is_finite(values)):
                return None
        if words == "a list of strings" and pc.list_flatten(column).null_count:
            return None
        columns[name] = column
    # Reductions, held against Python values: a Python value made an Arrow one would load pandas (~0.5 s)
    if _range(columns["schema_version"]) != (SCHEMA_VERSION, SCHEMA_VERSION):
        return None  # an older record is migrated by the loader, a newer one refused by it
    if not set(pc.unique(columns["status"]).to_pylist()) <= set(STATUSES):
        return None
    if _range(pc.utf8_length(columns["case_id"]))[0] == 0 or _range(pc.utf8_length(columns["model"]))[0] == 0:
        return None
    if _range(columns["rank"])[0] < 0 or _range(columns["world_size"])[0] < 1:
        return None
    out = {}
    for name in RECORD_FIELDS:
        if name in GROUPS:
            continue
        out[name] = columns[name] if name in columns else pa.nulls(n, pa.string())
    for group in GROUPS:
        fields = {}
        if group in table.column_names and pa.types.is_struct(table.schema.field(group).type):
            struct = table.column(group).combine_chunks()
            fields = dict(zip([f.name for f in struct.type], struct.flatten(), strict=True))
        for key in _TEMPLATE[group]:
            out[f"{group}.{key}"] = fields.get(key, pa.nulls(n))
            values = out[f"{group}.{key}"]
            if pa.types.is_list(values.type):
                values = pc.list_flatten(values)
            if pa.types.is_floating(values.type) and not _all_true(pc.is_finite(values)):
                return None  # NaN and Infinity, which the loader reads (as Arrow does), or Inf, which it does not
    return pa.table(out)


_PLAIN = ("is_null", "is_boolean", "is_int64", "is_float64", "is_string")


def _plain(kind) -> bool:
    import pyarrow as pa

    return any(getattr(pa.types, test)(kind) for test in _PLAIN)


def _plain_group(group: str, kind) -> bool:
    """True when a nested group's Arrow type holds only the group's declared keys, each of plain values (or a flat
    list of them): what the loader's table types the same way."""
    import pyarrow as pa

    if not pa.types.is_struct(kind):
        return False
    for field in kind:
        if field.name not in _TEMPLATE[group]:
            return False
        value = field.type
        if pa.types.is_list(value):
            value = value.value_type
        if not _plain(value):
            return False
    return True


def _all_true(mask: Any) -> bool:
    """True when no value of the boolean ``mask`` is false (nulls are not values: fields may be null)."""
    import pyarrow.compute as pc

    return not pc.any(pc.invert(mask)).as_py()


def _range(column: Any) -> tuple[Any, Any]:
    """The least and the greatest value of a column that holds no null (checked before)."""
    import pyarrow.compute as pc

    both = pc.min_max(column)
    return both["min"].as_py(), both["max"].as_py()
