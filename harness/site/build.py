"""Building the site folder, incrementally.

``site-state.json`` in the folder records, per run, the run folder it was built from, a fingerprint of the run's
files (size and modification time of its manifest and of each records file), the report written for it and the
summary the index and trend pages need; and per suite and device, what its pages last said. A build:

- scans the results folder (manifests only) and fingerprints each run;
- writes the report of each run that is new, or whose fingerprint changed (``runs/<run>/report.html``); an unchanged
  run's report is left as it is, byte for byte, mtime included;
- removes the report of each run that is gone from the results folder (or can no longer be read);
- rewrites the trend page (``trends/<suite>--<device>--<hash>.html``; the hash, of the exact suite and device
  names, keeps two pairs whose names differ only in characters a file name cannot hold apart) of each suite and
  device that gained, lost or changed a run, and removes the trend page of one that has no run left;
- rewrites ``index.html`` and ``site-state.json`` every time, and ``plotly.js`` when it is missing or differs from
  the installed plotly's.

A state file of another format (or none) rebuilds everything (files of the folder that no state names are
overwritten where a page is due, never deleted). Runs that cannot be read are skipped and listed on
the index; when no run at all can be read, or the folder cannot be written, the build stops with a ``StoreError``.
One build at a time holds a folder (an exclusive lock on ``.site.lock`` in it); a second one stops with a
``StoreError`` rather than interleave its pages with the first's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import StoreError
from harness.report.data import prepare
from harness.report.page import render
from harness.site.history import (
    case_marks,
    case_series,
    case_steps,
    latest_verdict,
    night_counts,
    regressions,
    run_summary,
)
from harness.site.pages import render_index, render_trend
from harness.store.fingerprint import differences
from harness.store.loader import Run, read_run, scan
from harness.store.rundir import RunFolder, file_mode
from harness.store.skips import Skip

STATE = "site-state.json"
STATE_VERSION = 1
INDEX = "index.html"
PLOTLY = "plotly.js"
RUNS = "runs"
TRENDS = "trends"
LOCK = ".site.lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class SiteBuild:
    """What one build did: the run folders whose report it wrote and removed, how many it kept, the trend pages it
    wrote and removed (paths relative to ``out``), and the runs it skipped."""

    out: Path
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    trends_written: list[str] = field(default_factory=list)
    trends_removed: list[str] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.out / INDEX}: {len(self.written)} report(s) written, {self.kept} kept, {len(self.removed)} "
            f"removed; {len(self.trends_written)} trend page(s) written, {len(self.trends_removed)} removed"
        )


def slug(text: str) -> str:
    """``text`` as one safe file name: path separators as ``--``, other unsafe characters as ``_``."""
    return _UNSAFE.sub("_", str(text).replace("/", "--").replace("\\", "--")).strip("_.") or "_"


def group_key(suite: str, device: str) -> str:
    """The file name (without ``.html``) of the trend page of ``suite`` on ``device``: both as slugs, then a short
    hash of the exact pair, so pairs whose slugs coincide (``a b`` and ``a_b``) still get pages of their own."""
    digest = hashlib.sha1(f"{suite}\0{device}".encode()).hexdigest()[:8]
    return f"{slug(suite)}--{slug(device)}--{digest}"


def _lock(out: Path):
    """Hold ``out`` for this build (released when the returned file is closed); a StoreError when another build
    holds it."""
    handle = open(out / LOCK, "a")  # held for the whole build; closed by the caller
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StoreError(
            f"another harness site is building {out} now; wait for it to finish, or build into another folder"
        ) from None
    return handle


def fingerprint(path: Path) -> list[list[Any]]:
    """``[name, size, mtime_ns]`` of a run folder's manifest and each of its records files."""
    folder = RunFolder(path)
    files = [folder.manifest_path, *(folder.path / name for name in RunFolder.holds_records(folder.path))]
    out = []
    for f in files:
        st = f.stat()
        out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


def _check_results(results: Path) -> None:
    if not results.exists():
        raise StoreError(f"{results} does not exist; pass the results folder that 'harness run --out DIR' writes to")
    if not results.is_dir():
        raise StoreError(f"{results} is not a folder; pass the results folder that 'harness run --out DIR' writes to")


def write_text(text: str, target: Path) -> None:
    """Write ``text`` to ``target`` through a temporary file and a rename (a reader never sees half a page)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    except OSError as exc:
        why = exc.strerror or exc
        raise StoreError(f"cannot write {target}: {why}; choose a writable folder with -o DIR") from None


def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StoreError(
            f"cannot write the site to {out}: {exc.strerror or exc}; choose a writable folder with -o DIR"
        ) from None


def _load_state(out: Path) -> dict[str, Any]:
    try:
        state = json.loads((out / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or not isinstance(state.get("runs"), dict):
        return {}
    return state


def _read(path: Path, skips: list[Skip]) -> Run | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what is skipped is listed on the index and by the command
            run = read_run(path)
    except (StoreError, OSError) as exc:
        skips.append(Skip(str(path), "unreadable run", f"run skipped: {exc}"))
        return None
    if not run.records:
        why = "; ".join(str(s) for s in run.skips[:3]) or "no records file, or an empty one"
        skips.append(Skip(str(path), "unreadable run", f"run skipped, no record could be read: {why}"))
        return None
    return run


def _write_report(run: Run, out: Path, report: str) -> None:
    depth = report.count("/")
    write_text(render(prepare([run], list(run.skips)), plotly_src="../" * depth + PLOTLY), out / report)


def _remove(out: Path, relative: str) -> None:
    target = out / relative
    try:
        target.unlink()
    except FileNotFoundError:
        pass
    if target.parent != out and target.parent.parent == out / RUNS:
        shutil.rmtree(target.parent, ignore_errors=True)


def _write_plotly(out: Path) -> None:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    target = out / PLOTLY
    try:
        if target.read_text(encoding="utf-8") == js:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_text(js, target)


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


def _group_state(
    key: str, entries: list[dict[str, Any]], manifests: dict[str, dict[str, Any]], skips: list[Skip]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the group's state for the index, the data of its trend page). Only the latest night and its history are
    read again (for the comparison); the series come from the summaries in the state."""
    latest = entries[-1]
    threshold = latest["threshold"]
    series = case_series(entries)
    steps = case_steps(series, threshold)
    nights = [{"t": e["started_at"], "report": e["report"], "name": Path(e["path"]).name} for e in entries]
    found = []
    for reg in regressions(steps):
        rec = reg["recovered_at"]
        found.append(
            {
                "case": reg["case"],
                "change": reg["change"],
                "before": reg["before"],
                "after": reg["after"],
                "started": nights[reg["index"]],
                "recovered": nights[rec] if rec is not None else None,
            }
        )
    # The latest night against the last N earlier nights measured in its environment, as harness compare would.
    env = manifests[latest["path"]].get("environment") or {}
    earlier = [e for e in entries[:-1] if not differences(manifests[e["path"]].get("environment") or {}, env)]
    history = [_read(Path(e["path"]), skips) for e in earlier[-latest["history"] :]]
    latest_run = _read(Path(latest["path"]), skips)
    if latest_run is None:
        verdict = {"against": 0, "counts": {}, "regressed": [], "busy": False, "note": "the latest night was not read"}
    else:
        verdict = latest_verdict(latest_run, [r for r in history if r is not None], threshold)
    group = {
        "suite": latest["suite"],
        "device": latest["device"],
        "trend": f"{TRENDS}/{key}.html",
        "nights": len(entries),
        "latest": nights[-1],
        "counts": night_counts(latest),
        "verdict": verdict,
        "regressions": found,
        "threshold": threshold,
    }
    trend = {
        "nights": nights,
        "series": series,
        "steps": steps,
        "marks": case_marks(entries),
        "threshold": threshold,
        "group": group,
    }
    return group, trend


def build_site(results: str | Path, out: str | Path) -> SiteBuild:
    """Build or bring up to date the site of the runs under ``results`` in the folder ``out`` (see the module
    docstring for what is rewritten when)."""
    results, out = Path(results), Path(out)
    _check_results(results)
    done = SiteBuild(out)
    skips = done.skips
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = scan(results, skips)
    if not found:
        if skips:
            raise StoreError(f"no run under {results} could be read: " + "; ".join(str(s) for s in skips[:3]))
        raise StoreError(
            f"{results} holds no runs (no run folder at or below it); pass the folder 'harness run --out DIR' wrote"
        )
    _check_out(out)
    with _lock(out):
        return _build(results, out, found, done)


def _build(results: Path, out: Path, found: list, done: SiteBuild) -> SiteBuild:
    skips = done.skips
    state = _load_state(out)
    old_runs: dict[str, dict[str, Any]] = state.get("runs", {})
    root = results.resolve()
    manifests: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Any]] = {}
    touched: set[str] = set()
    taken = {e["report"].split("/")[1] for e in old_runs.values() if e.get("report", "").count("/") == 2}
    for path, manifest in found:
        key = str(path.resolve())
        manifests[key] = manifest
        try:
            fp = fingerprint(path)
        except OSError as exc:
            skips.append(Skip(str(path), "unreadable run", f"run skipped: {exc.strerror or exc}"))
            continue
        old = old_runs.get(key)
        if old and old.get("fp") == fp and (out / old["report"]).is_file():
            runs[key] = old
            done.kept += 1
            continue
        run = _read(path, skips)
        if run is None:
            continue
        summary = run_summary(run)
        rel = Path(key).relative_to(root).as_posix() if Path(key) != root else Path(key).name
        report = old["report"] if old else f"{RUNS}/{_unique(slug(rel), taken)}/report.html"
        _write_report(run, out, report)
        group = group_key(summary["suite"], summary["device"])
        runs[key] = {"path": key, "rel": rel, "fp": fp, "report": report, "group": group, **summary}
        done.written.append(str(path))
        touched.add(group)
        if old:
            touched.add(old.get("group", ""))
    for entry in runs.values():  # a kept run from a state that named its group otherwise
        group = group_key(entry["suite"], entry["device"])
        if entry.get("group") != group:
            touched.update((entry.get("group", ""), group))
            entry["group"] = group
    for key, old in old_runs.items():
        if key not in runs:
            _remove(out, old["report"])
            done.removed.append(key)
            touched.add(old.get("group", ""))
    _write_plotly(out)

    by_group: dict[str, list[dict[str, Any]]] = {}
    for entry in runs.values():
        by_group.setdefault(entry["group"], []).append(entry)
    old_groups: dict[str, dict[str, Any]] = state.get("groups", {})
    groups: dict[str, dict[str, Any]] = {}
    for key in sorted(by_group):
        entries = sorted(by_group[key], key=lambda e: (e["started_at"], e["path"]))
        trend_path = f"{TRENDS}/{key}.html"
        if key not in touched and key in old_groups and (out / trend_path).is_file():
            groups[key] = old_groups[key]
            continue
        groups[key], trend = _group_state(key, entries, manifests, skips)
        write_text(render_trend(trend), out / trend_path)
        done.trends_written.append(trend_path)
    for key, old in old_groups.items():
        if key not in groups:
            _remove(out, old["trend"])
            done.trends_removed.append(old["trend"])

    write_text(render_index(groups, skips, results=str(results)), out / INDEX)
    state = {"version": STATE_VERSION, "runs": runs, "groups": groups}
    write_text(json.dumps(state, separators=(",", ":"), allow_nan=False), out / STATE)
    return done
