"""``harness query``: the five questions of docs/query.md against a store whose answers are known, the view's
columns, and the one-line errors (bad SQL, no DuckDB, no store)."""

from __future__ import annotations

import json
import re
import sys
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

from harness.cli import main  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.synthetic import FINGERPRINT, case_id, make_record, make_run  # noqa: E402

H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"
OLD, NEW = "550.54.15", "570.86.15"
OLD_TORCH, NEW_TORCH = "2.6.0+cu126", "2.7.1+cu128"
TRAIN = case_id("resnet50", "train", 32, "amp_bf16", False)
SMALL = case_id("resnet18", "inference", 32, "fp32", False)


def fingerprint(device: str, driver: str, torch: str, host: str) -> dict:
    return {**FINGERPRINT, "device_type": "cuda", "device_name": device, "driver": driver, "torch": torch, "host": host}


def day(n: int) -> str:
    """The UTC time ``n`` days ago at noon (``n`` < 0: in the past)."""
    today = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    return (today + timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%SZ")


def records(train_ms: float, infer_ms: float, power: float, small_status: str = "ok", noisy=False) -> list[dict]:
    """Three cases: resnet50 train and inference amp_bf16 at batch 32 (the inference one marked ``noisy``),
    resnet18 inference fp32."""
    power = {"power_avg_w": power}
    return [
        make_record(
            mode="train", precision="amp_bf16", step_ms=train_ms, noise=0.001, seed=1, telemetry=power, noisy=False
        ),
        make_record(precision="amp_bf16", step_ms=infer_ms, noise=0.001, seed=2, telemetry=power, noisy=noisy),
        make_record(model="resnet18", step_ms=20.0, noise=0.001, seed=3, status=small_status, noisy=False),
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Five runs of one suite:

    - H100 host h100-a: 50 and 20 days ago (driver 550, torch 2.6, resnet50 train step 100 ms), 10 and 3 days ago
      (driver 570, torch 2.7, train step 120 ms: slower); resnet18 ran out of memory 20 and 3 days ago; every
      case measured 20 days ago is marked noisy;
    - A100 host a100-a: 5 days ago (driver 570, torch 2.7); resnet50 inference 80 ms at 400 W (H100: 50 ms at
      700 W), so the A100 gives more images per joule.
    """
    root = tmp_path_factory.mktemp("query") / "results"
    runs = [
        (-50, H100, OLD, OLD_TORCH, "h100-a", records(100.0, 50.0, 700.0)),
        (-20, H100, OLD, OLD_TORCH, "h100-a", records(100.0, 50.0, 700.0, "oom", noisy=["contention"])),
        (-10, H100, NEW, NEW_TORCH, "h100-a", records(120.0, 50.0, 700.0)),
        (-3, H100, NEW, NEW_TORCH, "h100-a", records(120.0, 50.0, 700.0, "oom")),
        (-5, A100, NEW, NEW_TORCH, "a100-a", records(150.0, 80.0, 400.0)),
    ]
    for n, (when, device, driver, torch, host, recs) in enumerate(runs):
        fp = fingerprint(device, driver, torch, host)
        make_run(root, recs, suite="nightly", started_at=day(when), fingerprint=fp, name=f"run{n}")
    return root


def questions() -> list[tuple[str, str]]:
    """(title, SQL) of each question of docs/query.md, in order."""
    text = (ROOT / "docs" / "query.md").read_text()
    part = text.split("## Five questions", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"### (\d+\. [^\n]+)\n(?:.*?\n)??```sql\n(.*?)```", part, re.S)
    return [(title, sql) for title, sql in found]


def query(capsys, root: Path, sql: str, *extra: str) -> tuple[int, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["query", str(root), sql, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def answer(capsys, root: Path, sql: str) -> list[dict]:
    code, out, err = query(capsys, root, sql, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_the_docs_hold_five_questions():
    assert [title.split(".")[0] for title, _ in questions()] == ["1", "2", "3", "4", "5"]


def test_q1_resnet50_amp_bf16_train_on_h100_last_30_days_by_driver(store, capsys):
    rows = answer(capsys, store, questions()[0][1])
    # the run 50 days ago is out; the A100 run is not an H100
    assert [(r["driver"], r["runs"]) for r in rows] == [(OLD, 1), (NEW, 2)]
    assert rows[0]["img_s"] == pytest.approx(320.0, rel=0.01) and rows[1]["img_s"] == pytest.approx(266.7, rel=0.01)


def test_q2_cases_slower_when_torch_changed(store, capsys):
    rows = answer(capsys, store, questions()[1][1])
    assert [(r["gpu"], r["case_id"], r["torch_before"], r["torch_after"]) for r in rows] == [
        (H100, TRAIN, OLD_TORCH, NEW_TORCH)
    ]
    assert rows[0]["change_pct"] == pytest.approx(-16.7, abs=0.3)


def test_q3_images_per_joule_by_gpu(store, capsys):
    rows = answer(capsys, store, questions()[2][1])
    assert [r["gpu"] for r in rows] == [A100, H100]
    assert rows[0]["img_per_j"] == pytest.approx(400 / 400, rel=0.01)
    assert rows[1]["img_per_j"] == pytest.approx(640 / 700, rel=0.01) and rows[1]["records"] == 4


def test_q4_failures_of_the_last_week(store, capsys):
    rows = answer(capsys, store, questions()[3][1])
    # the out-of-memory 20 days ago is older than a week
    assert [(r["host"], r["case_id"], r["status"], r["times"]) for r in rows] == [("h100-a", SMALL, "oom", 1)]
    assert rows[0]["last_seen"].startswith(day(-3)[:10])


def test_q5_share_of_noisy_cases_per_host(store, capsys):
    rows = answer(capsys, store, questions()[4][1])
    # h100-a: 10 cases measured (12, less two out of memory), of which one (resnet50 inference 20 days ago) noisy
    assert [(r["host"], r["cases"]) for r in rows] == [("h100-a", 10), ("a100-a", 3)]
    assert rows[0]["noisy_share"] == pytest.approx(0.1) and rows[1]["noisy_share"] == 0


def test_the_view_flattens_the_manifest(store, capsys):
    rows = answer(
        capsys,
        store,
        "SELECT DISTINCT run_suite, env_host, env_torch, env_driver, fingerprint, run_started_at, run_status, "
        "typeof(run_started_at) AS t FROM records ORDER BY run_started_at",
    )
    assert len(rows) == 5 and {r["t"] for r in rows} == {"TIMESTAMP"}
    assert [r["env_host"] for r in rows] == ["h100-a", "h100-a", "h100-a", "a100-a", "h100-a"]
    assert {r["run_suite"] for r in rows} == {"nightly"} and {r["run_status"] for r in rows} == {"complete"}
    # one fingerprint per environment: the two H100 drivers and the A100
    assert len({r["fingerprint"] for r in rows}) == 3


def test_table_and_csv_formats(store, capsys):
    sql = "SELECT model, count(*) AS n FROM records GROUP BY model ORDER BY model"
    code, out, _ = query(capsys, store, sql, "--format", "csv")
    assert code == 0 and out.splitlines() == ["model,n", "resnet18,5", "resnet50,10"]
    code, out, _ = query(capsys, store, sql)
    assert code == 0 and "resnet50" in out and "│ 10" in out and "2 row(s)" in out


def test_bad_sql_is_one_line_from_duckdb_and_exit_2(store, capsys):
    code, out, err = query(capsys, store, "SELECT no_such_column FROM records")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "no_such_column" in err and "Traceback" not in err
    assert err.startswith("harness query: error: the SQL failed:")


def test_missing_or_empty_store_is_one_line_and_exit_2(tmp_path, capsys):
    code, _, err = query(capsys, tmp_path / "nope", "SELECT 1")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, _, err = query(capsys, tmp_path, "SELECT 1")
    assert code == 2 and "holds no run folders" in err and len(err.strip().splitlines()) == 1


def test_without_duckdb_the_message_names_the_extra(store, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb raises ImportError
    code, out, err = query(capsys, store, "SELECT 1")
    assert code == 2 and out == ""
    assert err.strip() == (
        "harness query: error: harness query needs DuckDB, which is not installed: pip install 'harness[query]'"
    )
