"""The store index (``RESULTS/.harness-index``): what export, query and compare --history read through it is what
the JSONL holds, after any edit, with the same skips, and two processes building it at once leave it whole."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
import pandas as pd  # noqa: E402

from harness.store import load  # noqa: E402
from harness.store.index import INDEX_DIR, INDEX_FILE, StoreIndex  # noqa: E402
from harness.store.loader import read_run  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.synthetic import make_record, make_run  # noqa: E402
from tests.unit.test_store_hostile import cli  # noqa: E402

MODELS = ["resnet18", "resnet34", "resnet50"]


def night(root: Path, day: int, step_ms: float = 100.0, suite: str = "nightly") -> Path:
    records = [
        make_record(model=m, step_ms=step_ms * (i + 1), seed=day * 10 + i, suite=suite) for i, m in enumerate(MODELS)
    ]
    return make_run(root, records, suite=suite, started_at=f"2026-01-{day:02d}T02:00:00Z")


def nulls_as_none(column) -> list:
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in column.tolist()]


def rewrite(run: Path, change) -> None:
    """Apply ``change`` to every record of the run's merged file (what the loader reads), written anew."""
    path = run / "records.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(change(r)) + "\n" for r in lines))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # newer than the rank file, as a merge is


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "results"
    for day in (1, 2, 3):
        night(root, day)
    night(root, 4, suite="hardware")
    return root


def test_export_of_a_tree_holds_what_the_loader_reads_cold_and_warm(tree, tmp_path, capsys):
    expected = load(tree).sort_values(["run_dir", "case_id"]).reset_index(drop=True)
    for attempt in ("cold", "warm"):
        code, out, _ = cli(capsys, "export", tree, "-o", tmp_path / f"{attempt}.parquet")
        assert code == 0 and out.strip() == f"wrote 12 records to {tmp_path / f'{attempt}.parquet'}"
        got = pd.read_parquet(tmp_path / f"{attempt}.parquet").sort_values(["run_dir", "case_id"])
        got = got.reset_index(drop=True)
        assert set(got.columns) == set(expected.columns)
        for name in (
            "case_id",
            "run_dir",
            "throughput_img_s",
            "run_started_at",
            "env.torch",
            "rss_peak_mib",
            "numerics.max_rel_err",
        ):
            assert nulls_as_none(got[name]) == nulls_as_none(expected[name]), name
        assert [list(s) for s in got["samples_ms"]] == list(expected["samples_ms"])
    assert (tree / INDEX_DIR / INDEX_FILE).is_file()
    assert len(list((tree / INDEX_DIR / "runs").glob("*.parquet"))) == 4


def test_csv_export_of_a_tree_keeps_lists_as_json(tree, tmp_path, capsys):
    code, _, _ = cli(capsys, "export", tree, "-o", tmp_path / "all.csv")
    frame = pd.read_csv(tmp_path / "all.csv")
    assert code == 0 and len(frame) == 12
    first = load(tree).set_index(["run_dir", "case_id"])
    row = frame.iloc[0]
    assert json.loads(row["samples_ms"]) == first.loc[(row["run_dir"], row["case_id"]), "samples_ms"]


def test_an_edited_run_is_read_again_not_taken_from_the_index(tree, tmp_path, capsys):
    sql = "SELECT round(max(throughput_img_s), 1) AS top FROM records WHERE model = 'resnet18'"
    pytest.importorskip("duckdb")
    code, out, _ = cli(capsys, "query", tree, sql, "--format", "json")
    before = json.loads(out)[0]["top"]
    assert code == 0 and before == pytest.approx(320, rel=0.05)
    run = sorted((tree / "nightly").iterdir())[1]
    rewrite(run, lambda r: {**r, "throughput_img_s": 999.0} if r["model"] == "resnet18" else r)
    code, out, _ = cli(capsys, "query", tree, sql, "--format", "json")
    assert code == 0 and json.loads(out)[0]["top"] == 999.0
    # a run added, and a run removed, are seen too
    added = night(tree, 5, step_ms=50.0)
    code, out, _ = cli(capsys, "query", tree, "SELECT count(DISTINCT run_dir) AS n FROM records", "--format", "json")
    assert json.loads(out)[0]["n"] == 5
    for f in added.iterdir():
        f.unlink()
    added.rmdir()
    code, out, _ = cli(capsys, "query", tree, "SELECT count(DISTINCT run_dir) AS n FROM records", "--format", "json")
    assert json.loads(out)[0]["n"] == 4
    assert len(list((tree / INDEX_DIR / "runs").glob("*.parquet"))) == 4  # the removed run's table went with it


def test_skips_are_reported_alike_from_the_jsonl_and_from_the_index(tree, tmp_path, capsys):
    run = sorted((tree / "nightly").iterdir())[0]
    with open(run / "records.jsonl", "a") as f:
        f.write('{"case_id": "x", "model": "resnet18", "status": "exploded"}\n{"not json\n')
    lines = []
    for attempt in ("cold", "warm"):
        code, out, err = cli(capsys, "export", tree, "-o", tmp_path / f"{attempt}.csv")
        assert code == 5 and "wrote 12 records" in out
        lines.append(err.splitlines())
    assert lines[0] == lines[1]
    assert "skipped 2 input(s)" in lines[0][0] and any("exploded" in line for line in lines[0])


def test_history_read_through_the_index_follows_an_edit(tree):
    from harness.regress.baseline import select_history

    candidate = read_run(night(tree, 9))
    history, _ = select_history(candidate, tree, 2)
    assert [r.path.name for r in history] == ["20260102T020000Z", "20260103T020000Z"]
    first = {r["case_id"]: r["throughput_img_s"] for r in history[1].records}
    again, _ = select_history(candidate, tree, 2)  # read through the index's record of which lines are valid
    assert [r.records for r in again] == [r.records for r in history]
    assert [(r.notes, r.skips, r.manifest["started_at"]) for r in again] == [
        (r.notes, r.skips, r.manifest["started_at"]) for r in history
    ]
    rewrite(history[1].path, lambda r: {**r, "throughput_img_s": r["throughput_img_s"] * 2})
    edited, _ = select_history(candidate, tree, 2)
    assert {r["case_id"]: r["throughput_img_s"] for r in edited[1].records} == {k: v * 2 for k, v in first.items()}


def test_a_checked_read_refuses_the_lines_a_full_read_refused(tree):
    run = sorted((tree / "nightly").iterdir())[0]
    with open(run / "records.jsonl", "a") as f:
        f.write('{"case_id": "x", "model": "resnet18", "status": "exploded"}\n[1, 2]\n')
    index = StoreIndex(tree)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = index.read_run(run)
        checked = index.read_run(run)
    assert checked.records == full.records and len(full.records) == 3
    assert [str(s) for s in checked.skips] == [str(s) for s in full.skips] and len(full.skips) == 2


def test_two_processes_building_the_index_at_once_leave_it_whole(tree, tmp_path):
    for day in range(10, 30):
        night(tree, day)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "harness", "export", str(tree), "-o", str(tmp_path / f"{n}.csv")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0], results
    assert (tmp_path / "0.csv").read_bytes() == (tmp_path / "1.csv").read_bytes()
    data = json.loads((tree / INDEX_DIR / INDEX_FILE).read_text())
    assert len(data["runs"]) == 24
    assert not [p for p in (tree / INDEX_DIR).rglob(".*") if p.is_file()]  # no temporary file left behind
    # what the index names is there and is what the JSONL holds
    again = tmp_path / "again.csv"
    subprocess.run([sys.executable, "-m", "harness", "export", str(tree), "-o", str(again)], env=env, check=True)
    assert again.read_bytes() == (tmp_path / "0.csv").read_bytes()


def test_a_run_folder_given_alone_gets_no_index(tree, tmp_path, capsys):
    run = sorted((tree / "nightly").iterdir())[0]
    code, out, _ = cli(capsys, "export", run, "-o", tmp_path / "one.csv")
    assert code == 0 and "wrote 3 records" in out
    assert not (run / INDEX_DIR).exists() and not (tree / INDEX_DIR).exists()


@pytest.mark.parametrize(
    ("samples", "valid"),
    [
        ([1.5, 2, 3.25], True),
        ([1e308, 1e308], True),  # finite values whose sum is not
        ([1.0, float("nan")], False),
        ([1.0, float("inf")], False),
        ([1.0, True], False),
        ([1.0, "2.0"], False),
        ([1.0, None], False),
        ([], True),
    ],
)
def test_the_rule_for_a_list_of_numbers(samples, valid):
    from harness.store.record import problems

    found = problems(make_record(samples_ms=samples))
    assert (found == []) is valid, found


def test_a_damaged_table_of_the_index_is_not_trusted(tree, tmp_path, capsys):
    code, _, _ = cli(capsys, "export", tree, "-o", tmp_path / "before.csv")
    for table in (tree / INDEX_DIR / "runs").glob("*.parquet"):
        table.write_bytes(b"not parquet")
    code, out, _ = cli(capsys, "export", tree, "-o", tmp_path / "after.csv")
    assert code == 0 and "wrote 12 records" in out
    assert (tmp_path / "after.csv").read_bytes() == (tmp_path / "before.csv").read_bytes()
    pytest.importorskip("duckdb")
    code, out, err = cli(capsys, "query", tree, "SELECT count(*) FROM records")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err and INDEX_DIR in err


def test_compare_history_says_the_same_cold_and_warm_and_follows_an_edit(tree, tmp_path, capsys):
    candidate = night(tree, 9, step_ms=130.0)  # 30% slower than the history
    argv = ("compare", "--history", "3", "--root", tree, candidate, "--format", "json", "--out", tmp_path / "c")
    outputs = []
    for _ in range(2):  # without an index, then through it
        code, out, err = cli(capsys, *argv)
        outputs.append(out)
    assert (tree / INDEX_DIR / INDEX_FILE).is_file() and outputs[0] == outputs[1]
    assert json.loads(outputs[0])["counts"]["regressed"] == 3
    for run in sorted((tree / "nightly").iterdir())[:3]:  # the history measured as slow as the candidate
        rewrite(run, lambda r: {**r, "throughput_img_s": r["throughput_img_s"] / 1.3, "samples_ms": [
            s * 1.3 for s in r["samples_ms"]], "step_ms_median": r["step_ms_median"] * 1.3})  # fmt: skip
    code, out, err = cli(capsys, *argv)
    assert json.loads(out)["counts"]["regressed"] == 0


def test_tables_made_by_worker_processes_are_those_made_here(tree, tmp_path, monkeypatch):
    import shutil

    import harness.store.index

    POOL_MIN = 16
    monkeypatch.setattr(harness.store.index, "POOL_MIN", POOL_MIN)  # a pool for fewer runs than a store needs one

    for day in range(10, 10 + POOL_MIN):
        night(tree, day)
    first = sorted((tree / "nightly").iterdir())[0]
    with open(first / "records.jsonl", "a") as f:
        f.write('{"case_id": "x", "model": "resnet18", "status": "exploded"}\n')
    broken = night(tree, 30)
    (broken / "manifest.json").write_text("{not json")
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)
    made, skipped = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for root, workers in ((tree, 1), (copy, 2)):
            index = StoreIndex(root)
            found = []
            runs = index.tables(index.runs(found), workers=workers)
            skipped[workers] = [str(s).replace(str(root), "") for s in found]
            made[workers] = [
                (
                    r.path.relative_to(root),
                    r.rows,
                    [str(s).replace(str(root), "") for s in r.skips],
                    index.read_table(r),
                )
                for r in runs
            ]
            index.save()
    assert len(made[1]) == POOL_MIN + 4 and [m[:3] for m in made[1]] == [m[:3] for m in made[2]]
    assert skipped[1] == skipped[2] and len(skipped[1]) == 1 and "not JSON" in skipped[1][0]
    assert all(a[3].equals(b[3]) for a, b in zip(made[1], made[2], strict=True))
    assert any("exploded" in s for m in made[2] for s in m[2])
    again = StoreIndex(copy)  # what the workers made is kept as the index of the copy
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        assert [r.rows for r in again.tables(again.runs([]))] == [m[1] for m in made[2]]
    messages = sorted(str(w.message) for w in warned)  # each skip said again as the index is used
    assert len(messages) == 2 and "exploded" in messages[0] and "not JSON" in messages[1]
