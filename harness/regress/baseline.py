"""Choosing what a run is compared against: named run folders, or the last N matching runs under a results root.

A baseline must be of the same suite and measured in a matching environment (the comparable fields of the
fingerprint: device, torch, CUDA, cuDNN, driver, CPU model, threads); anything else is refused with a message
that lists each difference as ``field: baseline value vs candidate value``, unless the user allows the mismatch.
A history holds only runs that started before the candidate, so comparing last Tuesday's run shows what
Tuesday's alert would have said.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, StoreError
from harness.store import Run
from harness.store.fingerprint import differences
from harness.store.index import StoreIndex
from harness.store.loader import read_store
from harness.store.skips import Skip


def suite_name(manifest: dict[str, Any], records: list[dict[str, Any]] | None = None) -> str | None:
    """The suite a run measured: the manifest's ``suite.name``, else its records' ``suite`` field."""
    suite = manifest.get("suite")
    if isinstance(suite, dict) and suite.get("name"):
        return str(suite["name"])
    if isinstance(suite, str):
        return suite
    for record in records or []:
        if record.get("suite"):
            return str(record["suite"])
    return None


def regression_settings(manifest: dict[str, Any]) -> dict[str, Any]:
    """The suite's ``regression`` block (``threshold``, ``baseline``) as recorded in the run's manifest."""
    suite = manifest.get("suite")
    block = suite.get("regression") if isinstance(suite, dict) else None
    return block if isinstance(block, dict) else {}


def history_size(setting: Any) -> int | None:
    """N from a suite's ``regression.baseline`` of the form ``last-N`` (None for anything else)."""
    match = re.fullmatch(r"last-(\d+)", str(setting or "").strip())
    return int(match.group(1)) if match else None


def suite_baseline_path(setting: str, manifest: dict[str, Any]) -> Path:
    """A suite's ``regression.baseline`` given as a run path: as written, else beside the suite file."""
    path = Path(setting)
    suite = manifest.get("suite")
    source = suite.get("source") if isinstance(suite, dict) else None
    if not path.exists() and not path.is_absolute() and source and (Path(source).parent / path).exists():
        return Path(source).parent / path
    if not path.exists():
        raise StoreError(
            f"the suite's regression.baseline {setting!r} is neither last-N nor an existing run folder; "
            "name a baseline run folder or --history N"
        )
    return path


def read_candidate(path: str | Path, skips: list[Skip] | None = None) -> Run:
    """The candidate run folder; a StoreError when ``path`` is not exactly one readable run. What the loader
    skipped beside it is added to ``skips`` (the skips inside the run are in its ``Run.skips``)."""
    store = read_store([path])
    if len(store.runs) != 1:
        if not store.runs and store.skips:
            raise StoreError(f"the candidate {path} cannot be read: " + "; ".join(str(s) for s in store.skips))
        raise StoreError(f"{path} holds {len(store.runs)} runs; name one run folder as the candidate")
    if skips is not None:
        skips.extend(store.skips)
    return store.runs[0]


def latest_run(root: str | Path, skips: list[Skip] | None = None) -> Path:
    """The newest readable run folder (by ``started_at``) under ``root``, for ``harness compare latest``; the run
    folders passed over because they cannot be read are added to ``skips``."""
    found: list[Skip] = []
    runs = []
    if Path(root).exists():
        with StoreIndex(root) as index:
            runs = [(run.path, run.summary) for run in index.runs(found)]
    if not runs:
        unread = f" ({'; '.join(str(s) for s in found)})" if found else ""
        raise StoreError(
            f"no readable run folders under {root}{unread}; pass --root DIR where 'harness run --out DIR' wrote them"
        )
    if skips is not None:
        skips.extend(found)
    return runs[-1][0]


def _same(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _same_as(path: Path) -> Callable[[Path], bool]:
    """``lambda other: _same(other, path)``, sooner over many folders: by device and inode where both can be
    looked at (the same folder by whatever name), by resolved path otherwise."""
    try:
        st = os.stat(path)
    except OSError:
        return lambda other: _same(other, path)

    def same(other: Path) -> bool:
        try:
            o = os.stat(other)
        except OSError:
            return _same(other, path)
        return (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino)

    return same


def read_baselines(
    paths: list[str | Path], candidate: Run, skips: list[Skip] | None = None
) -> tuple[list[Run], list[str]]:
    """The runs named by ``paths`` (oldest first), leaving out the candidate itself if it is among them. Run folders
    that cannot be read are skipped (added to ``skips``) when others are left."""
    store = read_store(paths)
    runs = store.runs
    kept = [r for r in runs if not _same(r.path, candidate.path)]
    notes = [f"{candidate.path} is the candidate and was left out of the baseline"] if len(kept) < len(runs) else []
    if not kept and store.skips:
        raise StoreError("no baseline run could be read: " + "; ".join(str(s) for s in store.skips))
    if not kept:
        raise StoreError("the baseline is the candidate itself; name an earlier run folder, or use --history N")
    if skips is not None:
        skips.extend(store.skips)
    kept.sort(key=lambda r: (str(r.manifest.get("started_at") or ""), str(r.path)))
    return kept, notes


def _describe(diff: dict[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{name}: {a!r} vs {b!r}" for name, (a, b) in diff.items())


def check_compatible(baselines: list[Run], candidate: Run, allow_mismatch: bool = False) -> list[str]:
    """Refuse baselines of another suite or environment (HarnessError), or with ``allow_mismatch`` return notes."""
    notes: list[str] = []
    cand_suite = suite_name(candidate.manifest, candidate.records)
    cand_env = candidate.manifest.get("environment") or {}
    for run in baselines:
        suite = suite_name(run.manifest, run.records)
        if suite != cand_suite:
            text = f"{run.path} is a run of suite {suite!r}, the candidate of suite {cand_suite!r}"
            if not allow_mismatch:
                raise HarnessError(f"{text}; compare runs of one suite, or pass --allow-mismatch")
            notes.append(f"suite mismatch allowed: {text}")
        diff = differences(run.manifest.get("environment") or {}, cand_env)
        if diff:
            text = f"{run.path} was measured in another environment (baseline vs candidate): {_describe(diff)}"
            if not allow_mismatch:
                raise HarnessError(f"{text}. Compare like with like, or pass --allow-mismatch")
            notes.append(f"environment mismatch allowed: {text}")
    return notes


def select_history(
    candidate: Run, root: str | Path, n: int, allow_mismatch: bool = False, skips: list[Skip] | None = None
) -> tuple[list[Run], list[str]]:
    """The last ``n`` runs under ``root`` (oldest first) of the candidate's suite and environment, started before it.

    Runs of the suite in another environment are passed over (and counted in the notes); when none is left, the
    HarnessError names the newest such run and what differs, so the user sees why nothing matched. Run folders
    under ``root`` that cannot be read (a broken or newer manifest, records without one) are added to ``skips``.
    """
    if n < 1:
        raise HarnessError(f"--history {n}: give a number of runs of 1 or more")
    root = Path(root)
    if not root.is_dir():
        raise StoreError(
            f"results root {root.resolve()} does not exist; pass --root DIR where 'harness run --out DIR' wrote"
        )
    suite = suite_name(candidate.manifest, candidate.records)
    cand_env = candidate.manifest.get("environment") or {}
    before = candidate.manifest.get("started_at")
    same_suite: list[tuple[Path, dict[str, Any]]] = []
    other_suites: set[str] = set()
    index = StoreIndex(root)  # what the tree holds, remembered at its root (harness.store.index)
    found = [(run.path, run.summary) for run in index.runs(skips)]
    index.save()
    is_candidate = _same_as(candidate.path)
    for path, manifest in found:
        if is_candidate(path):
            continue
        name = suite_name(manifest)
        if name != suite:
            other_suites.add(str(name))
            continue
        started = manifest.get("started_at")
        if before and started and started >= before:
            continue
        same_suite.append((path, manifest))
    if not same_suite:
        others = f" (it holds runs of: {', '.join(sorted(other_suites))})" if other_suites else ""
        raise StoreError(
            f"no earlier run of suite {suite!r} under {root.resolve()}{others}; earlier runs are looked for under "
            "--root DIR (default: results, relative to the current directory): pass the folder 'harness run --out "
            "DIR' wrote, or run the suite first"
        )
    matching = [(p, m) for p, m in same_suite if not differences(m.get("environment") or {}, cand_env)]
    notes: list[str] = []
    if len(matching) < len(same_suite):
        skipped = len(same_suite) - len(matching)
        if allow_mismatch:
            matching = same_suite  # each one's differences are noted by check_compatible
        elif not matching:
            path, manifest = same_suite[-1]
            diff = differences(manifest.get("environment") or {}, cand_env)
            raise HarnessError(
                f"no earlier run of suite {suite!r} under {root} matches the candidate's environment; the newest, "
                f"{path}, differs (baseline vs candidate): {_describe(diff)}. Pass --allow-mismatch to use it"
            )
        else:
            notes.append(f"{skipped} run(s) of suite {suite!r} in another environment were passed over")
    chosen = matching[-n:]
    if len(chosen) < n:
        notes.append(f"history: {len(chosen)} matching run(s) found, fewer than the {n} asked for")
    runs = index.read_runs(path for path, _ in chosen)
    index.save()
    return runs, notes
