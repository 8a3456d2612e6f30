"""Run-level health: did one of the two runs of a comparison run on a busy machine?

Each run records probes of the machine in its manifest: ``health`` holds a probe at the start and one at the end
of the run (``{"start": PROBE, "end": PROBE | None, "spread": {key: fraction}}``), and ``peak`` the best of them
(older runs have only ``peak``, one probe). A probe's numbers are matmul and convolution TFLOP/s per dtype
(``matmul_tflops.<dtype>``, ``conv_tflops.<key>``) and copy bandwidth (``copy_gbps``). For every number both
runs have, take each run's best of its start and end probes, a over b; the runs differ when

    |log(a / b)| > log(1 + max(spread_a, spread_b) + 0.10)

where a run's spread is how far its own start and end probes differ (|start - end| / max(start, end); 0 for a run
with one probe). A machine moves by its own spread within one run, and by up to 10% more between runs; beyond
that, the run with the lower probe ran with something else on the machine. The comparison is then inconclusive
at run level, naming that run and the numbers. The probes run through the same libraries as the models, so a
software setting that slows the models (an older instruction set, another thread count) lowers them too: the
message says the run "looks busy", per-case verdicts stand on their own samples, and where the copy bandwidth
(the probe that least depends on the software) agrees while compute probes do not, the finding says so.

Runs measured in different environments (fingerprints) are not held against each other: their probes differ by
design. Imports neither torch nor pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.regress.metrics import number
from harness.store.fingerprint import differences

#: How much more than their own spread two runs' probes may differ before one run looks busy.
BETWEEN_RUNS = 0.10
#: Probe groups whose values are rates per dtype (``group.key``), and their unit.
RATE_GROUPS = {"matmul_tflops": ("matmul", "TFLOP/s"), "conv_tflops": ("conv", "TFLOP/s")}


def probe_numbers(probe: Any) -> dict[str, float]:
    """The positive numbers of one probe by key: ``copy_gbps``, ``matmul_tflops.<dtype>``, ``conv_tflops.<key>``."""
    out: dict[str, float] = {}
    if not isinstance(probe, dict):
        return out
    value = number(probe.get("copy_gbps"))
    if value and value > 0:
        out["copy_gbps"] = value
    for group in RATE_GROUPS:
        rates = probe.get(group)
        for key, raw in rates.items() if isinstance(rates, dict) else ():
            value = number(raw)
            if value and value > 0:
                out[f"{group}.{key}"] = value
    return out


def describe(key: str) -> tuple[str, str]:
    """A probe key in words, and its unit: ``copy_gbps`` -> (copy, GB/s); ``conv_tflops.bf16_cl`` -> (bf16 conv
    (channels_last), TFLOP/s)."""
    if key == "copy_gbps":
        return "copy", "GB/s"
    group, _, name = key.partition(".")
    what, unit = RATE_GROUPS.get(group, (group, ""))
    if name.endswith("_cl"):
        return f"{name[:-3]} {what} (channels_last)", unit
    return f"{name} {what}", unit


@dataclass(frozen=True)
class Probes:
    """One run's probe numbers: ``values`` (best of start and end, by key), ``spread`` (fraction by key; absent
    where the run has one probe) and ``source`` (``health``: start and end probes; ``peak``: one probe)."""

    values: dict[str, float]
    spread: dict[str, float]
    source: str


def run_probes(manifest: dict[str, Any] | None) -> Probes | None:
    """The probes a run's manifest records: its ``health``, else its ``peak``; None when it has neither."""
    manifest = manifest or {}
    health = manifest.get("health")
    if isinstance(health, dict) and probe_numbers(health.get("start")):
        start, end = probe_numbers(health.get("start")), probe_numbers(health.get("end"))
        values = {k: max(start.get(k, 0.0), end.get(k, 0.0)) for k in {**start, **end}}
        recorded = health.get("spread") if isinstance(health.get("spread"), dict) else {}
        spread = {}
        for key in values:
            given = number(recorded.get(key))
            if given is None and key in start and key in end:
                given = abs(start[key] - end[key]) / max(start[key], end[key])
            if given is not None:
                spread[key] = max(given, 0.0)
        return Probes(values, spread, "health")
    values = probe_numbers(manifest.get("peak"))
    return Probes(values, {}, "peak") if values else None


@dataclass(frozen=True)
class ProbeGap:
    """One probe on which a run looks busy: its value there (``busy``), the other run's (``other``), and the
    relative difference their spreads allowed (``allowed``: max spread + 10%)."""

    key: str
    busy: float
    other: float
    allowed: float

    def text(self) -> str:
        label, unit = describe(self.key)
        return f"{label} {self.busy:.3g} vs {self.other:.3g} {unit}".rstrip()


@dataclass
class BusyRun:
    """A run that looks busy next to another: which side (``role``: baseline or candidate), the run and the run
    it was held against (labels), where the probes came from, the probes that differ beyond their spread, and
    ``copy_agrees``: (this run's, the other's) copy GB/s when those agree although compute probes differ."""

    role: str
    run: str
    against: str
    source: str
    gaps: list[ProbeGap] = field(default_factory=list)
    copy_agrees: tuple[float, float] | None = None

    @property
    def hint(self) -> str:
        """What else could explain the gap (empty when nothing is known)."""
        if self.copy_agrees is None:
            return ""
        mine, other = self.copy_agrees
        return (
            f"copy bandwidth agrees ({mine:.3g} vs {other:.3g} GB/s): a software or setting difference (oneDNN's "
            "instruction set, threads) explains this as well as a busy machine"
        )

    @property
    def reason(self) -> str:
        """In words, e.g. ``baseline looks busy: copy 7.6 vs 23.5 GB/s, bf16 matmul 0.025 vs 0.058 TFLOP/s``."""
        return f"{self.role} looks busy: " + ", ".join(g.text() for g in self.gaps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "run": self.run,
            "against": self.against,
            "source": self.source,
            "reason": self.reason,
            "probes": {g.key: {"busy": g.busy, "other": g.other, "allowed": g.allowed} for g in self.gaps},
            **({"hint": self.hint} if self.hint else {}),
        }


def held_against(base: Probes, cand: Probes, base_label: str, cand_label: str) -> list[BusyRun]:
    """The runs (at most one per side) whose probes fall below the other's beyond both runs' spread + 10%."""
    found: dict[str, BusyRun] = {}
    for key in [k for k in base.values if k in cand.values]:  # copy, matmul, conv: as the probe lists them
        a, b = base.values[key], cand.values[key]
        allowed = max(base.spread.get(key, 0.0), cand.spread.get(key, 0.0)) + BETWEEN_RUNS
        if abs(math.log(a / b)) <= math.log1p(allowed):
            continue
        if a < b:
            busy = found.setdefault("baseline", BusyRun("baseline", base_label, cand_label, base.source))
        else:
            busy = found.setdefault("candidate", BusyRun("candidate", cand_label, base_label, cand.source))
        busy.gaps.append(ProbeGap(key, min(a, b), max(a, b), allowed))
    # Copy bandwidth within the rule while compute probes are not: said beside the finding.
    held = "copy_gbps" in base.values and "copy_gbps" in cand.values
    if held and not any(g.key == "copy_gbps" for busy in found.values() for g in busy.gaps):
        for busy in found.values():
            mine, other = (base, cand) if busy.role == "baseline" else (cand, base)
            busy.copy_agrees = (mine.values["copy_gbps"], other.values["copy_gbps"])
    return [found[r] for r in ("baseline", "candidate") if r in found]


def busy_runs(baseline: list[Any], candidate: Any) -> tuple[list[BusyRun], list[str]]:
    """The candidate run held against each baseline run (``RunSide``s, with their manifests): the runs that look
    busy, and notes on pairs that were not held against each other (another environment, no probes on one side).
    """
    found: list[BusyRun] = []
    notes: list[str] = []
    cand = run_probes(candidate.manifest)
    for run in baseline:
        base = run_probes(run.manifest)
        if base is None and cand is None:
            continue  # imported figures, records without a manifest: no probes to hold
        if base is None or cand is None:
            lacking = run.label if base is None else candidate.label
            notes.append(f"run health not compared: {lacking} records no peak or health probe")
            continue
        env_a, env_b = (run.manifest or {}).get("environment"), (candidate.manifest or {}).get("environment")
        if differences(env_a or {}, env_b or {}):
            notes.append(f"run health not compared: {run.label} was measured in another environment")
            continue
        found += held_against(base, cand, run.label, candidate.label)
    return found, notes
