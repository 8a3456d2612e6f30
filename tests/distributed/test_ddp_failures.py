"""DDP down the CUDA branch (through the CUDA test double, over gloo): each rank on its own GPU, and one rank's
failure recorded by every member of the group, with the run going on, instead of a hang and a crash."""

from __future__ import annotations

import pytest

from tests.distributed.common import DDP, harness, manifest, read_jsonl, run_dir_of, write_suite

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

SUITE = DDP.replace("device: cpu", "device: cuda").replace(
    "model: [resnet18]", "model: [resnet18]\n  batch_size: [2, 4]"
)


def test_one_ranks_oom_ends_the_case_as_oom_on_every_rank_and_the_run_goes_on(tmp_path):
    suite = write_suite(tmp_path, SUITE, "ddp-fail")
    result = harness(
        "run",
        str(suite),
        "--out",
        str(tmp_path / "out"),
        "--no-report",
        timeout=400,
        HARNESS_FAKE_CUDA="2",
        HARNESS_TEST_FAIL="resnet18/train/bs2/*@1:trial:oom",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = run_dir_of(result)
    m = manifest(run_dir)
    assert m["status"] == "complete" and int(m.get("restarts") or 0) == 0
    records = {(r["case_id"], r["world_size"], r["rank"]): r for r in read_jsonl(run_dir / "records.jsonl")}
    assert len(records) == 6
    # every rank measured on its own GPU: cuda:LOCAL_RANK
    assert {r["rank"]: r["device"] for r in records.values()} == {0: "cuda:0", 1: "cuda:1"}
    failed = "resnet18/train/bs2/fp32/r64"
    own, echo = records[(failed, 2, 1)], records[(failed, 2, 0)]
    assert own["status"] == "oom" and "out of memory" in own["message"]
    assert (
        echo["status"] == "oom" and echo["message"].startswith("rank 1 failed:") and "out of memory" in echo["message"]
    )
    assert echo["global_throughput_img_s"] is None
    # the unit after it runs on a new group and is measured by both ranks
    for key in [(failed, 1, 0), ("resnet18/train/bs4/fp32/r64", 1, 0)] + [
        ("resnet18/train/bs4/fp32/r64", 2, r) for r in (0, 1)
    ]:
        assert records[key]["status"] == "ok", records[key]["message"]
        assert records[key]["cudnn_benchmark"] is True
