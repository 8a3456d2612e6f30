"""A run's life around its cases: choose the cases, open (or reopen) the run folder, write the manifest,
measure the device's peak once, and at the end merge the records, count statuses, and write the report.

Both the inline launcher and rank 0 of a distributed launch go through these functions, so a run folder
looks the same however it was launched.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, StoreError
from harness.store.rundir import (
    MANIFEST,
    check_writable,
    merge_rank_files,
    new_manifest,
    new_run_dir,
    read_manifest,
    status_counts,
    utc_now,
    write_json_atomic,
)


@dataclass
class RunPlan:
    """What a run will measure and where: the cases, the run folder and its manifest."""

    cases: list
    run_dir: Path
    manifest: dict[str, Any]
    device: str
    resumed: bool = False


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


def plan_device(cases: list, local_rank: int | None = None) -> str:
    """The device the run's folder is named after: the first case's, with ``auto`` resolved."""
    from harness.measure.precision import resolve_device

    return resolve_device(cases[0].device if cases else "auto", local_rank)


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


def new_plan(suite, out_root: Path, patterns: list[str] | None, world_size: int = 1, **manifest_extra) -> RunPlan:
    """Open a new run folder for ``suite`` under ``out_root`` and write its first manifest."""
    from harness.store.fingerprint import environment_fingerprint

    cases = select_cases(suite.cases(), patterns)
    preflight(cases)
    device = plan_device(cases)
    check_writable(out_root)
    run_dir = new_run_dir(out_root, suite.name, device.replace(":", ""))
    run_id = f"{run_dir.name}-{uuid.uuid4().hex[:6]}"
    manifest = new_manifest(
        run_id,
        suite.resolved(),
        environment_fingerprint(device),
        cases=[c.to_dict() for c in cases],
        case_ids=[c.id for c in cases],
        filter=patterns or None,
        world_size=world_size,
        **manifest_extra,
    )
    write_json_atomic(run_dir / MANIFEST, manifest)
    return RunPlan(cases, run_dir, manifest, device)


def _run_folders_in(folder: Path, limit: int = 200) -> list[Path]:
    """Run folders (holding a manifest) up to two levels below ``folder``, newest name last; a bounded look."""
    found: list[Path] = []
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir())[:limit]
        for child in children:
            if (child / MANIFEST).is_file():
                found.append(child)
                continue
            found.extend(sorted(g for g in child.iterdir() if g.is_dir() and (g / MANIFEST).is_file())[:limit])
    except OSError:
        pass
    return sorted(found, key=lambda p: p.name)


def check_resume_folder(run_dir: Path) -> Path:
    """Refuse, before anything in it is touched, a ``--resume`` path that is no run folder or cannot be written.

    The messages say what was given, what it is instead, and which path to pass: a run folder's ``manifest.json``
    (or any file in it) points at the folder; a results folder names the newest run folder below it. A folder
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
        if (parent / MANIFEST).is_file():
            raise StoreError(
                f"--resume {given} is a file, not a run folder; pass the folder that holds it: --resume {parent}"
            )
        raise StoreError(
            f"--resume {given} is a file, not a run folder; pass the run folder that holds {MANIFEST} "
            "(results/<suite>/<run>)"
        )
    if not (run_dir / MANIFEST).is_file():
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


def resume_plan(run_dir: Path) -> RunPlan:
    """Reopen ``run_dir`` to finish it: the same cases, the same manifest, status back to ``running``."""
    from harness.suite import Case

    run_dir = check_resume_folder(Path(run_dir))
    try:
        manifest = read_manifest(run_dir)
    except OSError as exc:
        raise StoreError(
            f"--resume {run_dir}: its {MANIFEST} cannot be read ({exc.strerror or exc}); make it readable"
        ) from None
    if not isinstance(manifest, dict):
        raise StoreError(
            f"--resume {run_dir}: its {MANIFEST} holds a {type(manifest).__name__}, not a run's manifest; "
            "the run cannot be resumed (start a new one)"
        )
    if not isinstance(manifest.get("cases"), list):
        raise StoreError(f"--resume {run_dir}: its manifest lists no cases, so it cannot be resumed")
    cases = []
    for number, data in enumerate(manifest["cases"], 1):
        try:
            cases.append(Case.from_dict(data))
        except HarnessError as exc:
            raise StoreError(
                f"--resume {run_dir}: case {number} of its {MANIFEST} cannot be read ({exc}); "
                "the run cannot be resumed (start a new one)"
            ) from None
    manifest["status"] = "running"
    resumed = manifest.get("resumed_at")
    manifest["resumed_at"] = [*(resumed if isinstance(resumed, list) else []), utc_now()]
    try:
        write_json_atomic(run_dir / MANIFEST, manifest)
    except OSError as exc:
        raise StoreError(
            f"--resume {run_dir}: its {MANIFEST} cannot be rewritten ({exc.strerror or exc}); nothing was measured. "
            "Make the run folder writable, or copy it to a writable place and resume the copy"
        ) from None
    return RunPlan(cases, run_dir, manifest, plan_device(cases), resumed=True)


def measure_peak_once(plan: RunPlan, enabled: bool = True) -> dict | None:
    """The device's matmul peak per dtype (for MFU), measured once per run and kept in the manifest."""
    if not enabled:
        return None
    if plan.manifest.get("peak"):
        return plan.manifest["peak"]
    try:
        from harness.measure.peak import measure_peak
    except ImportError:
        return None
    from harness.measure import device as devices

    dev = devices.get(plan.device)
    if dev.is_cuda and dev.unsupported_reason("fp32"):
        return None
    if dev.is_cuda and getattr(dev.api, "fake", False):
        return None  # the CUDA test double has no peak of its own to measure
    peak = measure_peak(plan.device)
    plan.manifest["peak"] = peak
    write_json_atomic(plan.run_dir / MANIFEST, plan.manifest)
    return peak


def finish_run(plan: RunPlan, status: str) -> list[dict[str, Any]]:
    """Merge every rank's records, count statuses, and close the manifest with ``status``."""
    records = merge_rank_files(plan.run_dir)
    threads = {r.get("num_threads") for r in records if r.get("status") == "ok" and r.get("num_threads")}
    if len(threads) == 1:
        # The fingerprint was taken by the launcher; workers may have run on a share of the cores, and a
        # comparison must see the thread count the cases actually ran with.
        plan.manifest.setdefault("environment", {})["num_threads"] = threads.pop()
    plan.manifest.update(
        status=status,
        finished_at=utc_now(),
        counts=status_counts(records),
        records=len(records),
        missing=[cid for cid in plan.manifest.get("case_ids", []) if cid not in {r.get("case_id") for r in records}],
    )
    write_json_atomic(plan.run_dir / MANIFEST, plan.manifest)
    return records


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold an exclusive lock on the run folder while measuring, so a second ``--resume`` of a run that is still
    going is refused instead of measuring the same cases twice."""
    import fcntl

    path = Path(run_dir) / ".lock"
    try:
        f = open(path, "a+")  # closed by the with below
    except OSError as exc:
        raise StoreError(
            f"{path} cannot be opened to lock the run ({exc.strerror or exc}); make the run folder and its .lock "
            f"writable (chmod u+w {run_dir} {path}) or copy the run folder to a writable place"
        ) from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise HarnessError(
                f"{run_dir} is being measured by another harness process; wait for it to finish (or stop it) "
                "before resuming"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_run_report(plan: RunPlan) -> Path | None:
    """Write ``report.html`` into the run folder; None (with the reason printed) when it cannot be written."""
    try:
        from harness.report import write_report
    except ImportError:
        return None
    out = plan.run_dir / "report.html"
    write_report([plan.run_dir], out)
    return out
