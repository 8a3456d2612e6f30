"""One run session: the launch settings resolved once, and the run folder opened (or reopened), measured into and
closed by one object, however the run was launched.

``LaunchSettings.resolve`` turns the command line, the suite and (on ``--resume``) the manifest into the one set
of launch settings every part of a launch reads; nothing else looks at ``suite.launch`` or a flag again.

``RunSession`` holds the run's ``RunFolder``, its typed ``Manifest`` and its cases. It opens a new run folder
(``new_plan``), reopens one to finish it (``resume_plan``) or joins one a launcher opened (``RunSession.join``, for
the workers of a distributed run), probes the device's peak at the start and at the end of the run (per rank in a
distributed run: the manifest's ``health``), builds the case context, merges the records with their MFU against the
best of the two probes and closes the manifest, and writes the report. The manifest is read from disk once
per process and written whenever the run's state changes.

The launches are strategies over it: ``harness.launch.inline`` (every case in this process),
``harness.launch.elastic`` (the elastic agent starts the workers) and ``harness.launch.distributed`` (one rank).
What is printed on the console (the summary and scaling tables) belongs to the commands.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, LaunchError, StoreError
from harness.measure.peak import best_of, health, probe, with_mfu
from harness.store.manifest import LaunchInfo, Manifest, RunStatus
from harness.store.record import Record
from harness.store.rundir import MANIFEST, RunFolder, check_writable, status_counts, utc_now

#: Restarts of the worker group when neither the command line nor the suite says: two let a case that kills
#: its worker twice be recorded as ``crashed`` and the run finish.
DEFAULT_MAX_RESTARTS = 2
DEFAULT_RDZV_TIMEOUT_S = 900


# --- launch settings ------------------------------------------------------------------------------------------


def visible_gpus() -> int:
    """CUDA devices this process can see (0 without CUDA)."""
    from harness.measure.device import cuda_count

    return cuda_count()


def _wants_cuda(cases: list, gpus: int) -> bool:
    return any(str(c.device).startswith("cuda") or (c.device == "auto" and gpus > 0) for c in cases)


def resolve_nproc(value, cases: list, gpus: int | None = None) -> int:
    """Workers per node: an int >= 1, or ``auto`` (one per visible GPU when the cases run on GPUs, else 1)."""
    if value is None or str(value).strip() == "":
        return 1
    text = str(value).strip().lower()
    if text == "auto":
        gpus = visible_gpus() if gpus is None else gpus
        if any(str(c.device).startswith("cuda:") for c in cases):
            return 1  # a suite pinned to one GPU (cuda:N) runs one worker on it
        return gpus if gpus > 0 and _wants_cuda(cases, gpus) else 1
    try:
        n = int(text)
    except ValueError:
        raise LaunchError(f"--nproc-per-node {value!r} is not a number; give an integer >= 1 or 'auto'") from None
    if n < 1:
        raise LaunchError(f"--nproc-per-node {n}: need at least one worker per node")
    return n


def parse_nnodes(value) -> tuple[int, int]:
    """``--nnodes`` as (min, max) nodes: ``2`` or an elastic range ``1:4``."""
    if value is None or str(value).strip() == "":
        return 1, 1
    text = str(value).strip()
    try:
        low, _, high = text.partition(":")
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise LaunchError(f"--nnodes {value!r}: give a node count (2) or a range (1:4)") from None
    if lo < 1 or hi < lo:
        raise LaunchError(f"--nnodes {value!r}: need 1 <= min <= max")
    return lo, hi


def profile_filter(patterns: list[str] | None) -> Callable[[Any], bool] | None:
    """The ``--profile GLOB`` test of a case (its id matches a pattern); None when no pattern was given."""
    if not patterns:
        return None
    return lambda case: any(fnmatch.fnmatchcase(case.id, p) for p in patterns)


@dataclass
class LaunchSettings:
    """How a run is launched and run, resolved once (``resolve``) from the flags, the suite and the manifest."""

    strategy: str = "sweep"
    world_sizes: list[int] | None = None
    one_rank_ddp: bool = False
    nproc_per_node: int = 1
    nnodes: tuple[int, int] = (1, 1)
    max_restarts: int = DEFAULT_MAX_RESTARTS
    rdzv_endpoint: str | None = None
    rdzv_timeout_s: int = DEFAULT_RDZV_TIMEOUT_S
    profile: list[str] | None = None
    report: bool = True
    progress: bool = True
    nvml: bool = True
    telemetry_interval_ms: int = 50
    accuracy: Any = None

    @property
    def distributed(self) -> bool:
        """True when the run needs the elastic agent: several workers or nodes, or the ddp strategy."""
        return self.nproc_per_node != 1 or self.nnodes != (1, 1) or self.strategy == "ddp"

    @classmethod
    def resolve(cls, args, suite, cases: list, manifest: Manifest | None = None) -> LaunchSettings:
        """The settings of a launch. Flags win; then what the run recorded when it began (``manifest``, on a
        resume); then the suite's ``launch`` block; then the defaults. ``args`` may lack the launcher's flags (a
        worker's command line has none of them)."""

        def flag(name: str):
            return getattr(args, name, None)

        spec = getattr(suite, "launch", None)
        recorded = (manifest.launch if manifest is not None else None) or LaunchInfo()
        if manifest is not None and manifest.launch is not None and not flag("nproc_per_node"):
            nproc = int(recorded.nproc_per_node or manifest.world_size or 1)
        else:
            nproc = resolve_nproc(flag("nproc_per_node") or getattr(spec, "nproc_per_node", None), cases)
        restarts = flag("max_restarts")
        if restarts is None:
            restarts = getattr(spec, "max_restarts", None)
        restarts = DEFAULT_MAX_RESTARTS if restarts is None else int(restarts)
        if restarts < 0:
            raise LaunchError(f"--max-restarts {restarts}: give 0 or more")
        telemetry = getattr(suite, "telemetry", None)
        return cls(
            strategy=recorded.strategy or getattr(spec, "strategy", None) or "sweep",
            world_sizes=recorded.world_sizes or getattr(spec, "world_sizes", None),
            one_rank_ddp=bool(getattr(spec, "one_rank_ddp", False)),
            nproc_per_node=nproc,
            nnodes=parse_nnodes(flag("nnodes") or recorded.nnodes or getattr(spec, "nnodes", None)),
            max_restarts=restarts,
            rdzv_endpoint=flag("rdzv_endpoint"),
            rdzv_timeout_s=int(flag("rdzv_timeout") or DEFAULT_RDZV_TIMEOUT_S),
            profile=flag("profile") or None,
            report=not flag("no_report"),
            progress=not flag("no_progress"),
            nvml=bool(getattr(telemetry, "nvml", True)),
            telemetry_interval_ms=int(getattr(telemetry, "interval_ms", 50)),
            accuracy=getattr(suite, "accuracy", None),
        )

    def launch_info(self, launcher: str, **more: Any) -> LaunchInfo:
        """What the manifest keeps of these settings for a launch by ``launcher`` (harness or torchrun)."""
        fields_ = {"strategy": self.strategy, "world_sizes": self.world_sizes, "nproc_per_node": self.nproc_per_node}
        return LaunchInfo(launcher=launcher, **{**fields_, **more})


# --- choosing and checking the cases ---------------------------------------------------------------------------


def select_cases(cases: list, patterns: list[str] | None) -> list:
    """The cases whose id matches any of the glob ``patterns`` (all cases when there are none)."""
    if not patterns:
        return list(cases)
    chosen = [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]
    if not chosen:
        sample = ", ".join(c.id for c in cases[:3])
        raise HarnessError(
            f"--filter {' '.join(patterns)!r} matches none of the {len(cases)} cases (ids look like {sample})"
        )
    return chosen


def plan_device(cases: list, local_rank: int | None = None, local_world_size: int = 1) -> str:
    """The device the run's folder is named after (and a rank measures on): the first case's, resolved."""
    from harness.measure.precision import resolve_device

    return resolve_device(cases[0].device if cases else "auto", local_rank, local_world_size)


def preflight(cases: list) -> None:
    """Refuse, before anything runs, what would make every case of a model fail: local weights that are missing
    or fail their hash check, and ``impl: torchvision`` where torchvision cannot be imported."""
    from harness.errors import WeightsError
    from harness.zoo.weights import resolve_weights, verify_hash

    checked: set = set()
    for case in cases:
        if case.weights and (case.model, case.weights) not in checked:
            checked.add((case.model, case.weights))
            path, expected = resolve_weights(case.model, case.weights)
            try:
                verify_hash(path, expected)
            except WeightsError as exc:
                raise WeightsError(f"case {case.id}: {exc}") from None
        if case.impl == "torchvision" and "torchvision" not in checked:
            checked.add("torchvision")
            try:
                import torchvision  # noqa: F401
            except Exception as exc:
                raise HarnessError(
                    f"case {case.id} asks for impl: torchvision, which cannot be imported here ({exc}); "
                    "install a torchvision that matches this torch, or use impl: harness"
                ) from None


# --- the session -----------------------------------------------------------------------------------------------


class RunSession:
    """One run: its folder, its typed manifest and its cases, from opening to closing (module docstring)."""

    def __init__(self, folder: RunFolder, manifest: Manifest, cases: list, device: str, resumed: bool = False):
        self.folder = folder
        self.manifest = manifest
        self.cases = cases
        self.device = device
        self.resumed = resumed

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    def save(self) -> None:
        """Write the manifest as it stands."""
        self.folder.write_manifest(self.manifest)

    # -- opening -----------------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, suite, out_root: Path, patterns: list[str] | None, world_size: int = 1, launch: LaunchInfo | None = None
    ) -> RunSession:
        """Open a new run folder for ``suite`` under ``out_root`` and write its first manifest."""
        from harness.store.fingerprint import environment_fingerprint

        cases = select_cases(suite.cases(), patterns)
        preflight(cases)
        device = plan_device(cases)
        check_writable(out_root)
        folder = RunFolder.create(out_root, suite.name, device.replace(":", ""))
        manifest = Manifest.new(
            f"{folder.path.name}-{uuid.uuid4().hex[:6]}",
            suite.resolved(),
            environment_fingerprint(device),
            cases=[c.to_dict() for c in cases],
            case_ids=[c.id for c in cases],
            filter=patterns or None,
            world_size=world_size,
            launch=launch,
        )
        session = cls(folder, manifest, cases, device)
        session.save()
        return session

    @classmethod
    def resume(cls, run_dir: Path) -> RunSession:
        """Reopen ``run_dir`` to finish it: the same cases, the same manifest, status back to ``running``."""
        folder = RunFolder(check_resume_folder(Path(run_dir)))
        try:
            data = folder.read_manifest_dict()
        except OSError as exc:
            raise StoreError(
                f"--resume {run_dir}: its {MANIFEST} cannot be read ({exc.strerror or exc}); make it readable"
            ) from None
        manifest, cases = _manifest_with_cases(data, f"--resume {folder.path}", resuming=True)
        manifest.status = RunStatus.RUNNING
        manifest.resumed_at = [*(manifest.resumed_at or []), utc_now()]
        session = cls(folder, manifest, cases, plan_device(cases), resumed=True)
        try:
            session.save()
        except OSError as exc:
            raise StoreError(
                f"--resume {folder.path}: its {MANIFEST} cannot be rewritten ({exc.strerror or exc}); nothing was "
                "measured. Make the run folder writable, or copy it to a writable place and resume the copy"
            ) from None
        return session

    @classmethod
    def join(cls, run_dir: Path, device: str | None = None) -> RunSession:
        """The run folder a launcher opened, as a worker joins it: its manifest read once, its cases rebuilt."""
        folder = RunFolder(run_dir)
        manifest, cases = _manifest_with_cases(folder.read_manifest_dict(), str(folder.path), resuming=False)
        return cls(folder, manifest, cases, device or plan_device(cases))

    # -- measuring -----------------------------------------------------------------------------------------------
    def _holder(self, rank: int | None):
        """Where the peak and health of ``rank`` are kept: the manifest itself (inline), else the rank's part."""
        return self.manifest if rank is None else self.manifest.rank(rank)

    def _probe(self, device: str) -> dict | None:
        """One health probe of ``device`` (``harness.measure.peak.probe``), or None where there is no peak to
        measure: an old GPU, or the CUDA test double."""
        from harness.measure import device as devices

        dev = devices.get(device)
        if dev.is_cuda and (dev.unsupported_reason("fp32") or getattr(dev.api, "fake", False)):
            return None
        return probe(device)

    def peak(self, device: str, rank: int | None = None) -> dict | None:
        """The peak (matmul and convolution TFLOP/s per dtype, copy bandwidth) the cases' MFU is computed against,
        from the run's start probe. Inline (``rank`` None): probed once per run and kept in the manifest (``peak``,
        and ``health.start``). A rank of a distributed run: its own, kept in its part of the manifest by rank 0;
        after a restart or a resume, what was probed then (a resumed run keeps its first start probe), else probed
        now. Where an end probe was taken earlier (a resumed run), the peak is the best of the two."""
        holder = self._holder(rank)
        known = holder.health.get("start") if isinstance(holder.health, dict) else None
        if known is not None or holder.peak:
            return holder.peak or best_of(known, holder.health.get("end"))
        start = self._probe(device)
        if start is None:
            return None
        holder.health, holder.peak = health(start), best_of(start)
        if rank is None:
            self.save()
        return holder.peak

    def end_probe(self, device: str, rank: int | None = None) -> dict | None:
        """Probe the device again at the end of the run (after its last case, before the manifest is closed): the
        health gets its ``end`` and the spread of the two probes, and the peak becomes the best of both. Returns the
        health, or None when the run had no start probe (no peak on this device, or a run from before health was
        probed). A probe that fails leaves ``end`` null: it must not fail a run whose cases are measured."""
        holder = self._holder(rank)
        start = holder.health.get("start") if isinstance(holder.health, dict) else None
        if start is None:
            return None
        try:
            end = self._probe(device)
        except (HarnessError, RuntimeError) as exc:
            print(f"end-of-run peak probe failed: {exc}", file=sys.stderr)
            end = None
        holder.health, holder.peak = health(start, end), best_of(start, end)
        if rank is None:
            self.save()
        return holder.health

    def peak_of(self, rank: int | None) -> dict | None:
        """The peak the records of ``rank`` are held against: that rank's own, else the run's."""
        own = (self.manifest.ranks or {}).get(str(rank)) if rank is not None else None
        return (own.peak if own is not None else None) or self.manifest.peak

    def context(self, settings: LaunchSettings, device: str, rank: int = 0, peak: dict | None = None):
        """The ``CaseContext`` every case of this process is measured with."""
        from harness.measure.runner import CaseContext, ModelCache

        return CaseContext(
            run_id=self.manifest.run_id,
            suite=self.manifest.suite_name,
            run_dir=self.run_dir,
            device=device,
            rank=rank,
            world_size=1,
            peak=peak,
            telemetry=settings.nvml,
            telemetry_interval_ms=settings.telemetry_interval_ms,
            model_cache=ModelCache(),
            extra_profile=profile_filter(settings.profile),
            accuracy=settings.accuracy,
            device_name=self.manifest.device_name,
        )

    # -- closing -------------------------------------------------------------------------------------------------
    def finish(self, status: str, ranks: int | None = None) -> list[dict[str, Any]]:
        """Merge every rank's records, count statuses (per rank too, for ``ranks`` ranks), and close the manifest
        with ``status``; returns every record of the run."""
        for r in range(ranks or 0):
            own = self.folder.rank_records(r)
            info = self.manifest.rank(r)
            info.records, info.counts = len(own), status_counts(own)
        # Each record's MFU was computed against the peak known when it was measured (the start probe); the run's
        # peak is now the best of its start and end probes: the merged records hold MFU against that.
        records = self.folder.merge(hold=lambda r: with_mfu(r, self.peak_of(r.get("rank"))))
        typed = [Record.from_dict(r) for r in records]
        threads = {r.num_threads for r in typed if r.ok and r.num_threads}
        if len(threads) == 1:
            # The fingerprint was taken by the launcher; workers may have run on a share of the cores, and a
            # comparison must see the thread count the cases actually ran with.
            self.manifest.environment = {**(self.manifest.environment or {}), "num_threads": threads.pop()}
        recorded = {r.case_id for r in typed}
        self.manifest.status = status
        self.manifest.finished_at = utc_now()
        self.manifest.counts = status_counts(records)
        self.manifest.records = len(records)
        self.manifest.missing = [cid for cid in self.manifest.case_ids or [] if cid not in recorded]
        self.save()
        return records

    def write_report(self, say: Callable[[str], None]) -> Path | None:
        """Write the run's report into the run folder and ``say`` where; a report that fails is said, not raised:
        it must not lose the run."""
        try:
            from harness.report import write_report

            out = self.folder.report_path
            write_report([self.run_dir], out)
        except Exception as exc:
            say(f"report not written: {type(exc).__name__}: {exc}")
            return None
        say(f"report: {out}")
        return out


def _manifest_with_cases(data: Any, where: str, resuming: bool) -> tuple[Manifest, list]:
    """The typed manifest and the cases it lists; a StoreError (resuming) or LaunchError (joining) saying why a
    manifest cannot be used: not an object, no case list, or a case that cannot be read."""
    from harness.suite import Case

    error = StoreError if resuming else LaunchError
    action = "the run cannot be resumed (start a new one)" if resuming else "no worker can join it"
    if not isinstance(data, dict):
        raise error(f"{where}: its {MANIFEST} holds a {type(data).__name__}, not a run's manifest; {action}")
    if not isinstance(data.get("cases"), list):
        raise error(f"{where}: its manifest lists no cases, so {'it cannot be resumed' if resuming else action}")
    cases = []
    for number, entry in enumerate(data["cases"], 1):
        try:
            cases.append(Case.from_dict(entry))
        except HarnessError as exc:
            raise error(f"{where}: case {number} of its {MANIFEST} cannot be read ({exc}); {action}") from None
    return Manifest.from_dict(data), cases


def new_plan(suite, out_root: Path, patterns: list[str] | None, world_size: int = 1, launch=None) -> RunSession:
    """Open a new run session (``RunSession.open``)."""
    return RunSession.open(suite, out_root, patterns, world_size=world_size, launch=launch)


def resume_plan(run_dir: Path) -> RunSession:
    """Reopen a run to finish it (``RunSession.resume``)."""
    return RunSession.resume(run_dir)


# --- checking a --resume path ----------------------------------------------------------------------------------


def _run_folders_in(folder: Path, limit: int = 200) -> list[Path]:
    """Run folders (holding a manifest) up to two levels below ``folder``, newest name last; a bounded look."""
    found: list[Path] = []
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir())[:limit]
        for child in children:
            if RunFolder(child).is_run():
                found.append(child)
                continue
            found.extend(sorted(g for g in child.iterdir() if g.is_dir() and RunFolder(g).is_run())[:limit])
    except OSError:
        pass
    return sorted(found, key=lambda p: p.name)


def check_resume_folder(run_dir: Path) -> Path:
    """Refuse, before anything in it is touched, a ``--resume`` path that is no run folder or cannot be written.

    The messages say what was given, what it is instead, and which path to pass: a run folder's manifest (or any
    file in it) points at the folder; a results folder names the newest run folder below it. A folder
    that cannot be written is refused as such, since resuming rewrites its manifest and appends its records.
    """
    run_dir = Path(run_dir)
    try:
        return _check_resume_folder(run_dir)
    except OSError as exc:  # a folder on the way that cannot be searched
        raise StoreError(
            f"--resume {run_dir} cannot be read ({exc.strerror or exc}); make it readable (chmod -R u+rwX {run_dir}) "
            "or copy it to a place you can read and write"
        ) from None


def _check_resume_folder(run_dir: Path) -> Path:
    given = str(run_dir)
    if not run_dir.exists():
        raise StoreError(
            f"--resume {given}: no such file or folder; pass the run folder that `harness run` printed as "
            "'run folder: PATH' (results/<suite>/<run>)"
        )
    if not run_dir.is_dir():
        parent = run_dir.parent
        if RunFolder(parent).is_run():
            raise StoreError(
                f"--resume {given} is a file, not a run folder; pass the folder that holds it: --resume {parent}"
            )
        raise StoreError(
            f"--resume {given} is a file, not a run folder; pass the run folder that holds {MANIFEST} "
            "(results/<suite>/<run>)"
        )
    if not RunFolder(run_dir).is_run():
        runs = _run_folders_in(run_dir)
        if runs:
            hint = (
                f"it holds {len(runs)} run folder{'s' if len(runs) != 1 else ''}; the newest by name: "
                f"--resume {runs[-1]}"
            )
        else:
            hint = "pass the run folder that `harness run` printed as 'run folder: PATH'"
        raise StoreError(f"--resume {given} is not a run folder: it has no {MANIFEST}; {hint}")
    problem = _not_writable(run_dir)
    if problem:
        raise StoreError(
            f"--resume {given}: the run folder is not writable ({problem}), and resuming rewrites its manifest and "
            f"adds records there; make it writable (chmod -R u+w {given}) or copy it to a writable place and "
            "resume the copy"
        )
    return run_dir


def _not_writable(folder: Path) -> str | None:
    """Why ``folder`` cannot take a new file (None when it can). Asks the OS first, then tries a temporary file
    that is removed at once, since permission bits do not tell the whole story (root, ACLs, read-only mounts)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied" if not _read_only_mount(folder) else "read-only file system"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


@dataclass
class RunOutcome:
    """How a launch ended, for the command to report: the run's status, its records (None where this process has
    no view of them: on several nodes rank 0 printed them), its folder, the exit code, lines for stderr, and
    whether DDP scaling belongs in the summary."""

    status: str
    records: list[dict[str, Any]] | None
    run_dir: Path | None
    code: int
    messages: list[str] = field(default_factory=list)
    scaling: bool = False


class Stopwatch:
    """Wall time of the measuring part of a run, for the manifest's ``wall_s``."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 2)
