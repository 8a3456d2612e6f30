"""Matrix expansion: a validated suite spec becomes the ordered list of ``Case`` objects.

Rules, in order:

1. Every case starts from the built-in defaults (``Case``'s field defaults), then the suite's ``defaults``;
   ``warmup`` and ``measure`` merge key by key.
2. The matrix crosses its axes in the fixed order model, mode, batch_size, resolution, precision,
   channels_last, compile (so the list order is stable); an axis the matrix leaves out takes ``defaults``.
3. ``exclude`` removes every matrix case that matches all keys of an entry (a list value matches any of it).
4. ``include`` adds one case per entry, from ``defaults`` plus the entry's keys; it may name values the matrix
   does not have, and is applied after ``exclude``.
5. Cases are unique by id: a later case with the id of an earlier one replaces it, keeping the earlier place
   (so an include entry can retune one matrix case).
6. A case is profiled when it matches an entry of ``profile.cases``.

The number of cases is counted from the axis lengths before any case is built: when the matrix's combinations
(before ``exclude``) plus the ``include`` entries pass ``max_cases`` (``MAX_CASES``, 100,000, unless
``--max-cases`` says otherwise), the suite is refused without building them. A problem that many matrix cases
share (batch 1 at 32 px in train mode, whatever the precision) is reported once, with how many cases have it.

Problems found here (a missing model or batch size, weights a model does not have, inference cases under
``strategy: ddp``) are returned with their key path, so the loader can report the line they come from.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import SuiteError
from harness.suite.bounds import MAX_CASES
from harness.suite.case import AXES, WEIGHTS_TAG_RE, Case, Measure, Warmup, case_label, check_weights, matches

#: Case fields that are settings rather than axes (``defaults`` and ``include`` may set them).
_MERGED = ("warmup", "measure")


@dataclass
class Expansion:
    """The cases of a suite, and the problems and warnings found while expanding it (key path, message)."""

    cases: list[Case] = field(default_factory=list)
    issues: list[tuple[tuple, str]] = field(default_factory=list)
    warnings: list[tuple[tuple, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    """The suite's profiler block: ``cases`` are partial case matchers, ``{key: [accepted values]}``."""

    cases: list[dict[str, list[Any]]] = field(default_factory=list)

    def matches(self, case: Case) -> bool:
        """True when ``case`` matches an entry of ``cases`` (and so is traced)."""
        return any(matches(case, m) for m in self.cases)


def matcher_dict(spec: Any) -> dict[str, list[Any]]:
    """A matcher model as a plain dict of the keys it names, each with its list of accepted values."""
    return {name: list(getattr(spec, name)) for name in AXES if name in spec.model_fields_set}


def resolve_path(value: str, base_dir: Path | None) -> str:
    """``value`` as a path: ``~`` expanded, and a relative path taken from ``base_dir`` (the suite's folder)."""
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path)


def _given(spec: Any) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.model_fields_set}


def _merge(kind: type, base: Any, spec: Any, loc: tuple, out: Expansion) -> Any:
    if spec is None:
        return base
    try:
        return kind(**{**{f.name: getattr(base, f.name) for f in fields(kind)}, **_given(spec)})
    except SuiteError as exc:
        out.issues.append((loc, str(exc).removeprefix(f"{loc[-1]}: ")))
        return None


def _settings(spec: Any, base: dict[str, Any], loc: tuple, base_dir: Path | None, out: Expansion) -> dict:
    """``base`` updated with the keys ``spec`` (defaults or an include entry) gives, warmup and measure merged."""
    values = dict(base)
    for name, value in _given(spec).items():
        if name in _MERGED or name == "tags":
            continue
        if name == "weights" and value is not None:
            value = value if WEIGHTS_TAG_RE.fullmatch(value) else resolve_path(value, base_dir)
        values[name] = value
    values["warmup"] = _merge(Warmup, base["warmup"], spec.warmup, (*loc, "warmup"), out)
    values["measure"] = _merge(Measure, base["measure"], spec.measure, (*loc, "measure"), out)
    return values


def _weights_loc(origin: tuple, entry: Any, defaults_given: set) -> tuple:
    """Where a case's weights were written: its include entry if it names them, else defaults."""
    if origin[0] == "include" and "weights" in entry.model_fields_set:
        return (*origin, "weights")
    return ("defaults", "weights") if "weights" in defaults_given else origin


def case_count_problem(axes: dict[str, list], includes: int, max_cases: int) -> tuple[tuple, str] | None:
    """The problem with a suite whose matrix combinations (the product of the axis lengths, before exclude) plus
    ``includes`` entries pass ``max_cases``, or None. Counts only: nothing is built."""
    combinations = math.prod(len(values) for values in axes.values()) if axes else 0
    total = combinations + includes
    if total <= max_cases:
        return None
    if combinations:
        sizes = " x ".join(f"{len(values)} {name}" for name, values in axes.items())
        counted = f"the matrix crosses {combinations:,} combinations ({sizes})"
        counted += f" and include adds {includes:,} entries" if includes else ""
        loc: tuple = ("matrix",)
    else:
        counted, loc = f"include lists {includes:,} entries", ("include",)
    return loc, (
        f"{counted}: {total:,} cases, more than the cap of {max_cases:,}; shrink an axis or split the suite, or "
        f"lift the cap with --max-cases {total} on harness validate and harness run"
        if total < 10 * max_cases
        else f"{counted}: {total:,} cases, more than the cap of {max_cases:,}; shrink an axis or split the suite"
    )


def expand(spec: Any, base_dir: Path | None = None, max_cases: int | None = None) -> Expansion:
    """Expand a validated ``SuiteSpec`` into cases (rules in the module docstring). Relative weights paths are
    taken from ``base_dir``; more than ``max_cases`` cases (default ``MAX_CASES``) are refused before any is
    built. Never raises for a user's mistake: problems come back in ``Expansion.issues``."""
    out = Expansion()
    builtin = {f.name: f.default for f in fields(Case) if f.name not in ("model", "batch_size", *_MERGED)}
    builtin.update(warmup=Warmup(), measure=Measure(), tags=tuple(spec.tags))
    base = _settings(spec.defaults, builtin, ("defaults",), base_dir, out)
    if base["warmup"] is None or base["measure"] is None:
        return out  # every case would repeat the same settings problem
    given_defaults = spec.defaults.model_fields_set
    candidates: list[tuple[dict, tuple]] = []  # (case values, key path of their origin)

    if spec.matrix is not None:
        axes = {name: list(getattr(spec.matrix, name)) for name in AXES if name in spec.matrix.model_fields_set}
        for name in ("model", "batch_size"):
            if name not in axes and name not in given_defaults:
                out.issues.append((("matrix",), f"no {name} given; add matrix.{name} or defaults.{name}"))
        too_many = case_count_problem(axes, len(spec.include), MAX_CASES if max_cases is None else max_cases)
        if too_many:
            out.issues.append(too_many)
            return out
        if not out.issues:
            names = list(axes)
            matrix_cases = [
                dict(base, **dict(zip(names, combo, strict=True))) for combo in itertools.product(*axes.values())
            ]
            for i, matcher in enumerate(spec.exclude):
                wanted = matcher_dict(matcher)
                kept = [c for c in matrix_cases if not _values_match(c, wanted)]
                if len(kept) == len(matrix_cases):
                    out.warnings.append((("exclude", i), "matches no matrix case, so removes nothing"))
                matrix_cases = kept
            candidates.extend((values, ("matrix",)) for values in matrix_cases)
    elif not spec.include:
        out.issues.append(((), "the suite has no cases; add a matrix (or include entries)"))
    elif too_many := case_count_problem({}, len(spec.include), MAX_CASES if max_cases is None else max_cases):
        out.issues.append(too_many)
        return out

    for i, entry in enumerate(spec.include):
        values = _settings(entry, base, ("include", i), base_dir, out)
        values["tags"] = tuple(dict.fromkeys((*spec.tags, *(entry.tags or ()))))
        missing = [name for name in ("model", "batch_size") if name not in values]
        if missing:
            out.issues.append(
                (("include", i), f"no {' or '.join(missing)} here or in defaults; add {', '.join(missing)} to it")
            )
        elif values["warmup"] is not None and values["measure"] is not None:
            candidates.append((values, ("include", i)))

    profile = Profile([matcher_dict(m) for m in spec.profile.cases])
    by_id: dict[str, Case] = {}
    bad_weights: set[tuple] = set()
    shared: dict[str, list] = {}  # a problem of matrix cases -> [how many cases have it, the first one's id]
    for values, origin in candidates:
        problem = check_weights(values["model"], values["weights"])
        if problem:
            entry = spec.include[origin[1]] if origin[0] == "include" else None
            loc = _weights_loc(origin, entry, given_defaults)
            if loc not in bad_weights:
                bad_weights.add(loc)
                out.issues.append((loc, problem))
            continue
        try:
            case = Case(**values)
        except SuiteError as exc:
            if origin[0] != "matrix":
                out.issues.append((origin, str(exc)))
                continue
            for problem in getattr(exc, "problems", [str(exc)]):
                shared.setdefault(problem, [0, case_label(values)])[0] += 1
            continue
        if profile.matches(case):
            case = case.replace(profile=True)
        by_id[case.id] = case
    for problem, (count, first) in shared.items():
        who = f"case {first}" if count == 1 else f"{count} matrix cases (the first: {first})"
        out.issues.append((("matrix",), f"{who}: {problem}"))
    out.cases = list(by_id.values())
    if not out.cases and not out.issues:
        out.issues.append((("exclude",), "excludes every matrix case, so the suite has no cases; loosen an entry"))

    for i, matcher in enumerate(profile.cases):
        if out.cases and not any(matches(c, matcher) for c in out.cases):
            out.warnings.append((("profile", "cases", i), "matches no case, so nothing is profiled for it"))
    if spec.launch.strategy == "ddp":
        inference = [c.id for c in out.cases if c.mode != "train"]
        if inference:
            out.issues.append(
                (
                    ("launch", "strategy"),
                    f"strategy ddp trains each case across ranks, but {len(inference)} case(s) are inference "
                    f"(first: {inference[0]}); set mode: train, or use strategy sweep",
                )
            )
    return out


def _values_match(values: dict[str, Any], matcher: dict[str, list[Any]]) -> bool:
    return all(any(type(values[k]) is type(v) and values[k] == v for v in vs) for k, vs in matcher.items())
