"""One benchmark case: what to build, how to run it, and its stable id. Imports neither pydantic nor torch.

A ``Case`` is what the runner receives after a suite is expanded: every setting resolved, nothing optional left
to guess. Cases round-trip through JSON (``to_dict`` / ``from_dict``) so a worker, a resumed run or a report can
rebuild exactly what was asked for.

The case id joins results across nights and machines, so its rule is part of the public contract::

    {model}/{mode}/bs{batch_size}/{precision}[/cl][/r{resolution}][/compile]

``/cl`` is added when ``channels_last`` is true, ``/r{resolution}`` when the resolution is not 224, and
``/compile`` when the model is compiled, always in that order (``resnet50/train/bs256/amp_bf16/cl``,
``resnet18/inference/bs2/fp32/cl/r64``). Device, weights, implementation and the warm-up and measurement
settings are not part of the id: the same case measured on two machines, or with tuned timing settings, joins.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from harness.errors import SuiteError
from harness.store.record import MODES, PRECISIONS
from harness.suite.bounds import MAX_BATCH_SIZE, MAX_REPEATS, MAX_RESOLUTION, MAX_SECONDS, MAX_SEED, MAX_STEPS
from harness.suite.brief import brief
from harness.zoo.catalog import MIN_RESOLUTION, MODEL_NAMES, get_entry

IMPLS = ("harness", "torchvision")
#: Valid ``device`` spellings; ``cuda:N`` stands for any device index.
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")
#: A weights value that names a published entry rather than a file (``V1``, ``IMAGENET1K_V2``).
WEIGHTS_TAG_RE = re.compile(r"(IMAGENET1K_)?V\d+")
#: The axes a suite's matrix may vary, in id order; each may also stand in ``defaults`` as one value.
AXES = ("model", "mode", "batch_size", "resolution", "precision", "channels_last", "compile")
DEFAULT_RESOLUTION = 224


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool): .inf and .nan are no duration, and JSON cannot hold them."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # math.isfinite(10**400) would overflow


def _part(value: Any, width: int = 40) -> str:
    """A value as one part of a case label: text as it is when short, anything else bounded by ``brief``."""
    return value if isinstance(value, str) and len(value) <= width else brief(value, width)


def _fail(where: str, problems: list[str]) -> None:
    if problems:
        error = SuiteError(f"{where}: " + "; ".join(problems))
        error.problems = problems  # for expansion, which reports a problem shared by many cases once
        raise error


@dataclass(frozen=True)
class Warmup:
    """Warm-up settings: at least ``min_iters`` steps, then on until the last ``window`` step times stop falling
    by more than ``tolerance`` (a fraction, 0.02 = 2 %), but never past ``max_iters`` steps or ``max_seconds``."""

    min_iters: int = 5
    max_iters: int = 200
    max_seconds: float = 30.0
    window: int = 5
    tolerance: float = 0.02

    def __post_init__(self) -> None:
        problems = []
        for name in ("min_iters", "max_iters", "window"):
            if not _is_int(getattr(self, name)) or not 0 <= getattr(self, name) <= MAX_STEPS:
                problems.append(f"{name} must be an integer from 0 to {MAX_STEPS}, got {brief(getattr(self, name))}")
        for name, most in (("max_seconds", MAX_SECONDS), ("tolerance", 1)):
            if not _is_number(getattr(self, name)) or not 0 <= getattr(self, name) <= most:
                problems.append(f"{name} must be a finite number from 0 to {most}, got {brief(getattr(self, name))}")
        if not problems:
            if self.window < 2:
                problems.append(f"window must be at least 2 step times to see a trend, got {self.window}")
            if self.max_iters < self.min_iters:
                problems.append(f"max_iters ({self.max_iters}) is below min_iters ({self.min_iters})")
        _fail("warmup", problems)


@dataclass(frozen=True)
class Measure:
    """Measurement settings: time steps until both ``min_seconds`` and ``min_iters`` are reached (stopping at
    ``max_iters``), and do that ``repeats`` times; every step time is kept."""

    min_seconds: float = 2.0
    min_iters: int = 20
    max_iters: int = 10000
    repeats: int = 1

    def __post_init__(self) -> None:
        problems = []
        if not _is_number(self.min_seconds) or not 0 <= self.min_seconds <= MAX_SECONDS:
            problems.append(
                f"min_seconds must be a finite number from 0 to {MAX_SECONDS}, got {brief(self.min_seconds)}"
            )
        for name, most in (("min_iters", MAX_STEPS), ("max_iters", MAX_STEPS), ("repeats", MAX_REPEATS)):
            if not _is_int(getattr(self, name)) or not 1 <= getattr(self, name) <= most:
                problems.append(f"{name} must be an integer from 1 to {most}, got {brief(getattr(self, name))}")
        if not problems and self.max_iters < self.min_iters:
            problems.append(f"max_iters ({self.max_iters}) is below min_iters ({self.min_iters})")
        _fail("measure", problems)


def check_weights(model: str, weights: str | None) -> str | None:
    """The problem with ``weights`` for ``model``, or None: a tag must name an entry the model has (resnet18 has
    only V1); anything else is a file path, checked when the case runs."""
    if weights is None or not WEIGHTS_TAG_RE.fullmatch(weights) or model not in MODEL_NAMES:
        return None
    tags = [w.tag.removeprefix("IMAGENET1K_") for w in get_entry(model).weights]
    if weights.removeprefix("IMAGENET1K_") not in tags:
        return f"{model} has no weights {brief(weights)}; it has: {', '.join(tags)} (or give a checkpoint path)"
    return None


@dataclass(frozen=True, kw_only=True)
class Case:
    """One fully resolved benchmark case. ``batch_size`` is per device (per rank under DDP); ``resolution`` is
    the square input side in pixels; ``timeout_s`` is the wall-clock limit of the whole case (None: no limit);
    ``weights`` None means random initialisation. Construction checks every value and raises ``SuiteError``."""

    model: str
    mode: str = "inference"
    batch_size: int
    resolution: int = DEFAULT_RESOLUTION
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"
    weights: str | None = None
    impl: str = "harness"
    warmup: Warmup = field(default_factory=Warmup)
    measure: Measure = field(default_factory=Measure)
    timeout_s: float | None = 600.0
    oom_reduce: bool = False
    tags: tuple[str, ...] = ()
    profile: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.tags, list):
            object.__setattr__(self, "tags", tuple(self.tags))
        problems = []

        def choice(name: str, choices: tuple[str, ...]) -> None:
            if getattr(self, name) not in choices:
                problems.append(f"{name} {brief(getattr(self, name))} is not one of {', '.join(choices)}")

        choice("model", MODEL_NAMES)
        choice("mode", MODES)
        choice("precision", PRECISIONS)
        choice("impl", IMPLS)
        if not isinstance(self.device, str) or not DEVICE_RE.fullmatch(self.device):
            problems.append(f"device {brief(self.device)} is not one of {', '.join(DEVICES)}")
        if not _is_int(self.batch_size) or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            problems.append(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, got {brief(self.batch_size)}")
        if not _is_int(self.resolution) or not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION:
            problems.append(
                f"resolution must be an integer from {MIN_RESOLUTION} to {MAX_RESOLUTION}, got {brief(self.resolution)}"
            )
        elif self.mode == "train" and _is_int(self.batch_size) and self.batch_size == 1 and self.resolution <= 32:
            # Five stride-2 stages take 32 px to 1x1: training-mode BatchNorm then sees one value per channel.
            problems.append(
                f"training at batch_size 1 and resolution {self.resolution} leaves a 1x1 feature map, where BatchNorm "
                "in training mode has one value per channel and fails; use batch_size >= 2 or resolution >= 33"
            )
        for name in ("channels_last", "compile", "oom_reduce", "profile"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {brief(getattr(self, name))}")
        if self.timeout_s is not None and (not _is_number(self.timeout_s) or not 0 < self.timeout_s <= MAX_SECONDS):
            problems.append(
                f"timeout_s must be a finite number > 0 and <= {MAX_SECONDS}, or null, got {brief(self.timeout_s)}"
            )
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            problems.append(f"seed must be an integer from 0 to {MAX_SEED}, got {brief(self.seed)}")
        if self.weights is not None and not isinstance(self.weights, str):
            problems.append(f"weights must be a tag (V1, V2) or a path, got {brief(self.weights)}")
        elif problem := check_weights(self.model, self.weights):
            problems.append(problem)
        if not isinstance(self.tags, tuple) or not all(isinstance(t, str) for t in self.tags):
            problems.append(f"tags must be strings, got {brief(self.tags)}")
        if not isinstance(self.warmup, Warmup) or not isinstance(self.measure, Measure):
            problems.append("warmup and measure must be Warmup and Measure instances")
        _fail(f"case {_part(self.model)}/{_part(self.mode)}/bs{_part(self.batch_size)}", problems)

    @property
    def id(self) -> str:
        """The stable, readable case id (rule in the module docstring), e.g. ``resnet50/train/bs256/amp_bf16/cl``."""
        parts = [self.model, self.mode, f"bs{self.batch_size}", self.precision]
        if self.channels_last:
            parts.append("cl")
        if self.resolution != DEFAULT_RESOLUTION:
            parts.append(f"r{self.resolution}")
        if self.compile:
            parts.append("compile")
        return "/".join(parts)

    def replace(self, **changes: Any) -> Case:
        """A copy with ``changes`` applied and checked (for example a smaller ``batch_size`` after an OOM)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field plus ``id``; ``Case.from_dict`` reads it back."""
        data = {"id": self.id, **asdict(self)}
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        """Rebuild a case from ``to_dict`` output. Unknown keys, missing required keys or bad values raise
        ``SuiteError``; an ``id`` key is ignored (it is derived), and absent optional keys take their defaults."""
        if not isinstance(data, dict):
            raise SuiteError(f"a case must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(_part(k) for k in set(data) - known - {"id"})
        if unknown:
            shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            raise SuiteError(f"unknown case keys {shown}; valid keys: {', '.join(sorted(known))}")
        missing = [k for k in ("model", "batch_size") if k not in data]
        if missing:
            raise SuiteError(f"a case needs {' and '.join(missing)}")
        values = {k: v for k, v in data.items() if k != "id"}
        for key, kind in (("warmup", Warmup), ("measure", Measure)):
            if isinstance(values.get(key), dict):
                sub_known = {f.name for f in fields(kind)}
                bad = sorted(_part(k) for k in set(values[key]) - sub_known)[:10]
                if bad:
                    raise SuiteError(f"unknown {key} keys {', '.join(bad)}; valid keys: {', '.join(sorted(sub_known))}")
                values[key] = kind(**values[key])
        if isinstance(values.get("tags"), list):
            values["tags"] = tuple(values["tags"])
        return cls(**values)


def case_label(values: dict[str, Any]) -> str:
    """The id a case with ``values`` would have (the rule in the module docstring), for values that may not make
    a valid case: every part is bounded, so a message can name the case whatever was written."""
    parts = [_part(values.get("model")), _part(values.get("mode")), f"bs{_part(values.get('batch_size'))}"]
    parts.append(_part(values.get("precision")))
    if values.get("channels_last") is True:
        parts.append("cl")
    if values.get("resolution", DEFAULT_RESOLUTION) != DEFAULT_RESOLUTION:
        parts.append(f"r{_part(values.get('resolution'))}")
    if values.get("compile") is True:
        parts.append("compile")
    return "/".join(parts)


def matches(case: Case, matcher: dict[str, list[Any]]) -> bool:
    """True when ``case`` has, for every key of ``matcher``, one of the listed values (a partial case matcher,
    as written in a suite's ``exclude`` and ``profile.cases``; keys are axis names)."""
    for key, values in matcher.items():
        value = getattr(case, key)
        # True == 1 in Python; compare types too so `compile: [1]` can never match a bool.
        if not any(type(value) is type(v) and value == v for v in values):
            return False
    return True
