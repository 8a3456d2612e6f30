"""Fuzzing suite files: ``harness validate`` and ``harness run --dry-run`` on generated hostile suites.

Properties, for every generated suite file:

- both commands end within a time bound, with exit 0, 1 or 2, without a traceback, within a memory bound, and
  every line they print stays short (a value in a message is shown with a bounded repr);
- they agree: a suite that validates dry-runs, with the same number of cases;
- a dry run writes nothing under ``--out``;
- a suite that validates can be stored: its resolved form (what the run manifest holds) is strict JSON (no
  Infinity or NaN) and every integer in it fits in 64 bits (signed, or unsigned like a seed).

Most examples run the CLI in this process (fast); a few heavy ones (alias bombs, matrices of millions of cases,
huge numbers) run in a subprocess under ``RLIMIT_AS`` and a timeout.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, example, given, note

from tests.fuzz import strategies as fz


@pytest.fixture(autouse=True, scope="module")
def _summary(request):
    fz.register_summary(request.config)


def _count_cases(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text, re.MULTILINE)
    return int(found.group(1)) if found else None


def _too_big_ints(value, path="") -> list[str]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [f"{path}={value}"] if not -(2**63) <= value < 2**64 else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _too_big_ints(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _too_big_ints(v, f"{path}[{i}]")]
    return []


@given(fz.any_suite())
@example(
    "defaults: {device: cpu, measure: {min_seconds: .inf}}\nmatrix: {model: resnet18, batch_size: 1}\n"
)  # issue 14, item 2
@example("defaults: {batch_size: 100000000000000000000000}\nmatrix: {model: resnet18}\n")  # issue 14, item 3
@example("defaults: {seed: 100000000000000000000000}\nmatrix: {model: resnet18, batch_size: 1}\n")  # found by fuzzing
@fz.fuzz_settings(max_examples=250)
def test_generated_suites_in_process(text):
    fz.count("suites: validate + dry run (in-process)")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        path = fz.write_suite(tmp, text)
        out = tmp / "results"

        code, stdout, stderr = fz.cli("validate", str(path))
        event(f"validate exit {code}")
        note(f"validate: exit {code}\nstdout: {stdout[-1500:]}\nstderr: {stderr[-1500:]}")
        assert code in fz.EXITS, f"validate exit {code}"
        assert not fz.long_lines(stdout + stderr), f"validate printed very long lines: {fz.long_lines(stderr)[:2]}"
        if code == 2:
            assert stderr.strip(), "validate exit 2 without a message"

        run_code, run_out, run_err = fz.cli("run", str(path), "--dry-run", "--out", str(out))
        note(f"run --dry-run: exit {run_code}\nstdout: {run_out[-1500:]}\nstderr: {run_err[-1500:]}")
        assert run_code in fz.EXITS, f"run --dry-run exit {run_code}"
        assert not fz.long_lines(run_out + run_err), "run --dry-run printed very long lines"
        assert not out.exists() or not any(out.iterdir()), "a dry run wrote under --out"

        assert (code == 0) == (run_code == 0), f"validate exit {code} but run --dry-run exit {run_code}"
        if code == 0:
            n_valid = _count_cases(r"\((\d+) cases?\)", stdout)
            n_run = _count_cases(r"^(\d+) cases? \(dry run", run_out)
            if n_valid is not None and n_run is not None:
                assert n_valid == n_run, f"validate counts {n_valid} cases, the dry run {n_run}"
            _check_storable(path)


def _check_storable(path: Path) -> None:
    """What validates can be written to a manifest that other tools read: strict JSON, 64-bit integers."""
    from harness.suite import load_suite

    try:
        with fz._alarm(fz.INPROCESS_BOUND_S):
            resolved = load_suite(path).resolved()
    except fz.InProcessTimeout:
        raise AssertionError(f"load_suite ran past {fz.INPROCESS_BOUND_S} s") from None
    note(f"resolved: {json.dumps(resolved, default=str)[:1500]}")
    try:
        json.dumps(resolved, allow_nan=False, default=str)
    except ValueError as exc:
        raise AssertionError(f"an accepted suite's manifest would not be valid JSON ({exc})") from None
    too_big = _too_big_ints(resolved)
    assert not too_big, f"an accepted suite holds integers beyond 64 bits: {too_big[:3]}"


# Issue 14, item 1: nine levels of nine aliases, at the top level and under matrix.batch_size.
ISSUE_BOMB_TOP = "bomb: " + fz.bomb(9, 9) + "\n" + fz.BASE
ISSUE_BOMB_BATCH = "matrix: {model: resnet18, batch_size: " + fz.bomb(9, 9, "1") + "}\n"


@given(fz.heavy_suite())
@example(ISSUE_BOMB_TOP)
@example(ISSUE_BOMB_BATCH)
@example(fz.wide_matrix(50, 25))  # 400,000 cases (a small note of issue 14)
@fz.fuzz_settings(max_examples=6)
def test_heavy_suites_in_subprocess(text):
    """Alias bombs, huge matrices and huge numbers: within the time and memory bound, exit 0/1/2, no traceback."""
    fz.count("suites: heavy, validate + dry run (subprocess)")
    note(f"suite text ({len(text)} characters): {text[:600]}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        path = fz.write_suite(tmp, text)
        for argv in (("validate", str(path)), ("run", str(path), "--dry-run", "--out", str(tmp / "results"))):
            result = fz.subprocess_cli(*argv, cwd=tmp)
            problem = result.problem(fz.EXITS)
            assert problem is None, f"harness {argv[0]}: {problem}"
            assert not fz.long_lines(result.stderr), f"harness {argv[0]} printed very long lines"
