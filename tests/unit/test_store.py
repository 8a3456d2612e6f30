"""The results store: appending, truncated lines, migration, loading and export."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from harness.errors import StoreError
from harness.store import load, read_run
from harness.store.export import export
from harness.store.record import GROUPS, RECORD_FIELDS, SCHEMA_VERSION
from harness.store.rundir import append_record, check_writable, new_run_dir
from tests.conftest import run_cli
from tests.synthetic import make_record, make_run


def test_loaded_records_have_every_field(tmp_path):
    run = make_run(tmp_path, [make_record(), make_record(model="resnet18", status="oom")])
    frame = load(run)
    assert len(frame) == 2
    for name in RECORD_FIELDS:
        if name not in GROUPS:
            assert name in frame.columns
    assert "telemetry.power_avg_w" in frame.columns and frame["telemetry.power_avg_w"].isna().all()
    assert "contention.other_cpu_pct" in frame.columns and frame["contention.other_cpu_pct"].isna().all()
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
    # A record from before the schema was versioned, of a published figure (a mean step, no samples or median):
    # its interval was named ci95, and it is still the interval of its throughput.
    old = {k: v for k, v in make_record().items() if k not in ("schema_version", "throughput_ci95")}
    old.update(ci95=[1.0, 2.0], samples_ms=None, step_ms_median=None, step_ms_mean=100.0)
    newer = {**make_record(model="resnet18"), "schema_version": SCHEMA_VERSION + 1}
    run = make_run(tmp_path, [old, newer])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        loaded = read_run(run)
    assert len(loaded.records) == 1
    assert loaded.records[0]["throughput_ci95"] == [1.0, 2.0] and loaded.records[0]["schema_version"] == 2
    assert "newer" in loaded.skipped[0]


def _schema_1(record: dict, **changes) -> dict:
    """``record`` as schema 1 wrote it: throughput over the total time, none of the noise fields."""
    old = {k: v for k, v in record.items() if k not in ("throughput_total_img_s", "stalled_steps", "noisy", "noise")}
    old.pop("contention")
    old.update(schema_version=1, throughput_img_s=record["throughput_total_img_s"])
    old.update(changes)
    return old


def test_a_schema_1_record_reads_with_the_median_throughput_and_keeps_the_total_one(tmp_path):
    measured = make_record(batch_size=8, n=40, noise=0.05, seed=3)
    published = make_record(model="resnet18", batch_size=256)
    published = _schema_1(published, samples_ms=None, step_ms_median=None, throughput_ci95=None, step_ms_mean=40.1)
    published["throughput_img_s"] = 6384.04  # what its publisher's images over total time said
    old = _schema_1(measured, mfu=1.13, throughput_ci95=[1.0, 2.0])
    (rec, pub) = read_run(make_run(tmp_path, [old, published])).records
    # a measured record: the figure the summary, the report and compare show is the median step's ...
    assert rec["throughput_img_s"] == pytest.approx(8 * 1000 / measured["step_ms_median"], abs=1e-4)
    assert rec["throughput_total_img_s"] == old["throughput_img_s"]
    lo, hi = rec["throughput_ci95"]
    assert lo < rec["throughput_img_s"] < hi and (lo, hi) != (1.0, 2.0)  # the interval is of the new figure
    # ... its MFU above 1 is unknown, and nothing was said about noise when it was measured
    assert rec["mfu"] is None
    assert rec["noisy"] is None and rec["noise"] == [] and rec["stalled_steps"] is None
    assert set(rec["contention"].values()) == {None}
    # an imported published record keeps what was published
    assert (pub["throughput_img_s"], pub["throughput_total_img_s"]) == (6384.04, 6384.04)
    assert pub["throughput_ci95"] is None and pub["step_ms_mean"] == 40.1


def test_the_migrated_interval_is_the_bootstrap_of_the_median_with_a_fixed_seed():
    from harness.store.loader import MIGRATION_RESAMPLES, migrate
    from harness.store.stats import throughput_interval

    old = _schema_1(make_record(batch_size=4, n=25, noise=0.1, seed=7))
    once, again = migrate(dict(old)), migrate(dict(old))
    assert once["throughput_ci95"] == again["throughput_ci95"]
    expected = throughput_interval(old["samples_ms"], 4, resamples=MIGRATION_RESAMPLES)
    assert once["throughput_ci95"] == pytest.approx(list(expected), abs=1e-4)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"samples_ms": "fast"}, "samples_ms is 'fast'"),
        ({"batch_size": "eight"}, "batch_size is 'eight'"),
        ({"step_ms_median": True}, "step_ms_median is True"),
        ({"throughput_img_s": "fast", "step_ms_median": None}, "throughput_img_s is 'fast'"),
    ],
)
def test_a_broken_schema_1_record_is_migrated_without_error_and_skipped_by_the_rule(tmp_path, changes, named):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        loaded = read_run(make_run(tmp_path, [_schema_1(make_record(), **changes)]))
    assert loaded.records == [] and named in loaded.skipped[0]


def test_steps_that_cannot_be_resampled_leave_the_migrated_interval_null(tmp_path):
    old = _schema_1(make_record(), samples_ms=[100.0, -1.0, 100.0], step_ms_median=100.0)
    (rec,) = read_run(make_run(tmp_path, [old])).records
    assert rec["throughput_ci95"] is None and rec["throughput_img_s"] == pytest.approx(32 * 1000 / 100.0)


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
