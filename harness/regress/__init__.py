"""Regression detection and hardware comparison over stored runs. Imports no torch.

``compare(baseline, candidate, thresholds) -> Comparison`` judges each case's metrics (threshold and a test on the
raw samples; inconclusive where either side was noisy, and at run level where a run looks busy: ``busy_runs``);
``detect_steps(series, threshold)`` finds level shifts in a nightly history;
``hardware_compare(runs, pairing) -> HardwareComparison`` puts the same cases measured on different machines side
by side, pairing cases exactly (``EXACT``) or by the published-matching rule (``NEAREST_BATCH``; ``pairing_for(runs)``
picks it when measured and imported runs are mixed).
"""

from __future__ import annotations

from harness.regress.compare import BUCKETS, FAIL_ON, CaseResult, Comparison, MetricChange, Thresholds, compare
from harness.regress.hardware import MATCH_FIELDS, HardwareComparison, hardware_compare
from harness.regress.health import BusyRun, busy_runs
from harness.regress.metrics import METRIC_NAMES, METRICS
from harness.regress.pairing import EXACT, NEAREST_BATCH, Pairing, pairing_for
from harness.regress.stats import bootstrap_interval, mann_whitney_u
from harness.regress.steps import Step, detect_steps

__all__ = [
    "BUCKETS",
    "BusyRun",
    "CaseResult",
    "Comparison",
    "EXACT",
    "FAIL_ON",
    "HardwareComparison",
    "MATCH_FIELDS",
    "METRICS",
    "METRIC_NAMES",
    "MetricChange",
    "NEAREST_BATCH",
    "Pairing",
    "Step",
    "Thresholds",
    "bootstrap_interval",
    "busy_runs",
    "compare",
    "detect_steps",
    "hardware_compare",
    "mann_whitney_u",
    "pairing_for",
]
