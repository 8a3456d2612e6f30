"""Hypothesis strategies and helpers for the fuzz tests: hostile suite files and corrupted result stores.

Suites are generated from the suite's own JSON Schema (``harness schema``), so every real key appears, at its
real place and at wrong places, with values of the right type, of wrong types, huge, non-finite, empty or in odd
unicode; YAML text adds aliases, alias bombs, merge keys, duplicate keys and broken syntax.

Stores are written with the store's own writers (``append_record``, ``write_json_atomic``, ``new_manifest``) and
``tests.synthetic.make_record``, then corrupted: bad lines of every JSON type, truncated lines, records with
wrong field types or a newer schema version, missing, truncated, wrongly typed and future-versioned manifests,
unreadable records files and unwritable outputs. Each generated store knows which of its records are valid, so a
test can check that exactly those are read back.

The commands are called in-process (``harness.cli.main``) for most examples, because a subprocess costs 0.3-1.5 s
of start-up, and in a subprocess with a time and memory bound (``RLIMIT_AS``) for a few heavy ones.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import resource
import signal
import subprocess
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

#: Exit codes a command may end with: 0 ok, 1 failure found (e.g. a regression), 2 bad input.
EXITS = {0, 1, 2}


def _skip_exit() -> int:
    """The exit code of a command that completed but skipped some of its input (a bad record, a bad run): the
    harness's own constant where it defines one, else 3."""
    try:
        from harness.store.skips import EXIT_SKIPPED
    except ImportError:
        return 3
    return int(EXIT_SKIPPED)


SKIP_EXIT = _skip_exit()
#: Wall-clock bound of one command in a subprocess, in seconds (a torch-free command starts in 0.3-1.5 s; the
#: margin is for a loaded CI machine).
TIME_BOUND_S = 30
#: Address-space limit of a command's subprocess (a runaway allocation ends as MemoryError, which is a failure).
MEMORY_BOUND = 2 * 2**30
#: Wall-clock bound of one in-process command, in seconds (a hang fails instead of stalling the whole test run).
INPROCESS_BOUND_S = 30
#: Every line a command prints about bad input stays readable: no megabyte reprs of the user's values.
MAX_LINE = 2000


def _permissions_bind() -> bool:
    """Whether a file without read permission is unreadable here: not for root (CAP_DAC_OVERRIDE), where the fuzz
    tests make files unreadable and folders unwritable by other means."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            probe.read_text()
        except PermissionError:
            return True
        finally:
            probe.chmod(0o600)
    return False


#: True where permissions do not stop this process (root): chmod cannot make a file unreadable or a folder read-only.
PERMISSIONS_IGNORED = not _permissions_bind()

#: How many examples each fuzz test ran (generation, explicit and shrinking phases), for the summary.
EXAMPLES: Counter[str] = Counter()


def fuzz_settings(max_examples: int, **extra: Any) -> settings:
    """Deterministic settings for CI: a fixed seed, no example database, no per-example deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        **extra,
    )


def count(name: str) -> None:
    EXAMPLES[name] += 1


class _Summary:
    """A plugin registered by the fuzz modules: prints the example counts and writes them to test-artifacts/."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not EXAMPLES:
            return
        terminalreporter.section("fuzz examples")
        for name, n in sorted(EXAMPLES.items()):
            terminalreporter.write_line(f"{name}: {n}")
        terminalreporter.write_line(f"total: {sum(EXAMPLES.values())}")
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            data = {"tests": dict(sorted(EXAMPLES.items())), "total": sum(EXAMPLES.values())}
            (ARTIFACTS / "fuzz-examples.json").write_text(json.dumps(data, indent=2) + "\n")
        except OSError:
            pass


def register_summary(config) -> None:
    if not config.pluginmanager.has_plugin("fuzz-summary"):
        config.pluginmanager.register(_Summary(), "fuzz-summary")


# --- running commands ---------------------------------------------------------------------------------------


class InProcessTimeout(BaseException):
    """Raised by SIGALRM in an in-process command that ran past its bound (a BaseException: no ``except
    Exception`` in the harness can swallow it)."""


@contextlib.contextmanager
def _alarm(seconds: float):
    if not hasattr(signal, "setitimer"):
        yield
        return

    def fire(signum, frame):
        raise InProcessTimeout(f"ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def cli(*argv: str, bound: float = INPROCESS_BOUND_S) -> tuple[int, str, str]:
    """``harness ARGV`` in this process: (exit code, stdout, stderr). An exception the CLI does not turn into an
    exit code propagates: that is the in-process form of a traceback."""
    from harness.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("always")
        try:
            with _alarm(bound):
                code = main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except InProcessTimeout:
            # An AssertionError, so that Hypothesis shrinks it and shows the example (a BaseException would not be).
            raise AssertionError(f"harness {' '.join(argv)} ran past {bound} s") from None
    return code, out.getvalue(), err.getvalue()


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BOUND, MEMORY_BOUND))


@dataclass
class Result:
    argv: tuple[str, ...]
    code: int | None
    stdout: str
    stderr: str
    timed_out: bool

    def problem(self, allowed: set[int]) -> str | None:
        """Why this run breaks the property (within time, allowed exit, no traceback, bounded memory), or None."""
        if self.timed_out:
            return f"ran past {TIME_BOUND_S} s"
        if "Traceback (most recent call last)" in self.stderr:
            return "traceback:\n" + self.stderr[-3000:]
        if "MemoryError" in self.stderr:
            return "MemoryError (past the memory bound):\n" + self.stderr[-1500:]
        if self.code is None or self.code < 0:
            return f"killed by signal {-(self.code or 0)} (memory bound?)"
        if self.code not in allowed:
            return f"exit {self.code}, expected one of {sorted(allowed)}:\n{self.stderr[-1500:]}"
        return None


def subprocess_cli(*argv: str, cwd: Path | None = None, timeout: float = TIME_BOUND_S) -> Result:
    """``python -m harness ARGV`` under the time and memory bounds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": ""}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "harness", *argv],
            cwd=cwd or ROOT,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired as exc:

        def text(b):
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

        return Result(tuple(argv), None, text(exc.stdout), text(exc.stderr), True)
    return Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr, False)


def long_lines(text: str) -> list[str]:
    return [line[:200] + "..." for line in text.splitlines() if len(line) > MAX_LINE]


# --- suites ---------------------------------------------------------------------------------------------------


def suite_schema() -> dict:
    from harness.suite.schema import json_schema

    return json_schema()


def all_keys(schema: dict) -> list[str]:
    """Every key the suite format knows, at any level (for putting real keys in the wrong places)."""
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name in (node.get("properties") or {}) if isinstance(node.get("properties"), dict) else ():
                keys.add(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return sorted(keys)


ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "~",
        "null",
        "yes",
        "off",
        "64",
        "1e3",
        "0x40",
        "-.inf",
        ".nan",
        "*x",
        "&x",
        "{a: 1}",
        "[1, 2]",
        "!!python/object:os.system",
        "\u202eevil",
        "\ufeffbom",
        "e\u0301",
        "\ufb01",
        "\U0001f99c",
        "a\u200bb",
        "\x00",
        "\x1b[31m",
        "\u2028",
        "名前",
        "../../etc/passwd",
        "resnet18\u200b",
        "RESNET18",
        "Ω" * 500,
        "x" * 5000,
    ]
)
HUGE = st.sampled_from(
    [
        10**30,
        -(10**30),
        2**63,
        2**64,
        -(2**63) - 1,
        10**100,
        1e300,
        -1e300,
        1e-300,
        5e-324,
        float("inf"),
        float("-inf"),
        float("nan"),
        -0.0,
        0,
        -1,
        2**31,
        100_000,
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    HUGE,
    st.integers(),
    st.floats(),
    ODD_TEXT,
    st.text(max_size=12),
)


def hostile(keys: list[str]) -> st.SearchStrategy:
    """Any value of a wrong shape: scalars of every type, huge and non-finite numbers, odd text, and small lists
    and mappings of them (with real keys, odd keys and non-text keys)."""
    key = st.one_of(st.sampled_from(keys), st.text(max_size=8), st.integers(), st.none(), st.booleans())
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(key, inner, max_size=3)),
        max_leaves=6,
    )


#: Numbers of the right type and sign whose size a validator may forget to bound.
EDGE_INTS = st.sampled_from([100_000, 2**31, 2**63, 10**23, 10**30])
EDGE_FLOATS = st.sampled_from([float("inf"), 1e300, 1e308, 5e-324])


def _bounded_int(node: dict) -> st.SearchStrategy:
    low = node.get("minimum", node.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in node else 0)
    high = node.get("maximum", low + 300)
    bounded = st.integers(min_value=int(low), max_value=int(max(low, high)))
    return bounded if "maximum" in node else st.one_of(bounded, bounded, bounded, EDGE_INTS)


def _bounded_float(node: dict) -> st.SearchStrategy:
    low = node.get("minimum", node.get("exclusiveMinimum", 0.0))
    high = node.get("maximum", node.get("exclusiveMaximum", low + 10.0))
    bounded = st.floats(
        min_value=float(low),
        max_value=float(high),
        exclude_min="exclusiveMinimum" in node,
        exclude_max="exclusiveMaximum" in node,
        allow_nan=False,
    )
    has_max = "maximum" in node or "exclusiveMaximum" in node
    return bounded if has_max else st.one_of(bounded, bounded, bounded, EDGE_FLOATS)


def _string(node: dict) -> st.SearchStrategy:
    pattern = node.get("pattern")
    if pattern and "cuda" in pattern:
        return st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "cuda:1"])
    if pattern:
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= 20)
    return st.text(min_size=node.get("minLength", 0), max_size=10)


def from_schema(node: dict, defs: dict, bad: st.SearchStrategy | None, depth: int = 0) -> st.SearchStrategy:
    """Values for schema ``node``: of the right type (``bad`` is None), or, where ``bad`` is given, either of
    the right type or ``bad`` at each key, with an unknown key now and then."""

    def mix(good: st.SearchStrategy) -> st.SearchStrategy:
        return good if bad is None else st.one_of(good, good, good, bad)  # a hostile value at one key in four

    if "$ref" in node:
        return from_schema(defs[node["$ref"].rsplit("/", 1)[1]], defs, bad, depth)
    if "anyOf" in node:
        return st.one_of([from_schema(option, defs, bad, depth) for option in node["anyOf"]])
    if "const" in node:
        return mix(st.just(node["const"]))
    if "enum" in node:
        return mix(st.sampled_from(node["enum"]))
    kind = node.get("type")
    if kind == "object":
        props = node.get("properties") or {}
        values = {name: from_schema(sub, defs, bad, depth + 1) for name, sub in props.items()}
        mapping = st.fixed_dictionaries({}, optional=values)
        if bad is not None:
            unknown = st.dictionaries(st.text(min_size=1, max_size=10), bad, max_size=1)
            mapping = st.builds(lambda a, b: {**a, **b}, mapping, unknown)
            return st.one_of(mapping, bad)
        return mapping
    if kind == "array":
        items = from_schema(node.get("items") or {}, defs, bad, depth + 1)
        return mix(st.lists(items, min_size=node.get("minItems", 0), max_size=2))
    if kind == "integer":
        return mix(_bounded_int(node))
    if kind == "number":
        return mix(_bounded_float(node))
    if kind == "boolean":
        return mix(st.booleans())
    if kind == "string":
        return mix(_string(node))
    if kind == "null":
        return mix(st.none())
    return bad if bad is not None else SCALARS


def _with_core(data: Any, models: list[str]) -> Any:
    """A generated suite with a matrix that names a model and a batch size, so that many suites validate."""
    if isinstance(data, dict):
        matrix = data.get("matrix")
        if not isinstance(matrix, dict):
            matrix = {}
        matrix.setdefault("model", models[0])
        matrix.setdefault("batch_size", 2)
        data["matrix"] = matrix
        data.pop("accuracy", None)
    return data


@functools.cache
def suite_data() -> st.SearchStrategy:
    """Suite mappings: well-typed ones (which often validate), ones with hostile values at any key, and
    documents that are not mappings at all."""
    schema = suite_schema()
    defs = schema.get("$defs", {})
    keys = all_keys(schema)
    models = ["resnet18"]
    with contextlib.suppress(Exception):
        models = list(schema["$defs"]["DefaultsSpec"]["properties"]["model"]["enum"]) or models
    bad = hostile(keys)
    typed = from_schema(schema, defs, None).map(lambda d: _with_core(d, models))
    mixed = from_schema(schema, defs, bad)
    return st.sampled_from(["typed", "typed", "typed", "mixed_core", "mixed_core", "mixed", "bad"]).flatmap(
        lambda kind: {"typed": typed, "mixed_core": mixed.map(lambda d: _with_core(d, models)), "mixed": mixed}.get(
            kind, bad
        )
    )


def dump_yaml(data: Any, flow: bool | None, unicode: bool) -> str:
    return yaml.safe_dump(data, allow_unicode=unicode, sort_keys=False, default_flow_style=flow, width=100)


@st.composite
def suite_text(draw) -> str:
    """YAML text of a generated suite, sometimes mangled at the text level."""
    data = draw(suite_data())
    text = dump_yaml(data, draw(st.sampled_from([False, None, True])), draw(st.booleans()))
    mangle = draw(st.sampled_from(["none"] * 6 + ["truncate", "duplicate", "two_docs", "tabs", "bom", "junk"]))
    if mangle == "truncate" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif mangle == "duplicate" and isinstance(data, dict) and data and draw(st.booleans()):
        text += text.splitlines()[0] + "\n"
    elif mangle == "two_docs":
        text += "---\nname: second\n"
    elif mangle == "tabs":
        text = text.replace("  ", "\t", 1)
    elif mangle == "bom":
        text = "\ufeff" + text
    elif mangle == "junk":
        text += draw(st.sampled_from(["]", "}", ": :", "- - -\n  x", "*undefined", "!!binary ==", "? [a]: b", "%TAG"]))
    return text


def bomb(depth: int, width: int, leaf: str = "lol", mapping: bool = False, prefix: str = "b") -> str:
    """A "billion laughs" YAML flow value: ``width ** depth`` leaves written in about ``depth * width`` aliases."""
    if mapping:
        expr = f"&{prefix}0 " + "{" + ", ".join(f"k{i}: {leaf}" for i in range(width)) + "}"
        for k in range(1, depth):
            parts = [f"k0: {expr}"] + [f"k{i}: *{prefix}{k - 1}" for i in range(1, width)]
            expr = f"&{prefix}{k} " + "{" + ", ".join(parts) + "}"
        return expr
    expr = f"&{prefix}0 [" + ", ".join([leaf] * width) + "]"
    for k in range(1, depth):
        expr = f"&{prefix}{k} [" + ", ".join([expr] + [f"*{prefix}{k - 1}"] * (width - 1)) + "]"
    return expr


BASE = "matrix: {model: resnet18, batch_size: 2}\n"
#: Where an alias bomb can sit: (template with {v} for the value, leaf that fits the key's type).
BOMB_HOSTS = [
    ("bomb: {v}\n" + BASE, "lol"),
    ("matrix: {model: resnet18, batch_size: {v}}\n", "1"),
    ("matrix: {model: {v}, batch_size: 2}\n", "resnet18"),
    ("tags: {v}\n" + BASE, "t"),
    ("description: {v}\n" + BASE, "d"),
    ("defaults: {warmup: {v}}\n" + BASE, "1"),
    ("include: {v}\n" + BASE, "resnet18"),
    ("exclude: [{batch_size: {v}}]\n" + BASE, "2"),
    ("launch: {strategy: ddp, world_sizes: {v}}\n" + BASE, "1"),
    ("profile: {cases: {v}}\n" + BASE, "x"),
    ("{v}\n", "x"),
]

#: Small alias and merge-key documents: valid sharing, recursion, undefined aliases, merges of the wrong type.
ALIAS_DOCS = [
    "defaults: &d {model: resnet18, batch_size: 2}\ninclude: [*d, *d]\n",
    "defaults: &d {model: resnet18, batch_size: 2}\ninclude:\n  - <<: *d\n    resolution: 64\n",
    "x: &d {model: resnet18, batch_size: 2}\ninclude: [{<<: *d}]\n",
    "tags: &t [*t]\n" + BASE,
    "matrix: &m {model: *m, batch_size: 2}\n",
    "defaults: &m {model: resnet18, batch_size: 2, warmup: *m}\n",
    "defaults: {model: resnet18, batch_size: 2, warmup: &w {min_iters: 1}, measure: *w}\n",
    "include: [&i {model: resnet18, batch_size: 2}, *i]\n",
    "matrix: {model: resnet18, batch_size: &b [1, 2], resolution: *b}\n",
    "matrix: {model: resnet18, batch_size: *nope}\n",
    "matrix: {<<: [*a], model: resnet18}\n",
    "a: &a [1]\nmatrix: {<<: *a, model: resnet18, batch_size: 2}\n",
    "&top {matrix: {model: resnet18, batch_size: 2}, include: [*top]}\n",
    "matrix: {model: resnet18, batch_size: 2}\nexclude: &e [{batch_size: 2}, *e]\n",
]


@st.composite
def any_suite(draw) -> str | bytes:
    """A suite file for the in-process test: generated YAML mostly, alias documents, raw bytes, edge cases."""
    kind = draw(st.sampled_from(["text"] * 6 + ["alias", "alias", "bytes", "special"]))
    if kind == "text":
        return draw(suite_text())
    if kind == "alias":
        return draw(small_alias_suite())
    if kind == "bytes":
        return draw(
            st.one_of(st.binary(max_size=40), st.binary(max_size=8).map(lambda b: b"\xff\xfe" + b + BASE.encode()))
        )
    return draw(st.sampled_from(["", "~\n", "---\n", "[]\n", "{}\n", "matrix:\n", "matrix: {}\n", "\ufeff", "\x00"]))


@st.composite
def small_alias_suite(draw) -> str:
    """Alias documents small enough to run in-process: shared values, recursion, merges and tiny bombs."""
    if draw(st.booleans()):
        return draw(st.sampled_from(ALIAS_DOCS))
    template, leaf = draw(st.sampled_from(BOMB_HOSTS))
    depth = draw(st.integers(1, 3))
    width = draw(st.integers(1, 6))
    value = bomb(depth, width, leaf, mapping=draw(st.booleans()))
    return template.replace("{v}", value)


@st.composite
def heavy_suite(draw) -> str:
    """Suites that are cheap to write and costly to process carelessly: alias bombs (up to 9 levels of 9),
    matrices of millions of cases, and huge numbers; for the subprocess test under time and memory bounds."""
    kind = draw(st.sampled_from(["bomb", "wide", "huge"]))
    if kind == "bomb":
        template, leaf = draw(st.sampled_from(BOMB_HOSTS))
        value = bomb(draw(st.integers(5, 9)), draw(st.integers(6, 9)), leaf, mapping=draw(st.booleans()))
        return template.replace("{v}", value)
    if kind == "wide":
        return wide_matrix(draw(st.integers(50, 400)), draw(st.integers(50, 400)))
    key, value = draw(
        st.sampled_from(
            [
                ("batch_size", "100000000000000000000000"),
                ("batch_size", "1e300"),
                ("resolution", "100000"),
                ("resolution", "10000000000000000000000000000000"),
                ("seed", "1" + "0" * 400),
                ("timeout_s", ".inf"),
                ("timeout_s", ".nan"),
                ("measure", "{min_seconds: .inf}"),
                ("measure", "{max_iters: 100000000000000000000000000000}"),
                ("warmup", "{max_seconds: 1e308, window: 1000000000000000000000}"),
            ]
        )
    )
    return "defaults: {device: cpu, " + f"{key}: {value}" + "}\nmatrix: {model: resnet18, batch_size: [1, 2]}\n"


def wide_matrix(n: int, m: int) -> str:
    """A matrix of every model, mode, precision and flag, ``n`` batch sizes and ``m`` resolutions: 320 * n * m
    cases in a few kB."""
    sizes = ", ".join(str(1 + i) for i in range(n))
    sides = ", ".join(str(32 + i) for i in range(m))
    return (
        "defaults: {device: cpu}\n"
        f"matrix:\n  model: {json.dumps(_models())}\n  batch_size: [{sizes}]\n"
        f"  resolution: [{sides}]\n  precision: [fp32, tf32, amp_fp16, amp_bf16]\n"
        "  mode: [inference, train]\n  channels_last: [false, true]\n  compile: [false, true]\n"
        "include: [{model: resnet18, batch_size: 1}]\n"
    )


def _models() -> list[str]:
    try:
        from harness.zoo.catalog import MODEL_NAMES

        return list(MODEL_NAMES)
    except Exception:
        return ["resnet18"]


def write_suite(folder: Path, text: str | bytes, name: str = "suite.yaml") -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- stores ---------------------------------------------------------------------------------------------------

#: Record lines that are not records at all.
NOT_OBJECTS = ["[1,2,3]", "null", '"a string"', "5", "-1.5", "true", "[]", '[{"case_id":"x"}]']
#: Manifest texts that are JSON but not a manifest.
BAD_MANIFESTS = ["[1,2]", "null", '"manifest"', "7", "[]"]

#: How a generated record line is broken. ``invalid`` ones are never records; ``maybe`` ones (a field of a
#: wrong type) may be skipped or kept, but never turn into another record.
INVALID_LINES = ("truncated", "garbage", "not_object", "bad_case_id", "bad_status", "future_version", "bad_version")
MAYBE_LINES = ("bad_field", "blank")


@dataclass
class LineFault:
    position: int  # insert before the valid record at this index (past the end: after the last)
    kind: str
    value: Any = None
    cut: float = 0.5  # truncated: where to cut, as a fraction of the line


@dataclass
class RunSpec:
    records: int  # valid records written
    legacy: list[bool]  # per record: written as schema version 0 (before versioning), which is migrated
    statuses: list[str]
    ranks: int
    merged: bool
    manifest: str  # ok | missing | truncated | not_object | future | bad_fields | bad_version
    manifest_cut: float = 0.5
    manifest_value: Any = None
    unreadable: bool = False
    faults: list[LineFault] = field(default_factory=list)


#: Manifest faults that make a run unreadable as a run, and (missing) that leave a records folder without one.
BAD_MANIFEST = ("missing", "truncated", "not_object", "future", "bad_version")


@dataclass
class StoreSpec:
    runs: list[RunSpec]
    output: str  # ok | parent_is_file | is_dir | readonly_dir
    compare_out: str  # ok | is_file | default | candidate_readonly


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=5,
)


#: JSON values other than text (a case id or status of a wrong type).
NOT_TEXT = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(JSON_VALUES, max_size=3),
    st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=3),
)


@st.composite
def line_fault(draw, n_records: int) -> LineFault:
    kind = draw(st.sampled_from(INVALID_LINES + MAYBE_LINES))
    position = draw(st.integers(0, n_records))
    value: Any = None
    if kind == "garbage":
        value = draw(
            st.text(min_size=1, max_size=20)
            .map(lambda s: s.replace("\n", " ").replace("\r", " "))
            .filter(lambda s: s.strip() and not _is_json(s))
        )
    elif kind == "not_object":
        non_objects = st.one_of(JSON_SCALARS, st.lists(JSON_VALUES, max_size=3)).map(json.dumps)
        value = draw(st.one_of(st.sampled_from(NOT_OBJECTS), non_objects))
    elif kind == "bad_case_id":
        value = draw(NOT_TEXT)
    elif kind == "bad_status":
        value = draw(NOT_TEXT)
    elif kind == "future_version":
        value = draw(st.sampled_from([1, 2, 998, 10**6, 10**30]))  # added to SCHEMA_VERSION
    elif kind == "bad_version":
        value = draw(st.sampled_from(["1", "one", [1], {"v": 1}, 1.5, -1]))
    elif kind == "bad_field":
        name = draw(
            st.sampled_from(
                ["batch_size", "throughput_img_s", "samples_ms", "tags", "telemetry", "resolution", "model", "rank"]
            )
        )
        value = (name, draw(JSON_VALUES))
    cut = draw(st.floats(0.0, 0.99))
    return LineFault(position, kind, value, cut)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@st.composite
def run_spec(draw, clean: bool | None = None, min_records: int = 0) -> RunSpec:
    n = draw(st.integers(min_records, 4))
    clean = draw(st.booleans()) if clean is None else clean
    manifest = "ok" if clean else draw(st.sampled_from(["ok"] * 4 + list(BAD_MANIFEST) + ["bad_fields"]))
    faults = [] if clean else draw(st.lists(line_fault(n), max_size=3))
    bad_fields = draw(
        st.sampled_from(
            [
                {"started_at": 5},
                {"started_at": None},
                {"environment": "x"},
                {"environment": [1]},
                {"suite": []},
                {"suite": {"name": 5}},
                {"case_ids": 5},
                {"case_ids": [None, 1]},
                {"status": {}},
                {"source": 5},
            ]
        )
    )
    return RunSpec(
        records=n,
        legacy=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        statuses=draw(st.lists(st.sampled_from(["ok", "ok", "ok", "error", "oom"]), min_size=n, max_size=n)),
        ranks=draw(st.integers(1, 2)),
        merged=draw(st.booleans()),
        manifest=manifest,
        manifest_cut=draw(st.floats(0.0, 0.99)),
        manifest_value=bad_fields if manifest == "bad_fields" else draw(st.sampled_from(BAD_MANIFESTS)),
        unreadable=False if clean else draw(st.sampled_from([False] * 5 + [True])),
        faults=faults,
    )


@st.composite
def store_spec(draw, max_runs: int = 4, min_runs: int = 1) -> StoreSpec:
    runs = draw(st.lists(run_spec(), min_size=min_runs, max_size=max_runs))
    # Often a clean oldest and newest run (the baseline and candidate of compare) around the corrupted ones.
    if draw(st.booleans()):
        runs[-1] = draw(run_spec(clean=True, min_records=1))
    if len(runs) > 1 and draw(st.booleans()):
        runs[0] = draw(run_spec(clean=True, min_records=1))
    return StoreSpec(
        runs=runs,
        output=draw(st.sampled_from(["ok"] * 8 + ["parent_is_file", "is_dir", "readonly_dir"])),
        compare_out=draw(st.sampled_from(["ok"] * 6 + ["default", "default", "is_file", "candidate_readonly"])),
    )


MODELS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


@dataclass
class Store:
    """A written store and what a correct reader makes of it."""

    root: Path
    runs: list[Path]
    expected: set[tuple[str, str]]  # (run_id, case_id) of every valid record in a readable run
    maybe: set[tuple[str, str]]  # records that may or may not be read back (a field of a wrong type)
    all_or_none: dict[str, set[tuple[str, str]]]  # runs with a bad manifest: all their valid records, or none
    bad_runs: list[str]  # runs with input that a reader must skip, and name
    good_runs: list[str]  # runs whose manifest and records files can be read
    records_per_run: dict[str, int]
    clean: bool = True  # nothing was corrupted: every command must exit 0


def _record(run_id: str, index: int, status: str, legacy: bool) -> dict[str, Any]:
    from tests.synthetic import make_record

    record = make_record(
        model=MODELS[index % len(MODELS)],
        batch_size=1 + index,
        status=status,
        run_id=run_id,
        seed=index,
        suite="synthetic",
        n=8,
    )
    if legacy:  # a record from before the schema was versioned: migrated on reading
        record.pop("schema_version", None)
        record["ci95"] = record.pop("throughput_ci95", None)
    return record


def _fault_line(fault: LineFault, run_id: str, n: int) -> tuple[str, bool, tuple[str, str] | None]:
    """(text of the line without its newline, whether it must be skipped, key of a maybe-record)."""
    from harness.store.record import SCHEMA_VERSION

    template = _record(run_id, 90 + n, "ok", False)
    if fault.kind == "truncated":
        line = json.dumps(template, separators=(",", ":"))
        return line[: max(1, int(len(line) * fault.cut))], True, None
    if fault.kind == "garbage":
        return str(fault.value), True, None
    if fault.kind == "not_object":
        return str(fault.value), True, None
    if fault.kind == "blank":
        return "", False, None
    record = dict(template)
    record["case_id"] = f"faulty-{n}/{fault.kind}"
    if fault.kind == "bad_case_id":
        record["case_id"] = fault.value
    elif fault.kind == "bad_status":
        record["status"] = fault.value
    elif fault.kind == "future_version":
        record["schema_version"] = SCHEMA_VERSION + fault.value
    elif fault.kind == "bad_version":
        record["schema_version"] = fault.value
    elif fault.kind == "bad_field":
        name, value = fault.value
        record[name] = value
        return json.dumps(record, separators=(",", ":")), False, (run_id, record["case_id"])
    return json.dumps(record, separators=(",", ":")), True, None


def _append_raw(path: Path, text: str) -> None:
    """Append raw text as its own line (after a newline if the file ends in a cut line, as a writer would)."""
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                text = "\n" + text
        f.write(text.encode("utf-8"))


def write_store(spec: StoreSpec, root: Path) -> Store:
    """Write ``spec`` under ``root / "results"`` with the store's writers, then corrupt it as specified."""
    from harness.store.rundir import append_record, new_manifest, status_counts, write_json_atomic
    from tests.synthetic import FINGERPRINT

    results = root / "results"
    store = Store(results, [], set(), set(), {}, [], [], {})
    for i, run in enumerate(spec.runs):
        run_id = f"run{i}"
        run_dir = results / "synthetic" / run_id
        run_dir.mkdir(parents=True)
        store.runs.append(run_dir)
        valid = [_record(run_id, j, run.statuses[j], run.legacy[j]) for j in range(run.records)]
        keys = {(run_id, r["case_id"]) for r in valid}
        # Lines per file: rank files get records j % ranks == rank; the merged file (if any) gets the same lines
        # in rank order, faults included, so whichever file a reader prefers holds the same records.
        per_rank: list[list[tuple[str, Any]]] = [[] for _ in range(run.ranks)]
        must_skip = False
        maybe: set[tuple[str, str]] = set()
        faults = sorted(enumerate(run.faults), key=lambda f: f[1].position)
        for j in range(run.records + 1):
            for n, fault in faults:
                if min(fault.position, run.records) == j:
                    text, skip, maybe_key = _fault_line(fault, run_id, n)
                    must_skip |= skip
                    if maybe_key:
                        maybe.add(maybe_key)
                    per_rank[j % run.ranks].append(("raw", (text, fault.kind != "truncated")))
            if j < run.records:
                per_rank[j % run.ranks].append(("record", valid[j]))
        files = [(run_dir / f"records-rank{rank}.jsonl", lines) for rank, lines in enumerate(per_rank)]
        if run.merged:
            files.append((run_dir / "records.jsonl", [line for lines in per_rank for line in lines]))
        for path, lines in files:
            for kind, item in lines:
                if kind == "record":
                    append_record(path, item)
                else:  # a raw line; a truncated one is left without its newline, as a crash leaves it
                    text, newline = item
                    _append_raw(path, text + "\n" if newline else text)
            if path.name == "records.jsonl":
                # The merged file is written at the end of a run: newer than the rank files.
                stamp = max((p.stat().st_mtime for p, _ in files if p.exists()), default=None)
                if stamp is not None and path.exists():
                    os.utime(path, (stamp + 1, stamp + 1))
        manifest = new_manifest(run_id, {"name": "synthetic"}, dict(FINGERPRINT))
        started = f"2026-01-{i + 1:02d}T00:00:00Z"
        manifest.update(started_at=started, finished_at=started, status="complete", counts=status_counts(valid))
        mpath = run_dir / "manifest.json"
        has_files = any(p.exists() for p, _ in files)
        if run.manifest != "missing":
            if run.manifest == "future":
                from harness.store.record import SCHEMA_VERSION

                manifest["schema_version"] = SCHEMA_VERSION + 998
            elif run.manifest == "bad_version":
                manifest["schema_version"] = "2"
            elif run.manifest == "bad_fields":
                manifest.update(run.manifest_value)
            write_json_atomic(mpath, manifest)
            if run.manifest == "truncated":
                data = mpath.read_bytes()
                mpath.write_bytes(data[: int(len(data) * run.manifest_cut)])
            elif run.manifest == "not_object":
                mpath.write_text(run.manifest_value)
        readable = True
        if run.unreadable and has_files:
            readable = False
            make_unreadable([p for p, _ in files if p.exists()])
        store.records_per_run[run_id] = run.records
        store.maybe |= maybe
        if run.faults or run.manifest != "ok" or run.unreadable:
            store.clean = False
        if run.manifest == "missing" and not has_files:
            continue  # an empty folder: not a run at all
        if run.manifest == "bad_fields":  # a manifest with fields of wrong types: the run may be read or skipped
            store.all_or_none[run_id] = keys if readable else set()
            continue
        if run.manifest in BAD_MANIFEST:
            store.all_or_none[run_id] = keys if readable else set()
            store.bad_runs.append(run_id)
            continue
        if not readable:
            store.bad_runs.append(run_id)
            continue
        store.good_runs.append(run_id)
        store.expected |= keys
        if must_skip:
            store.bad_runs.append(run_id)
    return store


def make_unreadable(paths: list[Path]) -> None:
    """Files a reader cannot read. As root, permissions do not stop reading, so the file is replaced by a
    folder of the same name (reading it fails with an OSError, as an unreadable file does)."""
    for path in paths:
        if PERMISSIONS_IGNORED:
            path.unlink()
            path.mkdir()
            (path / "not-a-file").write_text("x")
        else:
            path.chmod(0)


def output_path(kind: str, tmp: Path, name: str) -> Path:
    """Where a command writes its output: a writable place, or (kind) one it cannot write."""
    if kind == "readonly_dir" and PERMISSIONS_IGNORED:
        kind = "parent_is_file"  # root writes into read-only folders
    if kind == "parent_is_file":
        blocker = tmp / "blocker"
        blocker.write_text("a file where a folder should be\n")
        return blocker / name
    if kind == "is_dir":
        path = tmp / name
        path.mkdir()
        (path / "keep").write_text("x")
        return path
    if kind == "readonly_dir":
        folder = tmp / "readonly"
        folder.mkdir()
        folder.chmod(0o555)
        return folder / name
    folder = tmp / "out"
    folder.mkdir(exist_ok=True)
    return folder / name


def restore_permissions(root: Path) -> None:
    """Undo chmods so that the temporary folder can be removed."""
    if PERMISSIONS_IGNORED:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, name), 0o755)
