"""Suites: the YAML format (typed, validated models), matrix expansion into cases, and stable case ids.

    from harness.suite import load_suite
    suite = load_suite("suites/smoke.yaml")   # raises SuiteError naming file, line, key and valid choices
    for case in suite.cases():                # expanded, in a stable order
        print(case.id)                        # e.g. resnet50/train/bs256/amp_bf16/cl

``Case`` and its parts import neither pydantic nor YAML; the loader (``load_suite``, ``Suite``) is imported on
first use, so a worker that only rebuilds cases from JSON stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.errors import SuiteError
from harness.suite.case import AXES, Case, Measure, Warmup

if TYPE_CHECKING:
    from harness.suite.suite import Accuracy, Profile, Suite, SuiteWarning, load_suite, parse_suite

_LAZY = {"Accuracy", "Profile", "Suite", "SuiteWarning", "load_suite", "parse_suite"}

__all__ = [
    "AXES",
    "Accuracy",
    "Case",
    "Measure",
    "Profile",
    "Suite",
    "SuiteError",
    "SuiteWarning",
    "Warmup",
    "load_suite",
    "parse_suite",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from harness.suite import suite

        return getattr(suite, name)
    raise AttributeError(f"module 'harness.suite' has no attribute {name!r}")
