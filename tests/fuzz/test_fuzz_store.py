"""Fuzzing result stores: ``harness export``, ``report`` and ``compare`` on generated corrupted stores.

Each store holds one to four runs written with the store's own writers, then corrupted (``strategies.write_store``):
bad lines of every JSON type, truncated lines, records with wrong field types or a newer schema version, missing,
truncated, wrongly typed and future-versioned manifests, unreadable records files, and outputs that cannot be
written. Properties:

- every command ends with exit 0, 1, 2 or the skip code (``harness.store.skips.EXIT_SKIPPED``, else 3: it
  completed but skipped some input), without a traceback;
- a store with a bad run still exports, reports and compares its good runs; the exit code says that something
  was skipped (the skip code) and the output names each bad run; a store with nothing wrong exits 0;
- an output that cannot be written is an error (exit 1 or 2) with a message, not a traceback;
- the valid records read back (``harness export`` to CSV) are exactly the valid records written, by run and case.

Most examples run in this process; a few run in a subprocess under the time and memory bounds.
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, example, given, note

from tests.fuzz import strategies as fz

ALL_EXITS = fz.EXITS | {fz.SKIP_EXIT}


@pytest.fixture(autouse=True, scope="module")
def _summary(request):
    fz.register_summary(request.config)


@pytest.fixture(scope="module", autouse=True)
def _warm_imports():
    """Import what report and export import, once, so the first example is not charged for it."""
    import importlib

    for name in ("harness.store", "harness.report.data", "harness.report.page", "harness.regress"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _run(records: int = 2, manifest: str = "ok", faults=(), unreadable: bool = False, merged: bool = True):
    return fz.RunSpec(
        records=records,
        legacy=[False] * records,
        statuses=["ok"] * records,
        ranks=1,
        merged=merged,
        manifest=manifest,
        manifest_value="[1,2]",
        unreadable=unreadable,
        faults=list(faults),
    )


def _store(*runs, output: str = "ok", compare_out: str = "ok") -> fz.StoreSpec:
    return fz.StoreSpec(list(runs), output, compare_out)


#: The store defects of issue 14, as explicit examples (each one a good run beside the bad input).
ISSUE_STORES = {
    "4: a records line [1,2,3] / null": _store(
        _run(faults=[fz.LineFault(1, "not_object", "[1,2,3]"), fz.LineFault(2, "not_object", "null")]), _run()
    ),
    "5: a record with case_id 5": _store(_run(faults=[fz.LineFault(1, "bad_case_id", 5)]), _run()),
    "6: a manifest of schema version 999": _store(_run(), _run(manifest="future"), _run()),
    "7: one truncated manifest among good runs": _store(_run(), _run(manifest="truncated"), _run()),
    "8: a run folder without a manifest": _store(_run(), _run(manifest="missing"), _run()),
    "9: export -o into a folder it cannot write": _store(_run(), _run(), output="readonly_dir"),
}


def _describe(store: fz.Store) -> str:
    return (
        f"good runs {store.good_runs}, bad runs {store.bad_runs}, all-or-none runs {sorted(store.all_or_none)}, "
        f"{len(store.expected)} valid records, clean={store.clean}"
    )


def expected_exits(store: fz.Store, writable: bool) -> set[int]:
    """The exit codes a reading command (export, report) may end with on ``store``."""
    if not writable:
        return {1, 2}
    if not store.good_runs:
        return {2, fz.SKIP_EXIT} if store.bad_runs else {0, 2, fz.SKIP_EXIT}
    if store.bad_runs:
        return {fz.SKIP_EXIT}
    return {0} if store.clean else {0, fz.SKIP_EXIT}


def _named(store: fz.Store, text: str) -> list[str]:
    """The bad runs that ``text`` does not name."""
    return [run for run in store.bad_runs if f"/{run}" not in text and f"{run}/" not in text]


def _read_back(csv_path: Path) -> set[tuple[str, str]]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        return {(row.get("run_id") or "", row.get("case_id") or "") for row in csv.DictReader(f)}


def check_export(store: fz.Store, spec: fz.StoreSpec, tmp: Path, subprocess: bool = False) -> None:
    out = fz.output_path(spec.output, tmp, "records.csv")
    writable = spec.output == "ok"
    argv = ("export", str(store.root), "-o", str(out))
    if subprocess:
        result = fz.subprocess_cli(*argv, cwd=tmp)
        problem = result.problem(ALL_EXITS)
        assert problem is None, f"harness export: {problem}"
        code, stdout, stderr = result.code, result.stdout, result.stderr
    else:
        code, stdout, stderr = fz.cli(*argv)
    event(f"export exit {code}")
    note(f"export: exit {code}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}")
    assert code in ALL_EXITS, f"export exit {code}"
    assert not fz.long_lines(stdout + stderr), "export printed very long lines"
    if writable and code in (0, fz.SKIP_EXIT):  # the records read back, before what the exit code says
        got = _read_back(out)
        lost = store.expected - got
        assert not lost, f"valid records written but not exported: {sorted(lost)}"
        for run, keys in store.all_or_none.items():
            present = got & keys
            assert present in (set(), keys), f"run {run} (bad manifest) exported in part: {sorted(present)}"
        allowed_keys = store.expected | store.maybe | set().union(*store.all_or_none.values())
        invented = got - allowed_keys
        assert not invented, f"exported records that are not valid records: {sorted(invented)}"
    allowed = expected_exits(store, writable)
    assert code in allowed, f"export exit {code}, expected {sorted(allowed)} ({_describe(store)})"
    if code == fz.SKIP_EXIT:
        missing = _named(store, stdout + stderr)
        assert not missing, f"export skipped input but does not name the bad run(s) {missing}"


@given(fz.store_spec())
@example(ISSUE_STORES["4: a records line [1,2,3] / null"])
@example(ISSUE_STORES["5: a record with case_id 5"])
@example(ISSUE_STORES["6: a manifest of schema version 999"])
@example(ISSUE_STORES["7: one truncated manifest among good runs"])
@example(ISSUE_STORES["8: a run folder without a manifest"])
@example(ISSUE_STORES["9: export -o into a folder it cannot write"])
@fz.fuzz_settings(max_examples=60)
def test_export_of_corrupted_stores(spec):
    fz.count("store: export (in-process)")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        try:
            store = fz.write_store(spec, tmp)
            check_export(store, spec, tmp)
        finally:
            fz.restore_permissions(tmp)


def _compare_out(spec: fz.StoreSpec, store: fz.Store, tmp: Path, candidate: Path) -> tuple[list[str], bool]:
    """The --out arguments of compare, and whether that output can be written."""
    kind = spec.compare_out
    if kind == "is_file":
        blocker = tmp / "compare-out"
        blocker.write_text("a file where the output folder should be\n")
        return ["--out", str(blocker)], False
    if kind == "default":
        return [], True
    if kind == "candidate_readonly":
        if fz.PERMISSIONS_IGNORED:  # root writes into read-only folders: make the file it writes a folder instead
            with_dir = candidate / "regressions.json"
            if candidate.is_dir() and not with_dir.exists():
                with_dir.mkdir()
        elif candidate.is_dir():
            candidate.chmod(0o555)
        return [], False
    return ["--out", str(tmp / "compare")], True


def check_compare(store: fz.Store, spec: fz.StoreSpec, tmp: Path) -> None:
    candidate = store.runs[-1]
    cand_id = candidate.name
    out_args, writable = _compare_out(spec, store, tmp, candidate)
    earlier_good = [r for r in store.good_runs if r != cand_id and store.records_per_run[r]]
    comparable = cand_id in store.good_runs and store.records_per_run[cand_id] > 0 and earlier_good

    event(f"compare: candidate and an earlier run good: {bool(comparable)}")
    code, stdout, stderr = fz.cli("compare", "--history", "3", "--root", str(store.root), str(candidate), *out_args)
    event(f"compare --history exit {code}")
    note(f"compare --history: exit {code}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}")
    assert code in ALL_EXITS, f"compare --history exit {code}"
    assert not fz.long_lines(stdout + stderr), "compare printed very long lines"
    if not writable:
        assert code in (1, 2), f"compare --history exit {code} with an output it cannot write"
    elif comparable:
        assert code in (0, fz.SKIP_EXIT), (
            f"compare --history exit {code}: the candidate and an earlier run are good ({_describe(store)})"
        )

    if len(store.runs) > 1:
        baseline = store.runs[0]
        code, stdout, stderr = fz.cli("compare", str(baseline), str(candidate), "--out", str(tmp / "compare-two"))
        note(f"compare A B: exit {code}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}")
        assert code in ALL_EXITS, f"compare A B exit {code}"
        both_good = all(r in store.good_runs and store.records_per_run[r] for r in (baseline.name, cand_id))
        if both_good:
            assert code in (0, fz.SKIP_EXIT), f"compare A B exit {code} on two good runs ({_describe(store)})"


@given(fz.store_spec(min_runs=2))
@example(ISSUE_STORES["6: a manifest of schema version 999"])
@example(ISSUE_STORES["7: one truncated manifest among good runs"])
@fz.fuzz_settings(max_examples=50)
def test_compare_of_corrupted_stores(spec):
    fz.count("store: compare --history and compare A B (in-process)")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        try:
            store = fz.write_store(spec, tmp)
            check_compare(store, spec, tmp)
        finally:
            fz.restore_permissions(tmp)


def check_report(store: fz.Store, spec: fz.StoreSpec, tmp: Path, subprocess: bool = False) -> None:
    out = fz.output_path(spec.output, tmp, "report.html")
    writable = spec.output == "ok"
    argv = ("report", str(store.root), "-o", str(out))
    if subprocess:
        result = fz.subprocess_cli(*argv, cwd=tmp)
        problem = result.problem(ALL_EXITS)
        assert problem is None, f"harness report: {problem}"
        code, stdout, stderr = result.code, result.stdout, result.stderr
    else:
        code, stdout, stderr = fz.cli(*argv)
    event(f"report exit {code}")
    note(f"report: exit {code}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}")
    assert code in ALL_EXITS, f"report exit {code}"
    assert not fz.long_lines(stdout + stderr), "report printed very long lines"
    allowed = expected_exits(store, writable)
    assert code in allowed, f"report exit {code}, expected {sorted(allowed)} ({_describe(store)})"
    if code == fz.SKIP_EXIT:
        missing = _named(store, stdout + stderr)
        assert not missing, f"report skipped input but does not name the bad run(s) {missing}"
    if writable and code in (0, fz.SKIP_EXIT):
        assert out.is_file() and out.stat().st_size > 0, "report exit 0/3 but no report written"


@given(fz.store_spec(max_runs=3))
@example(ISSUE_STORES["4: a records line [1,2,3] / null"])
@example(ISSUE_STORES["7: one truncated manifest among good runs"])
@example(ISSUE_STORES["8: a run folder without a manifest"])
@fz.fuzz_settings(max_examples=10)
def test_report_of_corrupted_stores(spec):
    fz.count("store: report (in-process)")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        try:
            store = fz.write_store(spec, tmp)
            check_report(store, spec, tmp)
        finally:
            fz.restore_permissions(tmp)


@given(fz.store_spec(max_runs=3))
@fz.fuzz_settings(max_examples=2)
def test_corrupted_stores_in_subprocess(spec):
    """The same properties with a real process: time and memory bound, no traceback on stderr."""
    fz.count("store: export + report + compare (subprocess)")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        try:
            store = fz.write_store(spec, tmp)
            for name, check in (("export", check_export), ("report", check_report)):  # each with its own outputs
                (tmp / name).mkdir()
                check(store, spec, tmp / name, subprocess=True)
            result = fz.subprocess_cli(
                "compare", "--history", "3", "--root", str(store.root), str(store.runs[-1]), "--out", str(tmp / "cmp")
            )
            note(f"compare: exit {result.code}\nstderr: {result.stderr[-2000:]}")
            problem = result.problem(ALL_EXITS)
            assert problem is None, f"harness compare: {problem}"
        finally:
            fz.restore_permissions(tmp)
