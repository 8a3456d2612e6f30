"""The suite file format as typed models: every key, its type, its choices and its description.

The models reject unknown keys and do no silent coercion (a quoted ``"64"`` is not a batch size; YAML's
``true`` is not 1), so a typo stops a suite before anything runs. ``harness schema`` prints their JSON Schema
for editors. Setting models (``defaults``, ``include`` entries, ``warmup``, ``measure``) are partial: a key left
out takes the value from the level above (built-in defaults < ``defaults`` < matrix < ``include`` entry), which
``harness.suite.expand`` resolves into ``Case`` objects.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from harness.store.record import MODES, PRECISIONS
from harness.suite.bounds import (
    BOUNDS_TEXT,
    MAX_ACCURACY_IMAGES,
    MAX_BATCH_SIZE,
    MAX_CASES,
    MAX_REPEATS,
    MAX_RESOLUTION,
    MAX_RESTARTS,
    MAX_SECONDS,
    MAX_SEED,
    MAX_STEPS,
    MAX_WORLD_SIZE,
    WARN_CASES,
)
from harness.suite.case import DEVICE_RE, DEVICES, IMPLS, Measure, Warmup
from harness.zoo.catalog import MIN_RESOLUTION, MODEL_NAMES

STRATEGIES = ("sweep", "ddp")
#: Valid choices per key name, for error messages ("valid choices: ...").
CHOICES: dict[str, tuple[str, ...]] = {
    "model": MODEL_NAMES,
    "mode": MODES,
    "precision": PRECISIONS,
    "impl": IMPLS,
    "device": DEVICES,
    "strategy": STRATEGIES,
}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
BASELINE_PATTERN = r"^last-[1-9][0-9]*$"

ModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]
Mode = Literal[MODES]  # type: ignore[valid-type]
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]
Impl = Literal[IMPLS]  # type: ignore[valid-type]
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)]
Resolution = Annotated[int, Field(ge=MIN_RESOLUTION, le=MAX_RESOLUTION)]
Steps = Annotated[int, Field(ge=0, le=MAX_STEPS)]
PositiveSteps = Annotated[int, Field(ge=1, le=MAX_STEPS)]
WorldSize = Annotated[int, Field(ge=1, le=MAX_WORLD_SIZE)]


def _device(value: Any) -> Any:
    if isinstance(value, str) and not DEVICE_RE.fullmatch(value):
        raise PydanticCustomError("device", "unknown device")
    return value


Device = Annotated[
    str, BeforeValidator(_device), WithJsonSchema({"type": "string", "pattern": r"^(auto|cpu|cuda(:\d+)?)$"})
]


def _scalar_as_list(value: Any) -> Any:
    return value if isinstance(value, (list, tuple, dict)) else [value]


def _axis(item: Any, item_schema: dict) -> Any:
    """A matrix or matcher axis: a list of at least one value, or one value standing for a one-element list."""
    schema = {"anyOf": [item_schema, {"type": "array", "items": item_schema, "minItems": 1}]}
    return Annotated[list[item], BeforeValidator(_scalar_as_list), Field(min_length=1), WithJsonSchema(schema)]


def _enum(choices: tuple[str, ...]) -> dict:
    return {"type": "string", "enum": list(choices)}


ModelAxis = _axis(ModelName, _enum(MODEL_NAMES))
ModeAxis = _axis(Mode, _enum(MODES))
BatchSizeAxis = _axis(BatchSize, {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE})
ResolutionAxis = _axis(Resolution, {"type": "integer", "minimum": MIN_RESOLUTION, "maximum": MAX_RESOLUTION})
PrecisionAxis = _axis(Precision, _enum(PRECISIONS))
BoolAxis = _axis(bool, {"type": "boolean"})


class _Model(BaseModel):
    # allow_inf_nan=False: .inf and .nan are refused everywhere (a manifest holding Infinity is not JSON).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _d(text: str, default: Any = ...) -> Any:
    """A field that is absent unless given; its description states the value used when it is absent."""
    return Field(None, description=text if default is ... else f"{text} Default: {default}.")


class WarmupSpec(_Model):
    """Warm-up before timing: at least min_iters steps, then on until the last `window` step times stop falling
    by more than `tolerance`, capped by max_iters and max_seconds."""

    min_iters: Steps = _d(f"Fewest warm-up steps, 0 to {MAX_STEPS}.", Warmup.min_iters)
    iters: Steps = _d("Same as min_iters (the shorter spelling); give one or the other.")
    max_iters: Steps = _d(f"Most warm-up steps, stable or not, 0 to {MAX_STEPS}.", Warmup.max_iters)
    max_seconds: Annotated[float, Field(gt=0, le=MAX_SECONDS)] = _d(
        f"Most warm-up time in seconds: a finite number > 0 and <= {MAX_SECONDS} (a week).", Warmup.max_seconds
    )
    window: Annotated[int, Field(ge=2, le=MAX_STEPS)] = _d(
        "How many recent step times the stability test looks at.", Warmup.window
    )
    tolerance: Annotated[float, Field(ge=0, lt=1)] = _d(
        "Warm-up ends when the window's step times fall by less than this fraction (0.02 = 2 %), >= 0 and < 1.",
        Warmup.tolerance,
    )

    @model_validator(mode="before")
    @classmethod
    def _iters_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "iters" in data:
            if "min_iters" in data:
                raise PydanticCustomError("alias_conflict", "give min_iters or iters, not both (they are the same)")
            data = {("min_iters" if k == "iters" else k): v for k, v in data.items()}
        return data


class MeasureSpec(_Model):
    """Timed phase: steps until both min_seconds and min_iters are reached (at most max_iters), `repeats` times."""

    min_seconds: Annotated[float, Field(ge=0, le=MAX_SECONDS)] = _d(
        f"Least timed seconds per repeat: a finite number >= 0 (0: min_iters alone decides) and <= {MAX_SECONDS}.",
        Measure.min_seconds,
    )
    min_iters: PositiveSteps = _d(f"Fewest timed steps per repeat, 1 to {MAX_STEPS}.", Measure.min_iters)
    max_iters: PositiveSteps = _d(f"Most timed steps per repeat, 1 to {MAX_STEPS}.", Measure.max_iters)
    repeats: Annotated[int, Field(ge=1, le=MAX_REPEATS)] = _d(
        f"How many times the timed phase is repeated, 1 to {MAX_REPEATS}.", Measure.repeats
    )


class DefaultsSpec(_Model):
    """Settings for every case; a matrix axis or an include entry overrides them."""

    model: ModelName = _d("Model name from the zoo (required here, in the matrix or in each include entry).")
    mode: Mode = _d("inference (forward under inference_mode) or train (forward, loss, backward, step).", "inference")
    batch_size: BatchSize = _d(
        f"Images per step per device, 1 to {MAX_BATCH_SIZE} (required here, in the matrix or in each include)."
    )
    resolution: Resolution = _d(
        f"Square input side in pixels, {MIN_RESOLUTION} to {MAX_RESOLUTION} (the largest every model can train "
        "one image at).",
        224,
    )
    precision: Precision = _d("fp32, tf32 (TF32 matmuls on CUDA), amp_fp16 or amp_bf16 (autocast).", "fp32")
    channels_last: bool = _d("Model and input in channels_last memory format.", "false")
    compile: bool = _d("Wrap the model in torch.compile.", "false")
    device: Device = _d("auto (first CUDA device, else CPU), cpu, cuda or cuda:N.", "auto")
    weights: str | None = _d(
        "null (random init), a weights tag (V1, V2) or a checkpoint path (relative to the suite file).", "null"
    )
    impl: Impl = _d("harness (the harness's own models) or torchvision (needs torchvision).", "harness")
    warmup: WarmupSpec = Field(None, description="Warm-up settings; keys left out keep their defaults.")
    measure: MeasureSpec = Field(None, description="Measurement settings; keys left out keep their defaults.")
    timeout_s: Annotated[float, Field(gt=0, le=MAX_SECONDS)] | None = _d(
        f"Wall-clock limit of one case in seconds, a finite number > 0 and <= {MAX_SECONDS} (a week); null: none.",
        600,
    )
    oom_reduce: bool = _d("On out-of-memory, retry with half the batch size (recorded as such).", "false")
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = _d(
        f"Seed of the synthetic inputs and the random init, 0 to {MAX_SEED}.", 0
    )


class IncludeSpec(DefaultsSpec):
    """One extra case: keys left out come from `defaults` (the matrix is not consulted). A case with the same
    id as a matrix case replaces it in place."""

    tags: list[str] = _d("Tags added to this case's (besides the suite's).", "[]")


class _Axes(_Model):
    model: ModelAxis = _d("Model names.")
    mode: ModeAxis = _d("Modes: inference, train.")
    batch_size: BatchSizeAxis = _d(f"Batch sizes (per device), 1 to {MAX_BATCH_SIZE}.")
    resolution: ResolutionAxis = _d(f"Input resolutions in pixels, {MIN_RESOLUTION} to {MAX_RESOLUTION}.")
    precision: PrecisionAxis = _d("Precisions: fp32, tf32, amp_fp16, amp_bf16.")
    channels_last: BoolAxis = _d("Memory formats: false, true.")
    compile: BoolAxis = _d("torch.compile off (false) or on (true).")

    @model_validator(mode="after")
    def _not_empty(self) -> Any:
        if not self.model_fields_set:
            raise PydanticCustomError("empty", self.EMPTY)
        return self

    EMPTY: ClassVar[str] = "names no key"


class MatrixSpec(_Axes):
    """Axes to cross: every combination becomes a case. A single value stands for a one-element list; an axis
    left out takes its value from `defaults`. The number of cases is bounded (see the suite's `matrix` key)."""

    EMPTY: ClassVar[str] = "the matrix names no axis; give at least one of model, mode, batch_size, ..."


class MatcherSpec(_Axes):
    """A partial case: matches every case that has, for each key given, one of the values given."""

    EMPTY: ClassVar[str] = "an empty matcher matches every case; name at least one key (model, batch_size, ...)"


def _nproc(value: Any) -> Any:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WORLD_SIZE):
        return value
    raise PydanticCustomError("nproc", "must be a positive integer or auto")


class LaunchSpec(_Model):
    """How the cases are spread over processes and devices."""

    strategy: Literal[STRATEGIES] = Field(  # type: ignore[valid-type]
        "sweep", description="sweep: cases sharded across ranks, one device each; ddp: all ranks train each case."
    )
    nproc_per_node: Annotated[WorldSize | Literal["auto"], BeforeValidator(_nproc)] = Field(
        1,
        description=f"Worker processes per node: 1 to {MAX_WORLD_SIZE}, or auto (one per visible GPU, else 1).",
    )
    world_sizes: list[WorldSize] | None = Field(
        None, min_length=1, description="ddp only: run every case at each of these world sizes (scaling curve)."
    )
    one_rank_ddp: bool = Field(
        False,
        description=(
            "ddp only: train the 1-rank unit in DistributedDataParallel over a one-rank group instead of the bare "
            "model, so one device exercises the whole DDP path (its scaling baseline then includes DDP's cost)."
        ),
    )
    nnodes: WorldSize = Field(1, description=f"Number of nodes (torchrun --nnodes), 1 to {MAX_WORLD_SIZE}.")
    max_restarts: Annotated[int, Field(ge=0, le=MAX_RESTARTS)] = Field(
        3, description="Restarts of a crashed worker group; restarted workers resume where they stopped."
    )

    @field_validator("world_sizes")
    @classmethod
    def _world_sizes(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            if info.data.get("strategy", "sweep") != "ddp":
                raise PydanticCustomError(
                    "ddp_only", "world_sizes applies to strategy ddp only; set strategy: ddp or remove world_sizes"
                )
            if len(set(value)) != len(value):
                raise PydanticCustomError("duplicates", "a world size is listed twice")
        return value

    @field_validator("one_rank_ddp")
    @classmethod
    def _one_rank_ddp(cls, value: Any, info: ValidationInfo) -> Any:
        if value and info.data.get("strategy", "sweep") != "ddp":
            raise PydanticCustomError(
                "ddp_only", "one_rank_ddp applies to strategy ddp only; set strategy: ddp or remove one_rank_ddp"
            )
        return value


class ProfileSpec(_Model):
    """Cases to trace with torch.profiler (one trace per rank, plus a top-ops table in the record)."""

    cases: list[MatcherSpec] = Field(default_factory=list, description="Partial cases; every match is profiled.")


class TelemetrySpec(_Model):
    """GPU telemetry sampled through NVML during the timed phase (absent NVML: fields are null)."""

    nvml: bool = Field(True, description="Sample power, clocks, temperature and utilisation through NVML.")
    interval_ms: Annotated[int, Field(ge=1, le=60_000)] = Field(
        50, description="Sampling interval in milliseconds, 1 to 60000."
    )


class RegressionSpec(_Model):
    """What `harness compare` measures this suite's runs against."""

    baseline: Annotated[str, Field(min_length=1)] = Field(
        "last-7", description="last-N (the previous N runs of this suite with a matching fingerprint) or a run path."
    )
    threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        0.05, description="Smallest relative change reported as a regression (0.05 = 5 %), > 0 and <= 1."
    )

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: str) -> str:
        if value.startswith("last") and not re.fullmatch(BASELINE_PATTERN, value):
            raise PydanticCustomError("baseline", "write last-N with N >= 1 (for example last-7), or give a run path")
        return value


class AccuracySpec(_Model):
    """Top-1/top-5 accuracy on a local ImageNet-style validation folder (cases with weights only)."""

    data: Annotated[str, Field(min_length=1)] = Field(description="Validation folder (relative to the suite file).")
    limit: Annotated[int, Field(ge=1, le=MAX_ACCURACY_IMAGES)] | None = Field(
        None, description="Evaluate at most this many images."
    )


class SuiteSpec(_Model):
    """A benchmark suite: a matrix of cases and how to run, profile and compare them."""

    model_config = ConfigDict(
        title="harness suite",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "description": "A benchmark suite: a matrix of cases and how to run, profile and compare them. "
            + BOUNDS_TEXT,
        },
        allow_inf_nan=False,
    )

    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = Field(
        None, description="Suite name, used in results/<name>/. Default: the file name without .yaml."
    )
    description: str = Field("", description="What the suite is for.")
    tags: list[str] = Field(default_factory=list, description="Tags carried by every case.")
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec, description="Settings for every case.")
    matrix: MatrixSpec | None = Field(
        None,
        description=(
            f"Axes crossed into cases. Above {WARN_CASES:,} cases validate and run warn, with the count; the "
            f"matrix's combinations (before exclude) plus the include entries may be at most {MAX_CASES:,}, a "
            "cap that --max-cases N on harness validate and harness run lifts."
        ),
    )
    exclude: list[MatcherSpec] = Field(default_factory=list, description="Matrix cases to drop (partial cases).")
    include: list[IncludeSpec] = Field(default_factory=list, description="Extra cases, added after exclude.")
    launch: LaunchSpec = Field(default_factory=LaunchSpec, description="Processes, devices and strategy.")
    profile: ProfileSpec = Field(default_factory=ProfileSpec, description="Cases to trace with torch.profiler.")
    telemetry: TelemetrySpec = Field(default_factory=TelemetrySpec, description="NVML sampling.")
    regression: RegressionSpec = Field(default_factory=RegressionSpec, description="Baseline and threshold.")
    accuracy: AccuracySpec | None = Field(None, description="Optional accuracy check on local data.")


def _walk(loc: tuple) -> tuple[Any, Any] | None:
    """(model, field info) at ``loc`` (a pydantic error location) from SuiteSpec down, or None when a key is
    unknown; the model is None past a leaf, the info None at the top."""
    model: Any = SuiteSpec
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        model = _model_in(info.annotation)
    return model, info


def field_names(loc: tuple) -> list[str] | None:
    """The valid keys of the mapping at ``loc`` (a pydantic error location), or None when it is not a model."""
    found = _walk(loc)
    fields = getattr(found[0], "model_fields", None) if found else None
    return [n for n in fields if n != "iters"] if fields else None


def _model_in(annotation: Any) -> Any:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a suite file. Keys whose absence means "inherit" carry no
    ``default: null`` (which editors would offer as a value); their descriptions state the effective default."""
    schema = SuiteSpec.model_json_schema()

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                for prop in props.values():
                    if isinstance(prop, dict) and prop.get("default", 0) is None and not _nullable(prop):
                        del prop["default"]
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(schema)
    return schema


def _nullable(prop: dict) -> bool:
    return prop.get("type") == "null" or any(o.get("type") == "null" for o in prop.get("anyOf", ()))


def value_range(loc: tuple) -> str | None:
    """The valid range of the number at ``loc`` (a pydantic error location) from its field's bounds, such as
    ``> 0`` or ``>= 0 and < 1``; None when the field has no bounds or is not found."""
    from typing import get_args

    import annotated_types as at

    walked = _walk(loc)
    info = walked[1] if walked else None
    if info is None:
        return None
    found: list[Any] = []
    pending: list[Any] = [info.annotation, *info.metadata]
    while pending:
        item = pending.pop()
        if isinstance(item, (at.Gt, at.Ge, at.Lt, at.Le)):
            found.append(item)
        elif hasattr(item, "metadata") and isinstance(item.metadata, list):  # a FieldInfo inside Annotated
            pending.extend(item.metadata)
        else:
            pending.extend(a for a in get_args(item) if not isinstance(a, (str, int, float)))
    words = []
    for kind, sign, attr in ((at.Gt, ">", "gt"), (at.Ge, ">=", "ge"), (at.Lt, "<", "lt"), (at.Le, "<=", "le")):
        words += [f"{sign} {getattr(b, attr)}" for b in found if isinstance(b, kind)]
    return " and ".join(dict.fromkeys(words)) or None
