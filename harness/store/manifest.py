"""The run's manifest, typed: what a run is (suite, cases, environment), how it was launched, what each rank did,
and how it ended. ``manifest.json`` in the run folder is this object written by ``RunFolder.write_manifest``.

Like the record, the manifest's field names are a public contract (scripts and dashboards read them), so they
change only with a ``SCHEMA_VERSION`` bump. A manifest of another writer (an importer's ``source``, ``importer``,
``origin``, ...) keeps the fields this class does not declare in ``extra`` and writes them back unchanged.

Optional fields that were never set (None) are left out of the file, as they always were: readers use ``.get``.

The device's state is recorded with the run (``harness.measure.peak``): ``health`` holds the peak probe taken at the
start of the run and the one taken at its end, ``{"start": PROBE, "end": PROBE | None, "spread": {key: fraction}}``
(a probe is ``measure_peak``'s result with ``at``, its UTC time; ``end`` is null when the run stopped before it), and
``peak`` the best of the two, key by key: what the records' MFU is computed against. A distributed run keeps each
rank's in ``ranks[r].peak`` and ``ranks[r].health``, and rank 0's at the top level too. Both are null where no peak
could be measured (an old GPU, or the CUDA test double).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, ClassVar

from harness.store.record import SCHEMA_VERSION


def utc_now() -> str:
    """The current UTC time as ISO 8601 with seconds and a trailing Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunStatus(StrEnum):
    """How a run stands: ``running`` while measured; ``complete`` when every case has a record; ``incomplete`` when
    it ended with cases missing; ``interrupted`` by the user (resume it); ``failed`` when a worker, the device or the
    records file gave out (resume it after fixing what the ``failure`` field says)."""

    RUNNING = "running"
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


#: The exit code of ``harness run`` for each way a run ends (a complete run that measured nothing is 1).
EXIT_CODES = {RunStatus.COMPLETE: 0, RunStatus.INTERRUPTED: 130}


def exit_code(status: str) -> int:
    """0 for a complete run, 130 for an interrupted one, 1 otherwise."""
    return EXIT_CODES.get(status, 1)


class _Typed:
    """A dataclass written as a JSON object: declared fields by name, undeclared keys kept in ``extra``."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset()

    extra: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]
        known = {k: v for k, v in data.items() if k in names}
        obj = cls(**{**cls._decode(known), "extra": {k: v for k, v in data.items() if k not in names}})
        return obj

    @classmethod
    def _decode(cls, known: dict[str, Any]) -> dict[str, Any]:
        return known

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.name not in self.ALWAYS:
                continue
            out[f.name] = value.to_dict() if isinstance(value, _Typed) else value
        out.update(self.extra)
        return out


@dataclass
class LaunchInfo(_Typed):
    """How the workers of a run were started (absent for an inline run): ``launcher`` is ``harness`` (``harness
    run --nproc-per-node``) or ``torchrun`` (a bare ``torchrun -m harness.worker``)."""

    launcher: str | None = None
    strategy: str | None = None
    world_sizes: list[int] | None = None
    nproc_per_node: int | None = None
    nnodes: int | str | None = None
    max_restarts: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RankInfo(_Typed):
    """What one rank of a distributed run did: where it ran, its peak and health probes, its share, and its counts at
    the end."""

    host: str | None = None
    pid: int | None = None
    local_rank: int | None = None
    device: str | None = None
    num_threads: int | None = None
    peak: dict[str, Any] | None = None
    health: dict[str, Any] | None = None
    assigned: int | None = None
    cases: list[str] | None = None
    records: int | None = None
    counts: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest(_Typed):
    """One run's manifest. See the module docstring."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {
            "schema_version",
            "run_id",
            "suite",
            "environment",
            "started_at",
            "finished_at",
            "status",
            "counts",
            "peak",
            "health",
        }
    )

    schema_version: int = SCHEMA_VERSION
    run_id: str | None = None
    suite: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    status: str = RunStatus.RUNNING
    counts: dict[str, int] = field(default_factory=dict)
    peak: dict[str, Any] | None = None
    health: dict[str, Any] | None = None
    cases: list[dict[str, Any]] | None = None
    case_ids: list[str] | None = None
    filter: list[str] | None = None
    world_size: int | None = None
    launch: LaunchInfo | None = None
    strategy: str | None = None
    num_threads: int | None = None
    ranks: dict[str, RankInfo] | None = None
    restarts: int | None = None
    ddp_world_sizes: list[int] | None = None
    dropped_world_sizes: list[int] | None = None
    resumed_at: list[str] | None = None
    wall_s: float | None = None
    records: int | None = None
    missing: list[str] | None = None
    failure: str | None = None
    earlier_failures: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _decode(cls, known: dict[str, Any]) -> dict[str, Any]:
        out = dict(known)
        if isinstance(out.get("launch"), dict):
            out["launch"] = LaunchInfo.from_dict(out["launch"])
        elif "launch" in out and not isinstance(out["launch"], LaunchInfo):
            out["launch"] = None
        if isinstance(out.get("ranks"), dict):
            out["ranks"] = {
                str(r): RankInfo.from_dict(info) if isinstance(info, dict) else RankInfo()
                for r, info in out["ranks"].items()
            }
        elif "ranks" in out:
            out["ranks"] = None
        if not isinstance(out.get("resumed_at"), (list, type(None))):
            out["resumed_at"] = None
        return out

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.ranks is not None:
            out["ranks"] = {r: info.to_dict() for r, info in self.ranks.items()}
        return out

    @classmethod
    def new(cls, run_id: str, suite: dict[str, Any], fingerprint: dict[str, Any], **fields_: Any) -> Manifest:
        """The manifest of a run that is starting: status ``running``, started now, no counts yet."""
        launch = fields_.pop("launch", None)
        if isinstance(launch, dict):
            launch = LaunchInfo.from_dict(launch)
        return cls.from_dict(
            {"run_id": run_id, "suite": suite, "environment": fingerprint, "started_at": utc_now(), **fields_}
        )._with(launch=launch)

    def _with(self, **values: Any) -> Manifest:
        for key, value in values.items():
            setattr(self, key, value)
        return self

    @property
    def suite_name(self) -> str:
        """The suite's name, ``suite`` when the manifest does not say."""
        return (self.suite or {}).get("name", "suite") if isinstance(self.suite, dict) else "suite"

    @property
    def device_name(self) -> str | None:
        """The device's name as the environment fingerprint gives it (None when unknown)."""
        return (self.environment or {}).get("device_name")

    def rank(self, rank: int) -> RankInfo:
        """Rank ``rank``'s part, created empty when the manifest has none yet."""
        if self.ranks is None:
            self.ranks = {}
        return self.ranks.setdefault(str(rank), RankInfo())
