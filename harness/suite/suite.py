"""The loaded suite: its settings, its cases and its record for the manifest; and the loader that makes it.

``load_suite(path)`` reads a YAML file, validates it against ``harness.suite.schema``, expands it, and raises
one ``SuiteError`` listing every problem with its file, line and key path, so a typo stops a suite before
anything runs. A suite of more than ``WARN_CASES`` cases is loaded with a ``SuiteWarning`` (the CLI prints it on
stderr); one of more than ``max_cases`` (``MAX_CASES`` unless given) is refused.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import SuiteError
from harness.suite.bounds import MAX_CASES, WARN_CASES
from harness.suite.case import Case
from harness.suite.expand import Profile, expand, matcher_dict, resolve_path
from harness.suite.messages import describe, show
from harness.suite.schema import NAME_PATTERN, LaunchSpec, RegressionSpec, SuiteSpec, TelemetrySpec
from harness.suite.source import Issue, key_path, locate, parse_yaml, raise_issues, read_text, trim_loc


class SuiteWarning(UserWarning):
    """A suite that loads but may not be what was meant (for now: more than ``WARN_CASES`` cases)."""


@dataclass(frozen=True)
class Accuracy:
    """The suite's accuracy block: ``data`` is the validation folder (resolved against the suite's folder)."""

    data: Path
    limit: int | None = None


class Suite:
    """A validated, expanded suite. Build it with ``load_suite`` (from a file) or ``Suite.from_spec``."""

    def __init__(self, spec: SuiteSpec, cases: list[Case], *, source: Path | None = None, sha256: str | None = None,
                 warnings: tuple[str, ...] = (), max_cases: int | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.source = source
        self.sha256 = sha256
        self.name: str = spec.name or (source.stem if source else "suite")
        self.description: str = spec.description
        self.tags: tuple[str, ...] = tuple(spec.tags)
        self.launch: LaunchSpec = spec.launch
        self.telemetry: TelemetrySpec = spec.telemetry
        self.regression: RegressionSpec = spec.regression
        self.profile = Profile([matcher_dict(m) for m in spec.profile.cases])
        self.accuracy: Accuracy | None = None
        if spec.accuracy is not None:
            base = source.parent if source else None
            self.accuracy = Accuracy(Path(resolve_path(spec.accuracy.data, base)), spec.accuracy.limit)
        self.warnings = warnings
        #: The case cap the suite was loaded under when it was not the default (``--max-cases``), else None.
        self.max_cases = max_cases
        self._cases = tuple(cases)

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, {len(self._cases)} cases, source={str(self.source) if self.source else None})"

    def cases(self) -> list[Case]:
        """The expanded cases in their stable order (rules in ``harness.suite.expand``)."""
        return list(self._cases)

    def resolved(self) -> dict[str, Any]:
        """The suite as JSON-ready data for the run manifest: the source file and its sha256, the settings as
        written (partial blocks keep only the keys given), the full launch/telemetry/regression settings and
        every expanded case. ``Suite.from_resolved`` rebuilds the same suite from it."""
        spec = self.spec
        data: dict[str, Any] = {
            "source": str(self.source.resolve()) if self.source else None,
            "sha256": self.sha256,
            "name": self.name,
            "description": spec.description,
            "tags": list(spec.tags),
            "defaults": spec.defaults.model_dump(mode="json", exclude_unset=True),
            "matrix": spec.matrix.model_dump(mode="json", exclude_unset=True) if spec.matrix else None,
            "exclude": [m.model_dump(mode="json", exclude_unset=True) for m in spec.exclude],
            "include": [m.model_dump(mode="json", exclude_unset=True) for m in spec.include],
            "launch": spec.launch.model_dump(mode="json"),
            "profile": {"cases": [m.model_dump(mode="json", exclude_unset=True) for m in spec.profile.cases]},
            "telemetry": spec.telemetry.model_dump(mode="json"),
            "regression": spec.regression.model_dump(mode="json"),
            "accuracy": spec.accuracy.model_dump(mode="json") if spec.accuracy else None,
            "case_count": len(self._cases),
            "cases": [c.to_dict() for c in self._cases],
        }
        if self.max_cases is not None:
            data["max_cases"] = self.max_cases  # so a resumed run is rebuilt under the cap it began with
        return data

    @classmethod
    def from_spec(cls, spec: SuiteSpec | dict, *, source: Path | None = None, max_cases: int | None = None) -> Suite:
        """A suite from a spec (or a plain dict, validated here) without a file; problems raise ``SuiteError``
        with key paths but no line numbers. More than ``max_cases`` cases (default ``MAX_CASES``) are refused."""
        label = str(source) if source else "<suite>"
        if isinstance(spec, dict):
            spec = _validate(spec, label, None)
        return _finish(spec, label, None, source, None, max_cases)

    @classmethod
    def from_resolved(cls, data: dict[str, Any]) -> Suite:
        """Rebuild a suite from ``resolved()`` output (as found in a run manifest)."""
        keys = set(SuiteSpec.model_fields)
        spec = {k: v for k, v in data.items() if k in keys and v is not None}
        source = Path(data["source"]) if data.get("source") else None
        # The run was accepted when it began, perhaps with --max-cases: rebuild it under the cap it was given.
        listed, given = data.get("cases"), data.get("max_cases")
        max_cases = max(
            MAX_CASES,
            len(listed) if isinstance(listed, list) else 0,
            given if isinstance(given, int) and not isinstance(given, bool) else 0,
        )
        suite = cls.from_spec(spec, source=source, max_cases=max_cases)
        suite.max_cases = given if isinstance(given, int) and not isinstance(given, bool) else None
        suite.sha256 = data.get("sha256")
        return suite


def load_suite(path: str | Path, max_cases: int | None = None) -> Suite:
    """Read, validate and expand the suite file at ``path``. Any problem raises one ``SuiteError`` naming the
    file, the line, the key, the bad value and the valid choices (all problems at once, one per line). More
    than ``max_cases`` cases (default ``MAX_CASES``) are refused; more than ``WARN_CASES`` warn."""
    path = Path(path)
    text = read_text(path)
    return parse_suite(text, path, max_cases)


def parse_suite(text: str, source: str | Path = "<suite>", max_cases: int | None = None) -> Suite:
    """Validate and expand suite YAML ``text``; ``source`` names it in messages and anchors relative paths.
    More than ``max_cases`` cases (default ``MAX_CASES``) are refused; more than ``WARN_CASES`` warn."""
    source = Path(source)
    label = str(source)
    data, root, issues = parse_yaml(text, label)
    if data is None:
        raise SuiteError(
            f"{label}: the file is empty; a suite is a mapping with at least a matrix (see harness schema)"
        )
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise SuiteError(
            f"{label}:{line}: the top level must be a mapping of keys (name, defaults, matrix, ...), "
            f"got {type(data).__name__} {show(data)}"
        )
    spec = _validate(data, label, root, issues)
    suite = _finish(spec, label, root, source, hashlib.sha256(text.encode()).hexdigest(), max_cases)
    count = len(suite.cases())
    if count > WARN_CASES:
        warnings.warn(
            SuiteWarning(
                f"{label}: {count:,} cases, more than {WARN_CASES:,}: at a few seconds each that is hours to days "
                "of measuring; check the matrix is what you meant (this is a warning: the suite still loads)"
            ),
            stacklevel=2,
        )
    return suite


def _validate(data: dict, label: str, root: Any, issues: list[Issue] | None = None) -> SuiteSpec:
    issues = list(issues or [])
    spec = None
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc, message, at_key = describe(error)
            issues.append(_issue(label, root, loc, message, at_key))
    raise_issues(issues)
    return spec


def _issue(label: str, root: Any, loc: tuple, message: str, at_key: bool = False) -> Issue:
    line, column = locate(root, loc, at_key)
    return Issue(label, line, column, key_path(trim_loc(root, loc)), message)


def _finish(spec: SuiteSpec, label: str, root: Any, source: Path | None, sha256: str | None,
            max_cases: int | None = None) -> Suite:  # fmt: skip
    issues = []
    if spec.name is None and source is not None and not re.fullmatch(NAME_PATTERN, source.stem):
        issues.append(
            _issue(label, root, (), f"the file name {source.stem!r} cannot name the results folder; add a name: key")
        )
    expansion = expand(spec, source.parent if source is not None else None, max_cases)
    issues += [_issue(label, root, loc, message) for loc, message in expansion.issues]
    raise_issues(issues)
    warnings = tuple(str(_issue(label, root, loc, message)) for loc, message in expansion.warnings)
    return Suite(spec, expansion.cases, source=source, sha256=sha256, warnings=warnings, max_cases=max_cases)
