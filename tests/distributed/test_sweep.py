"""Sharded sweeps on two CPU ranks (gloo): through `harness run`, through a bare torchrun, and with idle ranks."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.distributed.common import SWEEP, harness, manifest, read_jsonl, run_dir_of, torchrun, write_suite

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def _measured(record: dict) -> str:
    """A record without what the run holds again when it closes (MFU against the best of its start and end probes)."""
    return str({k: v for k, v in record.items() if k not in ("mfu", "message")})


def _check_one_run(run_dir, expected_ids: set[str], world_size: int) -> list[dict]:
    """Every case recorded exactly once, the merged file equal to the rank files (but for MFU, held against the
    rank's best probe), one closed manifest with each rank's health probes."""
    records = read_jsonl(run_dir / "records.jsonl")
    assert Counter(r["case_id"] for r in records) == Counter(expected_ids)
    per_rank = [read_jsonl(run_dir / f"records-rank{r}.jsonl") for r in range(world_size)]
    assert sorted(map(_measured, sum(per_rank, []))) == sorted(map(_measured, records))
    assert all(r["mfu"] is None or 0 < r["mfu"] <= 1 for r in records)
    m = manifest(run_dir)
    for rank in range(world_size):
        health = m["ranks"][str(rank)]["health"]
        assert health["start"]["at"] <= health["end"]["at"] and health["spread"], (rank, health)
        # the conv was measured, or (a loaded machine: not one conv within its share of the budget) the probe says so
        said = {**(health["start"].get("conv_skipped") or {}), **(health["end"].get("conv_skipped") or {})}
        assert m["ranks"][str(rank)]["peak"]["conv_tflops"].get("fp32_cl", 0) > 0 or "fp32_cl" in said, health
    assert m["health"] == m["ranks"]["0"]["health"] and m["peak"] == m["ranks"]["0"]["peak"]
    assert m["status"] == "complete" and m["world_size"] == world_size and m["missing"] == []
    assert m["records"] == len(expected_ids) and m["counts"] == {"ok": len(expected_ids)}
    for rank in range(world_size):
        info = m["ranks"][str(rank)]
        assert info["records"] == len(per_rank[rank]) == info["assigned"] == len(info["cases"])
        assert all(r["rank"] == rank and r["world_size"] == 1 for r in per_rank[rank])
        assert {r["case_id"] for r in per_rank[rank]} == set(info["cases"])
    return per_rank


def test_harness_run_shards_a_sweep_across_two_ranks(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "two-rank", batches="[1, 2]")
    result = harness("run", str(suite), "--nproc-per-node", "2", "--out", str(tmp_path / "out"), "--no-report")
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(result)
    assert run_dir.parent == tmp_path / "out" / "two-rank"
    assert len(list((tmp_path / "out" / "two-rank").iterdir())) == 1
    ids = {f"resnet18/inference/bs{b}/fp32{cl}/r32" for b in (1, 2) for cl in ("", "/cl")}
    per_rank = _check_one_run(run_dir, ids, 2)
    assert all(per_rank), "both ranks measured something"
    m = manifest(run_dir)
    assert m["launch"]["launcher"] == "harness" and m["launch"]["nproc_per_node"] == 2
    # Two ranks on two cores: each gets one core, and says so in its records.
    assert {r["num_threads"] for r in sum(per_rank, [])} == {1}
    assert m["ranks"]["0"]["pid"] != m["ranks"]["1"]["pid"]
    # The summary table lists every case once, and the run folder is the last line.
    assert all(result.stdout.count(case_id) == 1 for case_id in ids)


def test_bare_torchrun_worker_opens_one_run_folder(tmp_path):
    suite = write_suite(tmp_path, SWEEP, "bare", batches="[1, 3]")
    out = tmp_path / "out"
    result = torchrun("-m", "harness.worker", str(suite), "--out", str(out), "--no-report", "--no-progress")
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(result)
    assert [p.name for p in (out / "bare").iterdir()] == [run_dir.name]
    ids = {f"resnet18/inference/bs{b}/fp32{cl}/r32" for b in (1, 3) for cl in ("", "/cl")}
    _check_one_run(run_dir, ids, 2)
    assert manifest(run_dir)["launch"]["launcher"] == "torchrun"


def test_more_ranks_than_cases_leaves_idle_ranks_that_finish_cleanly(tmp_path):
    suite = write_suite(
        tmp_path, SWEEP.replace("channels_last: [false, true]", "channels_last: [false]"), "idle", batches="[2]"
    )
    result = harness("run", str(suite), "--nproc-per-node", "3", "--out", str(tmp_path / "out"), "--no-report")
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(result)
    per_rank = _check_one_run(run_dir, {"resnet18/inference/bs2/fp32/r32"}, 3)
    assert sorted(len(records) for records in per_rank) == [0, 0, 1]
    assert manifest(run_dir)["world_size"] == 3
