"""The results store: appending, truncated lines, migration, loading and export."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from harness.errors import StoreError
from harness.store import load, read_run
from harness.store.export import export
from harness.store.record import RECORD_FIELDS, SCHEMA_VERSION
from harness.store.rundir import append_record, check_writable, new_run_dir
from tests.conftest import run_cli
from tests.synthetic import make_record, make_run


def test_loaded_records_have_every_field(tmp_path):
    run = make_run(tmp_path, [make_record(), make_record(model="resnet18", status="oom")])
    frame = load(run)
    assert len(frame) == 2
    for name in RECORD_FIELDS:
        if name not in ("telemetry", "numerics", "profile"):
            assert name in frame.columns
    assert "telemetry.power_avg_w" in frame.columns and frame["telemetry.power_avg_w"].isna().all()
    assert frame.loc[frame.model == "resnet18", "status"].item() == "oom"
    assert frame["env.device_name"].unique().tolist() == ["Synthetic CPU"]


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path):
    run = make_run(tmp_path, [make_record(), make_record(model="resnet18")])
    (run / "records.jsonl").unlink()
    with open(run / "records-rank0.jsonl", "a") as f:
        f.write('{"model": "resnet34", "stat')
    with pytest.warns(UserWarning, match="truncated last line"):
        loaded = read_run(run)
    assert [r["model"] for r in loaded.records] == ["resnet50", "resnet18"]
    assert loaded.skipped and "truncated" in loaded.skipped[0]


def test_old_records_are_migrated_and_newer_skipped(tmp_path):
    old = {k: v for k, v in make_record().items() if k not in ("schema_version", "throughput_ci95")}
    old["ci95"] = [1.0, 2.0]
    newer = {**make_record(model="resnet18"), "schema_version": SCHEMA_VERSION + 1}
    run = make_run(tmp_path, [old, newer])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        loaded = read_run(run)
    assert len(loaded.records) == 1
    assert loaded.records[0]["throughput_ci95"] == [1.0, 2.0] and loaded.records[0]["schema_version"] == 1
    assert "newer" in loaded.skipped[0]


def test_append_is_one_line_per_record(tmp_path):
    path = tmp_path / "r.jsonl"
    for i in range(3):
        append_record(path, {"i": i})
    assert [json.loads(line)["i"] for line in path.read_text().splitlines()] == [0, 1, 2]


def test_not_a_run_and_unwritable_output_are_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="no run folders"):
        load(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        load(tmp_path / "missing")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="--out"):
        check_writable(blocker / "sub")
    with pytest.raises(StoreError, match="--out"):
        new_run_dir(blocker, "smoke", "cpu")


def test_export_csv_and_parquet(tmp_path):
    run = make_run(tmp_path, [make_record(), make_record(model="resnet18")])
    frame = load(run)
    csv = pd.read_csv(export(frame, tmp_path / "out.csv"))
    assert len(csv) == 2 and json.loads(csv.loc[0, "samples_ms"])[0] == frame.loc[0, "samples_ms"][0]
    pq = pd.read_parquet(export(frame, tmp_path / "out.parquet"))
    assert list(pq["samples_ms"][0])[:3] == frame.loc[0, "samples_ms"][:3]
    result = run_cli("export", str(run), "-o", str(tmp_path / "cli.csv"))
    assert result.returncode == 0 and "2 records" in result.stdout
    bad = run_cli("export", str(tmp_path / "nope"), "-o", str(tmp_path / "x.csv"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_a_record_appended_after_a_torn_line_is_kept(tmp_path):
    path = tmp_path / "records-rank0.jsonl"
    append_record(path, {"case_id": "a"})
    with open(path, "a") as f:
        f.write('{"case_id": "b", "sta')  # the worker died mid-write
    append_record(path, {"case_id": "b"})  # the restarted worker measures b again
    with pytest.warns(UserWarning, match="corrupt line"):
        from harness.store.rundir import read_jsonl

        assert [r["case_id"] for r in read_jsonl(path)] == ["a", "b"]


def test_rank_files_win_over_a_stale_merged_file_and_unrecorded_cases_are_noted(tmp_path):
    run = make_run(tmp_path, [make_record(), make_record(model="resnet18")])
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["case_ids"] = [r["case_id"] for r in read_run(run).records] + ["resnet34/inference/bs32/fp32"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    import os
    import time

    append_record(run / "records-rank0.jsonl", make_record(model="resnet101"))  # a resume appended after merging
    later = time.time() + 5
    os.utime(run / "records-rank0.jsonl", (later, later))
    loaded = read_run(run)
    assert [r["model"] for r in loaded.records] == ["resnet50", "resnet18", "resnet101"]
    assert any("1 case(s) of the run have no record (resnet34/inference/bs32/fp32)" in n for n in loaded.notes)
