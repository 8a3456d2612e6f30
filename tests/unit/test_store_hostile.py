"""Hostile and broken stores (issue 14, defects 4 to 9 and 11): one reader of records with one rule for what is valid,
broken runs skipped beside good ones (named, and exit code 5), unwritable outputs in one line, no measured record
lost when its records file cannot be written.

Every test here failed on the code before the fix, for what it checks (not for a missing name): new names are
imported inside the tests that need them, after the behaviour is checked.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.cli import main
from harness.errors import HarnessError, StoreError
from harness.store import read_run
from harness.store.record import SCHEMA_VERSION
from tests.conftest import ROOT
from tests.synthetic import make_record, make_run

#: harness.store.skips.EXIT_SKIPPED: a command that completed but skipped some input.
SKIPPED = 5
DROP = object()  # a field left out of a record


def night(root: Path, day: int, name: str | None = None, step_ms: float = 100.0) -> Path:
    """A run of suite ``nightly`` of two cases, started on 2026-01-<day>."""
    records = [
        make_record(model="resnet18", step_ms=step_ms, seed=day * 10, suite="nightly"),
        make_record(model="resnet50", step_ms=2 * step_ms, seed=day * 10 + 1, suite="nightly"),
    ]
    return make_run(root, records, suite="nightly", started_at=f"2026-01-{day:02d}T02:00:00Z", name=name)


def add_lines(run: Path, *lines: str) -> Path:
    """Append raw lines to the run's rank file and drop the merged copy, so the rank file is what is read."""
    rank_file = run / "records-rank0.jsonl"
    with open(rank_file, "a") as f:
        for line in lines:
            f.write(line + "\n")
    (run / "records.jsonl").unlink(missing_ok=True)
    return rank_file


def cli(capsys, *argv) -> tuple[int, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def skip_lines(err: str) -> list[str]:
    """The lines a command printed about what it skipped, without the ``harness COMMAND:`` prefix."""
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if ": skipped " in line and line.startswith("harness "))
    block = [lines[start].split(": ", 1)[1]]
    block += [line for line in lines[start + 1 :] if line.startswith("  ")]
    return block


@contextlib.contextmanager
def unwritable(*paths: Path):
    """Make ``paths`` (files, or folders and all below them) refuse writes, as a read-only file or folder does.

    As root, permission bits do not stop a write, so opening for writing is refused here the way the OS refuses a
    user: PermissionError (EACCES) from ``os.open`` and ``open``. Otherwise the files and folders are chmod-ed."""
    paths = tuple(Path(p).resolve() for p in paths)
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return

    def refused(path) -> bool:
        try:
            target = Path(os.fsdecode(path)).resolve()
        except (TypeError, ValueError):
            return False
        return any(target == p or p in target.parents for p in paths)

    real_os_open, real_open = os.open, builtins.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def os_open(path, flags, *args, **kwargs):
        if flags & writing and refused(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and refused(file):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(file))
        return real_open(file, mode, *args, **kwargs)

    os.open, builtins.open = os_open, open_
    try:
        yield
    finally:
        os.open, builtins.open = real_os_open, real_open


# --- defect 4: a records line that is [1,2,3] or null was dropped without a word ---------------------------------


def test_a_line_that_is_json_but_not_an_object_is_skipped_with_a_note(tmp_path, capsys):
    run = night(tmp_path, 1)
    add_lines(run, "[1,2,3]", "null")
    with pytest.warns(UserWarning, match="not a record"):
        loaded = read_run(run)
    assert len(loaded.records) == 2
    assert [s.split(": ", 1)[0] for s in loaded.skipped] == [
        f"{run}/records-rank0.jsonl:3",
        f"{run}/records-rank0.jsonl:4",
    ]
    assert "it is an array, not a record" in loaded.skipped[0] and "it is null" in loaded.skipped[1]
    code, _, err = cli(capsys, "report", run, "-o", tmp_path / "r.html")
    assert code == SKIPPED and "skipped 2 input(s): 2 not a record" in err


# --- defect 5: three readers, three answers, for {"case_id": 5, "status": []} ------------------------------------


def test_report_compare_and_export_skip_the_same_invalid_record_and_say_so_alike(tmp_path, capsys):
    base, cand = night(tmp_path, 1), night(tmp_path, 2, name="cand")
    bad = json.dumps({"case_id": 5, "status": []})
    add_lines(cand, bad)
    where = f"{cand}/records-rank0.jsonl:3"

    code, _, err_report = cli(capsys, "report", cand, "-o", tmp_path / "r.html")
    assert code == SKIPPED
    html = (tmp_path / "r.html").read_text()
    assert "invalid record skipped" in html

    code, out, err_compare = cli(capsys, "compare", base, cand, "--format", "json", "--out", tmp_path / "cmp")
    assert code == SKIPPED
    result = json.loads(out)
    cases = {c["key"] for bucket in result["buckets"].values() for c in bucket}
    assert "5" not in cases and len(cases) == 2
    assert any(where in n and "invalid record" in n for n in result["notes"])

    code, _, err_export = cli(capsys, "export", cand, "-o", tmp_path / "x.csv")
    assert code == SKIPPED
    import pandas as pd

    frame = pd.read_csv(tmp_path / "x.csv")
    assert (
        len(frame) == 2 and frame["batch_size"].dtype.kind == "i" and "5" not in frame["case_id"].astype(str).tolist()
    )

    # one rule, one formatter: the three commands print the same lines about what they skipped
    expected = [
        "skipped 1 input(s): 1 invalid record",
        f"  {where}: invalid record skipped: model is missing; case_id is 5 (a number), not a string; "
        "status is [] (an array), not a string; correct or remove the line",
    ]
    assert skip_lines(err_report) == skip_lines(err_compare) == skip_lines(err_export) == expected


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"case_id": DROP}, "case_id is missing"),
        ({"model": DROP}, "model is missing"),
        ({"status": DROP}, "status is missing"),
        ({"case_id": ""}, "case_id is ''"),
        ({"status": "fine"}, "status 'fine' is not one of ok, oom"),
        ({"batch_size": "32"}, "batch_size is '32' (a string), not an integer"),
        ({"batch_size": 32.5}, "batch_size is 32.5 (a number), not an integer"),
        ({"batch_size": True}, "batch_size is True (a boolean), not an integer"),
        ({"throughput_img_s": "fast"}, "throughput_img_s is 'fast' (a string), not a finite number"),
        ({"samples_ms": [1.0, "x"]}, "not a list of finite numbers"),
        ({"channels_last": "yes"}, "channels_last is 'yes' (a string), not true or false"),
        ({"tags": "a"}, "tags is 'a' (a string), not a list of strings"),
        ({"telemetry": [1]}, "telemetry is [1] (an array), not an object"),
        ({"world_size": 0}, "world_size is 0, not 1 or more"),
        ({"rank": None}, "rank is null, not an integer"),
        ({"schema_version": "1"}, "schema_version is '1', not a schema version"),
    ],
)
def test_the_validity_rule_names_what_is_wrong(tmp_path, record, reason):
    run = night(tmp_path, 1)
    line = {k: v for k, v in {**make_record(), **record}.items() if v is not DROP}
    add_lines(run, json.dumps(line))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = read_run(run)
    assert len(loaded.records) == 2
    assert len(loaded.skipped) == 1 and reason in loaded.skipped[0], loaded.skipped


def test_a_record_with_the_optional_fields_null_or_missing_and_extra_keys_is_valid(tmp_path):
    minimal = {"case_id": "resnet18/x", "model": "resnet18", "status": "error", "telemetry": None, "mine": [1]}
    run = night(tmp_path, 1)
    add_lines(run, json.dumps(minimal))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = read_run(run)
    assert len(loaded.records) == 3 and not loaded.skipped
    assert loaded.records[-1]["telemetry"]["power_avg_w"] is None and loaded.records[-1]["mine"] == [1]


# --- defect 6: a manifest of a newer schema version was read as if it were this one's --------------------------


def test_a_manifest_of_a_newer_schema_is_refused_and_skipped_beside_good_runs(tmp_path, capsys):
    night(tmp_path, 1)
    newer = night(tmp_path, 2, name="newer")
    manifest = json.loads((newer / "manifest.json").read_text())
    (newer / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 999}))
    with pytest.raises(StoreError, match=f"schema version 999, newer than {SCHEMA_VERSION}; upgrade harness"):
        read_run(newer)
    code, out, err = cli(capsys, "report", tmp_path, "-o", tmp_path / "r.html")
    assert code == SKIPPED and "(1 run(s), 2 record(s)" in out
    assert f"{newer}: run skipped:" in err and "upgrade harness" in err


# --- defect 7: one truncated manifest stopped report, export and compare --history over all the good runs --------


def test_a_truncated_manifest_skips_that_run_only_in_report_export_and_compare_history(tmp_path, capsys):
    root = tmp_path / "results"
    for day in (1, 2, 3):
        night(root, day)
    broken = night(root, 4, name="broken")
    (broken / "manifest.json").write_text((broken / "manifest.json").read_text()[:60])
    candidate = night(root, 5, name="candidate", step_ms=130)

    code, out, err = cli(capsys, "report", root, "-o", tmp_path / "r.html")
    assert code == SKIPPED and "(4 run(s), 8 record(s)" in out
    assert f"{broken}: run skipped: {broken}/manifest.json is not JSON" in err and "Traceback" not in err

    code, out, err = cli(capsys, "export", root, "-o", tmp_path / "x.csv")
    assert code == SKIPPED and "wrote 8 records" in out and f"{broken}: run skipped" in err

    code, out, err = cli(capsys, "compare", "--history", 3, "--root", root, candidate, "--format", "json")
    assert code == SKIPPED
    result = json.loads(out)
    assert len(result["baseline_runs"]) == 3 and any(f"{broken}: run skipped" in n for n in result["notes"])
    assert result["counts"]["regressed"] == 2 and f"{broken}: run skipped" in err
    # under --fail-on regression a regression still says 1: it matters more than a skipped run
    code, _, _ = cli(capsys, "compare", "--history", 3, "--root", root, candidate, "--fail-on", "regression")
    assert code == 1


@pytest.mark.parametrize(
    "text, what",
    [
        ("[1, 2]", "it is an array, not an object"),
        ("null", "it is null, not an object"),
        ('{"environment": [1]}', "its environment is an array; it must be an object"),
        ('{"started_at": 5}', "its started_at is a number; it must be a string"),
        ('{"schema_version": "one"}', "its schema_version 'one' is not a schema version"),
        ("\xff\xfe", "not UTF-8"),
    ],
)
def test_a_manifest_that_is_not_one_is_a_clear_skip(tmp_path, capsys, text, what):
    night(tmp_path, 1)
    bad = night(tmp_path, 2, name="bad")
    (bad / "manifest.json").write_bytes(text.encode("latin-1"))
    code, out, err = cli(capsys, "export", tmp_path, "-o", tmp_path / "x.csv")
    assert code == SKIPPED and "wrote 2 records" in out and what in err and "Traceback" not in err
    code, _, err = cli(capsys, "export", bad, "-o", tmp_path / "y.csv")
    assert code == 2 and what in err


# --- defect 8: a run folder without a manifest was left out without a word ----------------------------------------


def test_a_folder_of_records_without_a_manifest_is_named(tmp_path, capsys):
    night(tmp_path, 1)
    orphan = night(tmp_path, 2, name="orphan")
    (orphan / "manifest.json").unlink()
    for argv in (("report", tmp_path, "-o", tmp_path / "r.html"), ("export", tmp_path, "-o", tmp_path / "x.csv")):
        code, out, err = cli(capsys, *argv)
        assert code == SKIPPED, argv
        assert (
            f"{orphan}: records skipped: the folder holds records-rank0.jsonl, records.jsonl but no manifest.json"
            in err
        )
        assert f"pass the records file itself ({orphan}/records-rank0.jsonl)" in err
    # and as the fix says, the records file itself is read
    code, out, _ = cli(capsys, "export", orphan / "records-rank0.jsonl", "-o", tmp_path / "o.csv")
    assert code == 0 and "wrote 2 records" in out


# --- defect 9: export into a read-only folder was a traceback -----------------------------------------------------


def test_export_into_a_read_only_folder_is_one_line_and_exit_2(tmp_path, capsys):
    run = night(tmp_path, 1)
    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        code, out, err = cli(capsys, "export", run, "-o", locked / "x.csv")
    assert code == 2 and not out
    assert err.strip() == (
        f"harness export: error: cannot write {locked}/x.csv (Permission denied); choose a writable path with -o FILE"
    )
    assert not list(locked.iterdir())  # no half-written file left behind


# --- defect 11: a records file that cannot be written lost the measured record ------------------------------------


def fake_case(case_id: str) -> SimpleNamespace:
    """A case as the case loop reads it (its id, what groups it with others of one model, what its memory need is
    estimated from), measured by a stub."""
    return SimpleNamespace(
        id=case_id, model="resnet18", mode="inference", batch_size=2, precision="fp32", resolution=224, impl="builtin",
        weights=None, channels_last=False, device="cpu", seed=0, compile=False,
    )  # fmt: skip


def test_a_record_that_cannot_be_appended_is_rescued_and_the_loop_stops(tmp_path, capsys):
    from harness.launch.caseloop import run_cases

    run = night(tmp_path, 1)
    rank_file = run / "records-rank0.jsonl"
    measured = make_record(model="resnet101", suite="nightly")
    cases = [fake_case(measured["case_id"]), fake_case("never/measured")]
    ctx = SimpleNamespace(run_dir=run, rank=0, device="cpu", notes={})
    calls = []

    def measure(case, ctx):
        calls.append(case.id)
        return measured

    with unwritable(rank_file), pytest.raises(HarnessError) as raised:
        run_cases(cases, ctx, measure=measure)
    rescued = run / "records-rank0.rescued.jsonl"
    assert calls == [measured["case_id"]]  # stopped after the case it could not record
    assert [json.loads(line) for line in rescued.read_text().splitlines()] == [measured]
    message = str(raised.value)
    assert f"cannot append to {rank_file} (Permission denied)" in message and f"saved to {rescued}" in message
    assert f"harness run --resume {run}" in message and f"saved to {rescued}" in capsys.readouterr().err
    # the loader reads rescued records with the rank files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = read_run(run)
    assert [r["model"] for r in loaded.records] == ["resnet18", "resnet50", "resnet101"]


def test_a_record_goes_to_the_temp_dir_when_the_run_folder_cannot_take_it(tmp_path, monkeypatch, capsys):
    import tempfile

    from harness.launch.caseloop import run_cases

    run = night(tmp_path, 1)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    measured = make_record(model="resnet101", suite="nightly")
    ctx = SimpleNamespace(run_dir=run, rank=0, device="cpu", notes={})
    beside = run / "records-rank0.rescued.jsonl"
    beside.touch()
    with unwritable(run / "records-rank0.jsonl", beside), pytest.raises(HarnessError, match="saved to"):
        run_cases([fake_case(measured["case_id"])], ctx, measure=lambda case, ctx: measured)
    saved = list((tmp_path / "tmp").glob("*.jsonl"))
    assert [p.name for p in saved] == [f"harness-{run.name}-records-rank0.rescued.jsonl"]
    assert json.loads(saved[0].read_text()) == measured and str(saved[0]) in capsys.readouterr().err


RESUME_WITH_UNWRITABLE_RECORDS = """
import errno, os, sys
target = os.path.abspath(sys.argv[1])
real = os.open
def refusing(path, flags, *args, **kwargs):
    # a read-only records-rank0.jsonl, also for root (who is not stopped by permission bits)
    if os.path.abspath(os.fsdecode(path)) == target and flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND):
        raise PermissionError(errno.EACCES, "Permission denied", target)
    return real(path, flags, *args, **kwargs)
os.open = refusing
from harness.cli import main
sys.exit(main(sys.argv[2:]))
"""

ONE_CASE = """
name: one
defaults:
  device: cpu
  resolution: 32
  warmup: {min_iters: 1, max_iters: 2, max_seconds: 1}
  measure: {min_seconds: 0.01, min_iters: 2}
matrix:
  model: [resnet18]
  mode: [inference]
  batch_size: [2]
  precision: [fp32]
"""


@pytest.mark.slow
def test_resume_with_a_read_only_records_file_keeps_the_measurement_and_fails_the_run(tmp_path):
    suite = tmp_path / "one.yaml"
    suite.write_text(ONE_CASE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(suite),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
            "--no-report",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    run = Path(first.stdout.strip().splitlines()[-1].removeprefix("run folder: "))
    rank_file = run / "records-rank0.jsonl"
    rank_file.write_text("")  # the case is to be measured again by --resume
    (run / "records.jsonl").unlink()
    if os.geteuid() != 0:
        rank_file.chmod(0o444)
    resumed = subprocess.run(
        [
            sys.executable,
            "-c",
            RESUME_WITH_UNWRITABLE_RECORDS,
            str(rank_file),
            "run",
            "--resume",
            str(run),
            "--no-progress",
            "--no-report",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode != 0 and "Traceback" not in resumed.stderr, resumed.stderr
    rescued = run / "records-rank0.rescued.jsonl"
    assert f"saved to {rescued}" in resumed.stderr
    [record] = [json.loads(line) for line in rescued.read_text().splitlines()]
    assert record["case_id"] == "resnet18/inference/bs2/fp32/r32" and record["status"] == "ok"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and f"cannot append to {rank_file}" in manifest["failure"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [r["case_id"] for r in read_run(run).records] == [record["case_id"]]


def test_the_exit_code_of_a_run_that_skipped_input_is_documented():
    for doc in ("README.md", "results/README.md", "docs/nightly.md"):
        text = (ROOT / doc).read_text()
        assert f"| {SKIPPED} |" in text or f"exit {SKIPPED}" in text, doc
    from harness.store.skips import EXIT_SKIPPED

    assert EXIT_SKIPPED == SKIPPED
