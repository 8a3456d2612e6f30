"""Suites: the YAML format (typed, validated models), matrix expansion into cases, and stable case ids.

    from harness.suite import load_suite
    suite = load_suite("suites/smoke.yaml")   # raises SuiteError naming file, line, key and valid choices
    for case in suite.cases():                # expanded, in a stable order
        print(case.id)                        # e.g. resnet50/train/bs256/amp_bf16/cl

``harness.suite.case`` imports neither pydantic nor YAML, for workers that only rebuild cases from JSON.
"""

from __future__ import annotations

from harness.errors import SuiteError
from harness.suite.case import AXES, Case, Measure, Warmup
from harness.suite.suite import Accuracy, Profile, Suite, load_suite, parse_suite

__all__ = [
    "AXES",
    "Accuracy",
    "Case",
    "Measure",
    "Profile",
    "Suite",
    "SuiteError",
    "Warmup",
    "load_suite",
    "parse_suite",
]
