"""Pydantic's validation errors rewritten for people editing a YAML file.

Each error becomes one sentence that names the bad value and what would be valid: the choices for a name
(with the closest one, ``did you mean resnet50?``), the bound for a number, the valid keys for an unknown key.
YAML surprises get a hint: ``"64"`` quoted is text, ``yes`` is a boolean, ``1e-3`` is text in YAML 1.1.
"""

from __future__ import annotations

import re
from typing import Any

from harness.errors import did_you_mean
from harness.suite.bounds import MAX_BATCH_SIZE_WHY, MAX_RESOLUTION_WHY, MAX_WORLD_SIZE
from harness.suite.brief import brief
from harness.suite.schema import CHOICES, field_names, value_range
from harness.zoo.catalog import MIN_RESOLUTION

_TAG_PART = re.compile(r"^[a-z-]+\[.*\]$")  # pydantic's union/validator location parts, not the user's keys


def show(value: Any) -> str:
    """A value as the user wrote it in YAML (true, null, 'text', 64, .inf), shortened to 60 characters. Bounded
    and non-recursive (``harness.suite.brief``): an aliased value of millions of items costs no more than a
    short one."""
    return brief(value)


def _near(value: str, choices: Any) -> str:
    # difflib's cost grows with the text; no valid choice is longer than 100 characters
    return did_you_mean(value[:100], choices)


def clean_loc(loc: tuple) -> tuple:
    """The error location without pydantic's internal parts, as a path of keys and list indexes."""
    return tuple(p for p in loc if not (isinstance(p, str) and _TAG_PART.match(p)))


def _kind(value: Any) -> str:
    kinds = {bool: "boolean", str: "text", int: "integer", float: "number", list: "list", dict: "mapping"}
    return kinds.get(type(value), "an empty value" if value is None else type(value).__name__)


def _hint(value: Any, want: str) -> str:
    if isinstance(value, bool) and want in ("integer", "number"):
        return "; YAML reads true/false/yes/no as booleans"
    if isinstance(value, str) and want in ("integer", "number"):
        try:
            float(value)
        except ValueError:
            return ""
        if re.fullmatch(r"[+-]?\d+[eE][+-]?\d+", value.strip()):
            fixed = re.sub(r"^([+-]?\d+)", r"\1.0", value.strip())
            return f"; YAML reads an exponent without a dot as text: write {fixed} or {float(value):g}"
        if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)[eE]\d+", value.strip()):
            fixed = re.sub(r"[eE]", "e+", value.strip())
            return f"; YAML reads an exponent without a sign as text: write {fixed} or {float(value):g}"
        return "; it is quoted, so YAML reads it as text: remove the quotes"
    if isinstance(value, str) and want == "true or false" and value.lower() in ("true", "false"):
        return "; it is quoted, so YAML reads it as text: remove the quotes"
    return ""


def _choice(name: str, value: Any) -> str:
    choices = CHOICES.get(name, ())
    label = name.replace("_", " ")
    if not isinstance(value, str):
        return f"expected a {label} name, got {show(value)} ({_kind(value)}); valid choices: {', '.join(choices)}"
    return f"unknown {label} {show(value)}{_near(value, choices)}; valid choices: {', '.join(choices)}"


def describe(error: dict) -> tuple[tuple, str, bool]:
    """One pydantic error as (key path, message, whether the message is about the key rather than the value)."""
    loc = clean_loc(error["loc"])
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    name = next((p for p in reversed(loc) if isinstance(p, str)), "")
    got = f"got {show(value)}"

    if kind == "extra_forbidden":
        valid = field_names(loc[:-1]) or []
        return loc, f"unknown key{_near(str(name), valid)}; valid keys: {', '.join(valid)}", True
    if kind == "invalid_key":
        return loc, f"keys must be text, got {show(loc[-1] if loc else value)}", True
    if kind == "missing":
        return loc, f"required key {name!r} is missing", False
    if kind == "literal_error" or kind == "device":
        return loc, _choice(name, value), False
    simple = {
        "int_type": "integer",
        "int_from_float": "integer",
        "int_parsing": "integer",
        "float_type": "number",
        "float_parsing": "number",
        "bool_type": "true or false",
        "bool_parsing": "true or false",
        "string_type": "text",
        "list_type": "list",
        "dict_type": "mapping",
        "model_type": "mapping",
        "model_attributes_type": "mapping",
    }
    if kind in simple:
        want = simple[kind]
        article = "" if want == "true or false" else ("an " if want[0] in "aei" else "a ")
        return loc, f"expected {article}{want}, {got} ({_kind(value)}{_hint(value, want)})", False
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)  # the bound as the docs write it: 604800, not 604800.0
        extra = ""
        if name == "resolution" and kind == "greater_than_equal":
            extra = f" (the smallest input every model accepts is {MIN_RESOLUTION}x{MIN_RESOLUTION})"
        elif name == "resolution" and kind == "less_than_equal":
            extra = f" ({MAX_RESOLUTION_WHY})"
        elif name == "batch_size" and kind == "less_than_equal":
            extra = f" ({MAX_BATCH_SIZE_WHY})"
        elif name in ("timeout_s", "max_seconds", "min_seconds") and kind == "less_than_equal":
            extra = " (a week, the longest duration a suite may give)"
        return loc, f"must be {bounds[kind]} {limit}, {got}{extra}", False
    if kind == "finite_number":
        valid = value_range(loc)
        valid = f"a finite number {valid}" if valid else "a finite number"
        hint = "; for no limit write null" if name == "timeout_s" else ""
        return loc, f"must be {valid}, {got} (a run cannot use .inf or .nan, nor JSON hold them){hint}", False
    if kind == "too_short":
        return loc, "is empty; give at least one value", False
    if kind == "string_too_short":
        return loc, "must not be empty", False
    if kind == "string_pattern_mismatch" and name == "name":
        return loc, f"{got}; use letters, digits, '.', '_' and '-' only (it names the results folder)", False
    if kind == "nproc":
        return loc, f"expected a positive integer or auto, {got} (a count is at most {MAX_WORLD_SIZE})", False
    if kind == "baseline":
        return loc, f"{show(value)} is not a baseline; {error['msg']}", False
    if kind == "duplicates":
        return loc, f"{show(value)}: {error['msg']}", False
    return loc, error["msg"], False
