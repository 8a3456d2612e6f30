"""Writing imported runs as run folders: ``<out>/<suite>/<folder>/`` with a manifest, the merged records and a
copy of the source file.

Folder names are deterministic (``timm-infer-amp-nchw/rtx4090-pt291-cu128``), so importing a file twice finds the
first import: the second refuses unless ``--force``, and even then replaces only a folder that is itself an
import, never a run the harness measured. Every target is checked before anything is written, and each folder
is written beside its target and renamed into place, so a failed import leaves no half-written run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.errors import StoreError
from harness.importers.timm import ImportedRun
from harness.store.rundir import RunFolder, check_writable


def target_of(run: ImportedRun, out_root: Path) -> Path:
    """Where ``run`` goes under ``out_root``."""
    return Path(out_root) / run.setup.suite / run.setup.folder


def check_targets(runs: list[ImportedRun], out_root: Path, force: bool) -> list[Path]:
    """The target folder of each run, after checking none collide and none would overwrite without ``force``."""
    check_writable(out_root)
    seen: dict[Path, ImportedRun] = {}
    targets = []
    for run in runs:
        target = target_of(run, out_root)
        if target in seen:
            raise StoreError(
                f"{seen[target].source.name} and {run.source.name} would both import to {target}; import them "
                "separately with different --out folders, or tell them apart with --device or --torch"
            )
        seen[target] = run
        if target.exists():
            _check_replaceable(target, run, force)
        targets.append(target)
    return targets


def _check_replaceable(target: Path, run: ImportedRun, force: bool) -> None:
    try:
        manifest = RunFolder(target).read_manifest_dict()
        source = manifest.get("source")
    except (StoreError, OSError):
        manifest, source = None, None
    if manifest is None and any(target.iterdir()):
        raise StoreError(f"{target} exists and is not a run folder; move it away or choose another --out")
    if manifest is not None and not source:
        raise StoreError(
            f"{target} holds a run measured by the harness, not an import; it is never replaced: choose another --out"
        )
    if manifest is not None and not force:
        raise StoreError(
            f"{target} already exists (imported from {manifest.get('source_file', '?')} at "
            f"{manifest.get('imported_at', '?')}); pass --force to replace it"
        )


def write_run(run: ImportedRun, target: Path) -> Path:
    """Write ``run`` into ``target`` (replacing a previous import there); returns ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.importing-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        folder = RunFolder(staging)
        folder.write_merged(run.records)
        shutil.copyfile(run.source, staging / run.source.name)
        folder.write_manifest(run.manifest)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StoreError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target
