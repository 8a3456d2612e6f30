"""The record: one per case (one per case and rank for DDP). The field names are a public contract.

Users' scripts and dashboards read these names, so they change only with a ``SCHEMA_VERSION`` bump and a
migration in ``harness.store.loader``. Units are in the names. Fields that do not apply are ``None`` (null in
JSON), never missing.

Units and meanings worth stating: ``samples_ms`` holds every timed step in milliseconds, in order, stalls included
(CUDA event time on a GPU, synced wall time on a CPU; ``wall_ms`` keeps the synced wall times beside CUDA events).
``throughput_img_s`` is THE throughput of a case, the one figure the summary table, the report and compare show:
images per second from the median step, ``batch_size * 1000 / step_ms_median`` (``harness.store.stats``; a stall
moves a median by at most one rank, where it would halve a total-time figure). ``throughput_ci95`` is the
bootstrap 95% interval of that same estimator (the steps resampled, the median of each resample, converted to
img/s). ``throughput_total_img_s`` is images over the total time of the timed steps, kept under its own name.
``warmup_reason`` says why warm-up ended (``stable``: step times stopped falling; ``stable_carried``: the case carried
the warm state of the case before it, of the same model and memory format, and its first window was flat;
``max_seconds`` or ``max_iters``: it was cut off before they did). ``macs_per_img`` is forward multiply-accumulates
per image (the unit of torchvision's ``_ops``; ``stated_gmacs`` is the 224-px ``_ops`` carried exactly to the
resolution, x the architecture's forward MACs there over those at 224 px, and ``ops_deviation`` is measured over
stated, minus one); ``flops_per_img`` is the FLOPs of one measured step per image (forward only for inference, forward
+ backward for training), the basis of ``achieved_tflops`` and ``mfu``. Memory is in MiB:
``peak_allocated_mib``/``peak_reserved_mib`` from the CUDA allocator, ``rss_peak_mib`` the process's peak resident
memory during the case. ``step_ms_mean`` is the mean step time (imported published figures have only this; their
``step_ms_median`` is null, and their ``throughput_img_s`` is the published figure, images over the total time of the
publisher's timed loop).

Noise: whether a case's figures can be trusted is recorded with them.

- ``stalled_steps``: how many timed steps the stall rule flagged. A step is a stall when it takes more than 3x the
  median step of its timed window and at least 5 ms more than that median (so jitter on micro-steps of a fast GPU
  is not a stall). A single-rank window runs on, within its bounds (``max_iters``, the case's timeout, and as
  long again as it had run), by as many steps as were stalled, so the case keeps its minimum of steps that are
  not stalls (``harness.measure.timing.time_steps``); DDP ranks run the one step count they agreed on, so their
  stalls are counted and marked but not replaced.
- ``contention`` (a nested group, all null where not measured), over the timed window: ``steal_pct`` (CPU steal
  time, % of the time of the cores this process may use), ``other_cpu_pct`` (CPU time used by other processes on
  those cores, %: their busy time from /proc/stat less steal and less this process's own user and system time
  from /proc/self/stat, over their total time), ``load_avg`` (1-minute load average at the end of the window),
  ``cpus`` (how many cores this process may use, its CPU affinity), and on a GPU read through NVML:
  ``gpu_other_processes`` (compute processes on the device other than this one), ``gpu_clock_events`` (clock-event
  reasons active during the window, by name) and ``gpu_temperature_c`` (the highest over the window).
- ``noisy``: true when the case was measured under contention or its samples hold stalls, false when it was
  measured and neither; null when it was not measured. ``noise`` holds the reasons, in words a user can act on
  ("other processes used 46% of the 2 cores this run may use", "2 stalled steps (> 3x the median 300 ms): 603 ms,
  10878 ms"). The contention rule (``harness.measure.contention``): steal of 5% or more, other processes at 20% or
  more of the cores this process may use, another compute process on the GPU, or a thermal or power-brake clock
  event during the window (``sw_thermal_slowdown``, ``hw_thermal_slowdown``, ``hw_slowdown``,
  ``hw_power_brake_slowdown``; the steady power cap, ``sw_power_cap``, is recorded but is how a loaded GPU runs,
  not contention). The CPU part is judged only over a window of at least 0.5 core-seconds: below that the
  kernel's tick accounting is too coarse to tell.

What is a valid record (``problems`` says what is wrong with one; the loader applies it to every line it reads, so
``report``, ``compare`` and ``export`` agree on what they skip): a JSON object whose ``case_id`` and ``model`` are
non-empty strings and whose ``status`` is one of ``STATUSES``; every other field of ``Record`` that it has is of
the type the field is declared with here (``int``: an integer, not a boolean; ``float``: a finite number;
``str``, ``bool``; ``list[float]``: a list of finite numbers; ``list[str]``; ``dict``), or null where the
declaration allows ``None`` (the nested groups ``telemetry``, ``numerics``, ``profile`` and ``contention`` may be
null: read as all null); ``rank`` is 0 or more and ``world_size`` 1 or more. Fields it lacks are read as null;
fields ``Record`` does not have are kept as they are.

Merge rules across ranks (DDP): each rank writes its own record with ``rank`` and ``world_size``. For the
run-level view, throughput is summed over ranks (``global_throughput_img_s``, kept on every rank's record),
step times are taken from the slowest rank, memory is kept per rank, and ``scaling_efficiency`` is global
throughput over ``world_size`` times the 1-rank throughput of the same case in the same run. Contention, stalls and
the noisy mark are each rank's own.

Schema history (``harness.store.loader.MIGRATIONS`` brings older records up): 1 named the interval ``ci95`` before
it was ``throughput_ci95`` (version 0); 2 made ``throughput_img_s`` the median-step figure (version 1's
total-time figure is now ``throughput_total_img_s``), added ``stalled_steps``, ``contention``, ``noisy`` and
``noise``, and keeps ``mfu`` at 1 or below (an achieved rate above the measured peak makes it null).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 2


class Status(StrEnum):
    """How a case ended, a closed set: ``ok`` (measured), ``oom`` (out of memory), ``error`` (it raised),
    ``timeout`` (over its deadline), ``skipped`` (cannot run here: an unsupported precision, ...), ``crashed`` (it
    killed its worker twice). A ``Status`` is a ``str``: it compares equal to, and is written as, its value."""

    OK = "ok"
    OOM = "oom"
    ERROR = "error"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    CRASHED = "crashed"


STATUSES = tuple(s.value for s in Status)
MODES = ("inference", "train")
PRECISIONS = ("fp32", "tf32", "amp_fp16", "amp_bf16")

TELEMETRY_FIELDS = (
    "power_avg_w",
    "power_max_w",
    "energy_j",
    "img_per_j",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "temperature_c",
    "utilization_pct",
    "memory_used_mib",
    "throttle_reasons",
)
NUMERICS_FIELDS = ("top1_agreement", "max_rel_err")
PROFILE_FIELDS = ("trace_dir", "top_ops", "error")
CONTENTION_FIELDS = (
    "steal_pct",
    "other_cpu_pct",
    "load_avg",
    "cpus",
    "gpu_other_processes",
    "gpu_clock_events",
    "gpu_temperature_c",
)


def _nulls(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: None for name in names}


@dataclass
class Record:
    """Everything measured for one case on one rank. See the module docstring for units and merge rules."""

    # identity
    schema_version: int = SCHEMA_VERSION
    run_id: str | None = None
    case_id: str | None = None
    suite: str | None = None
    model: str | None = None
    weights: str | None = None
    mode: str | None = None
    batch_size: int | None = None
    requested_batch_size: int | None = None
    resolution: int | None = None
    precision: str | None = None
    channels_last: bool | None = None
    compile: bool | None = None
    device: str | None = None
    device_name: str | None = None
    rank: int = 0
    world_size: int = 1
    num_threads: int | None = None
    tags: list[str] = field(default_factory=list)
    # outcome
    status: str = "ok"
    message: str | None = None
    started_at: str | None = None
    duration_s: float | None = None
    # timing
    warmup_iters: int | None = None
    warmup_s: float | None = None
    warmup_reason: str | None = None
    iters: int | None = None
    samples_ms: list[float] | None = None
    wall_ms: list[float] | None = None
    throughput_img_s: float | None = None
    step_ms_median: float | None = None
    step_ms_mean: float | None = None
    step_ms_p10: float | None = None
    step_ms_p90: float | None = None
    step_ms_p99: float | None = None
    throughput_ci95: list[float] | None = None
    throughput_total_img_s: float | None = None
    stalled_steps: int | None = None
    # noise: contention over the timed window, and whether the case is marked noisy and why
    noisy: bool | None = None
    noise: list[str] = field(default_factory=list)
    # distributed
    global_throughput_img_s: float | None = None
    scaling_efficiency: float | None = None
    # memory
    peak_allocated_mib: float | None = None
    peak_reserved_mib: float | None = None
    rss_peak_mib: float | None = None
    # ops
    flops_per_img: float | None = None
    macs_per_img: float | None = None
    stated_gmacs: float | None = None
    ops_deviation: float | None = None
    achieved_tflops: float | None = None
    mfu: float | None = None
    # flags the case ran under
    cudnn_benchmark: bool | None = None
    tf32_matmul: bool | None = None
    # nested groups
    telemetry: dict[str, Any] = field(default_factory=lambda: _nulls(TELEMETRY_FIELDS))
    numerics: dict[str, Any] = field(default_factory=lambda: _nulls(NUMERICS_FIELDS))
    profile: dict[str, Any] = field(default_factory=lambda: _nulls(PROFILE_FIELDS))
    contention: dict[str, Any] = field(default_factory=lambda: _nulls(CONTENTION_FIELDS))
    accuracy: dict[str, Any] | None = None
    #: Fields of a record read back that this class does not declare (a newer writer's, an importer's), written
    #: back as they were; not a field of the record itself.
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every field present."""
        out = asdict(self)
        out.update(out.pop("extra"))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """A record read back (a valid one, see ``problems``): declared fields by name, missing ones at their
        defaults, the nested groups filled to their full set of keys, others kept in ``extra``."""
        known = {k: v for k, v in data.items() if k in _DECLARED}
        for key in GROUPS:
            group = known.get(key)
            known[key] = {**_TEMPLATE[key], **group} if isinstance(group, dict) else dict(_TEMPLATE[key])
        return cls(**known, extra={k: v for k, v in data.items() if k not in _DECLARED})

    @property
    def ok(self) -> bool:
        """True when the case was measured."""
        return self.status == Status.OK


_DECLARED = frozenset(f.name for f in fields(Record)) - {"extra"}
RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record) if f.name != "extra")


_TEMPLATE = Record().to_dict()
#: The nested groups of a record: flattened to ``group.field`` columns by the loader.
GROUPS = ("telemetry", "numerics", "profile", "contention")


def normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill the fields a record lacks with nulls, so every loaded record has the full set of keys."""
    out = dict(_TEMPLATE)
    out["tags"], out["noise"] = [], []
    out.update(raw)
    for key in GROUPS:
        group = raw.get(key)
        out[key] = {**_TEMPLATE[key], **group} if isinstance(group, dict) else dict(_TEMPLATE[key])
    return out


#: The fields a valid record must have a value in (see the module docstring), beyond the declared types.
REQUIRED = ("case_id", "model", "status")


def kind_of(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages ("a number", "an array", "null", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _all_numbers(values: list[Any]) -> bool:
    """True when every value is a finite number (not a boolean). Step-time lists are long and every record has
    them: plain ints and floats whose sum is finite are all finite, checked without a call per value; anything
    else (a NaN, an infinity, a sum that overflows, another type) is checked value by value."""
    if set(map(type, values)) <= {int, float} and math.isfinite(sum(values)):
        return True
    return all(_is_number(x) for x in values)


#: Declared base type -> (test of a value, what the type is called in a message).
_CHECKS = {
    "int": (_is_int, "an integer"),
    "float": (lambda v: (type(v) is float and math.isfinite(v)) or type(v) is int or _is_number(v), "a finite number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "list[float]": (lambda v: isinstance(v, list) and _all_numbers(v), "a list of finite numbers"),
    "list[str]": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "an object"),
}


def _field_rules() -> dict[str, tuple[Any, str, bool]]:
    """name -> (test, type in words, null allowed), read from ``Record``'s declarations."""
    rules = {}
    for f in fields(Record):
        if f.name == "extra":
            continue
        parts = [p.strip() for p in str(f.type).split("|")]
        nullable = "None" in parts or f.name in GROUPS
        base = [p for p in parts if p != "None"]
        if len(base) != 1 or base[0] not in _CHECKS:
            raise TypeError(f"Record.{f.name}: no validity rule for the declared type {f.type!r}")
        test, words = _CHECKS[base[0]]
        rules[f.name] = (test, words, nullable)
    return rules


_RULES = _field_rules()


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def problems(record: Any) -> list[str]:
    """What makes ``record`` (one line of a records file, migrated to this schema) not a valid record; empty when
    it is valid. The rule is stated in the module docstring."""
    if not isinstance(record, dict):
        return [f"it is {kind_of(record)}, not an object"]
    out: list[str] = []
    for name in REQUIRED:
        value = record.get(name)
        if value is None or value == "":
            out.append(f"{name} is missing" if name not in record else f"{name} is {_shown(value)}")
    status = record.get("status")
    if isinstance(status, str) and status and status not in STATUSES:
        out.append(f"status {_shown(status)} is not one of {', '.join(STATUSES)}")
    for name, (test, words, nullable) in _RULES.items():
        if name not in record:
            continue
        value = record[name]
        if value is None:
            if not nullable and name not in REQUIRED:
                out.append(f"{name} is null, not {words}")
            continue
        if not test(value):
            out.append(f"{name} is {_shown(value)} ({kind_of(value)}), not {words}")
    for name, least in (("rank", 0), ("world_size", 1)):
        value = record.get(name)
        if _is_int(value) and value < least:
            out.append(f"{name} is {value}, not {least} or more")
    return out
