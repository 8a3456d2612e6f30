"""Importing timm benchmark.py CSVs: every published file, the figures as published, and bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.importers import Overrides, import_file
from harness.importers.names import cuda_version, parse_file_name, torch_version
from harness.store import load
from harness.zoo import MODEL_NAMES
from tests.conftest import ROOT, run_cli
from tests.synthetic import make_record, make_run

EXAMPLES = ROOT / "examples" / "published-timm"
DATA = EXAMPLES / "csv"  # the published files, as filtered from timm's results/ folder
FILES = sorted(DATA.glob("benchmark-*.csv"))
HEADER = "model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size,param_count,infer_gmacs"
SPOT_FILE = "benchmark-infer-amp-nchw-pt291-cu128-4090.csv"


def zoo_rows(path: Path) -> list[dict]:
    """The rows of the ten models, read with the csv module, as the importer's count must be."""
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if row["model"] in MODEL_NAMES]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """Every published file imported through the command line, once for the module."""
    out = tmp_path_factory.mktemp("published")
    result = run_cli("import", "timm", *map(str, FILES), "--out", str(out))
    assert result.returncode == 0, result.stderr
    (out / "stdout.txt").write_text(result.stdout)
    return out


def test_the_data_folder_has_every_published_file():
    assert len(FILES) == 22, [p.name for p in FILES]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem.removeprefix("benchmark-"))
def test_every_row_of_the_ten_models_becomes_one_record(path):
    run = import_file(path)
    expected = zoo_rows(path)
    if "-bf16-" in path.name:
        assert run.skipped and "cast to bfloat16" in run.skipped and not run.records
        return
    assert len(run.records) == len(expected) > 0
    prefix = "train" if "-train-" in path.name else "infer"
    published = sorted(
        (r["model"], int(r.get(f"{prefix}_img_size") or 224), float(r[f"{prefix}_samples_per_sec"])) for r in expected
    )
    assert sorted((r["model"], r["resolution"], r["throughput_img_s"]) for r in run.records) == published
    assert len({r["case_id"] for r in run.records}) == len(run.records)
    assert all(r["status"] == "ok" and r["samples_ms"] is None and r["throughput_ci95"] is None for r in run.records)


def test_spot_value_resnet50_on_the_4090_comes_through_exactly(imported):
    run_dir = imported / "timm-infer-amp-nchw" / "rtx4090-pt291-cu128"
    frame = load(run_dir)
    row = frame[(frame.model == "resnet50") & (frame.resolution == 224)]
    assert len(row) == 1
    row = row.iloc[0]
    assert row.throughput_img_s == 4302.84 and row.batch_size == 1024 and row.step_ms_mean == 237.959
    assert row.step_ms_median is None or math.isnan(row.step_ms_median)  # a published mean is not a median
    assert row.case_id == "resnet50/inference/bs1024/amp_fp16"
    assert (row.precision, row.channels_last, row.compile, row["mode"]) == ("amp_fp16", False, False, "inference")
    assert row.source == "timm benchmark.py"
    assert row["env.torch"] == "2.9.1" and row["env.cuda"] == "12.8"
    assert row["env.device_name"] == "NVIDIA GeForce RTX 4090"
    assert "published mean step time; no samples" in row.message
    assert row.macs_per_img == 4.11e9 and row.stated_gmacs == 4.089
    assert row.ops_deviation == pytest.approx(4.11 / 4.089 - 1, abs=1e-6)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["source"] == "timm benchmark.py" and manifest["source_file"] == SPOT_FILE
    assert (run_dir / SPOT_FILE).read_bytes() == (DATA / SPOT_FILE).read_bytes()


def test_import_output_counts_files_and_states_the_matching_rule(imported):
    out = (imported / "stdout.txt").read_text()
    assert f"imported 21 of {len(FILES)} files" in out
    assert "bf16" in out and "not imported" in out
    assert "batch size is not matched" in out and "compile only when both sides record it" in out


def test_file_name_parts_map_onto_harness_cases():
    names = {
        "benchmark-infer-amp-nhwc-pt240-cu124-rtx4090.csv": ("inference", "amp_fp16", True, False, "2.4.0", "12.4"),
        "benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv": ("train", "amp_fp16", False, False, "1.12", "11.3"),
        "benchmark-infer-fp32-nchw-pt221-cpu-i9_10940x-dynamo.csv": ("inference", "fp32", False, True, "2.2.1", None),
        "benchmark-infer-amp_bf16-nchw-pt291-cu130-pro6000maxq-dynamo.csv": (
            "inference",
            "amp_bf16",
            False,
            True,
            "2.9.1",
            "13.0",
        ),
    }
    for name, want in names.items():
        s = parse_file_name(Path(name), Overrides())
        assert (s.mode, s.precision, s.channels_last, s.compile, s.torch, s.cuda) == want, name
    a = parse_file_name(Path("benchmark-infer-amp-nchw-pt291-cu128-4090.csv"), Overrides())
    b = parse_file_name(Path("benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv"), Overrides())
    assert a.device_name == b.device_name == "NVIDIA GeForce RTX 4090" and a.folder == "rtx4090-pt291-cu128"
    cpu = parse_file_name(Path("benchmark-infer-fp32-nchw-pt240-cpu-i7_12700h-dynamo.csv"), Overrides())
    assert (cpu.device_type, cpu.folder, cpu.suite) == ("cpu", "i7_12700h-pt240-cpu-dynamo", "timm-infer-fp32-nchw")


def test_version_digits():
    assert [torch_version(d) for d in ("291", "2100", "113", "112", "210", "x1")] == [
        "2.9.1",
        "2.10.0",
        "1.13",
        "1.12",
        "2.1.0",
        None,
    ]
    assert [cuda_version(d) for d in ("128", "130", "117", "1")] == ["12.8", "13.0", "11.7", None]


def test_resolution_defaults_to_224_and_float_batch_sizes_are_read(tmp_path):
    path = write(
        tmp_path,
        "benchmark-infer-amp-nchw-pt210-cu121-rtx3090.csv",
        "model,infer_samples_per_sec,infer_step_time,infer_batch_size\nresnet50,3000.5,341.0,1024.0\n",
    )
    (record,) = import_file(path).records
    assert (record["resolution"], record["batch_size"], record["throughput_img_s"]) == (224, 1024, 3000.5)
    assert record["macs_per_img"] is None and record["stated_gmacs"] == 4.089


def test_other_models_are_ignored_and_bad_rows_skipped_with_counts(tmp_path):
    path = write(
        tmp_path,
        "benchmark-infer-amp-nchw-pt291-cu128-4090.csv",
        HEADER + "\n"
        "resnet50,224,4302.84,237.959,1024,25.56,4.11\n"
        "vit_base_patch16_224,224,1500,680,1024,86.57,16.87\n"
        "resnet18,224,n/a,74.577,1024,11.69,1.82\n"
        "resnet34,224,8315.61,123.118,512.5,21.8,3.67\n"
        "resnet101,224,2781.19,368.164\n",
    )
    run = import_file(path)
    assert [r["model"] for r in run.records] == ["resnet50"]
    assert dict(run.other_models) == {"vit_base_patch16_224": 1}
    assert len(run.bad_rows) == 3
    assert "'n/a' is not a number" in run.bad_rows[0] and "not a whole number" in run.bad_rows[1]
    result = run_cli("import", "timm", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "3 rows skipped (bad values)" in result.stdout and "1 rows of other models ignored" in result.stdout
    manifest = json.loads(next((tmp_path / "out").rglob("manifest.json")).read_text())
    assert (
        manifest["importer"]["other_models"] == {"vit_base_patch16_224": 1}
        and len(manifest["importer"]["bad_rows"]) == 3
    )


def test_param_count_mismatch_is_noted(tmp_path):
    path = write(
        tmp_path,
        "benchmark-infer-amp-nchw-pt291-cu128-4090.csv",
        HEADER + "\nresnet50,224,4302.84,237.959,1024,26.1,4.11\nresnet18,224,13726.29,74.577,1024,11.69,1.82\n",
    )
    run = import_file(path)
    by_model = {r["model"]: r["message"] for r in run.records}
    assert "param_count 26.1 M differs from the catalog's 25.557 M" in by_model["resnet50"]
    assert "param_count" not in by_model["resnet18"]
    assert run.manifest["importer"]["param_count_m"] == {"resnet18": 11.69, "resnet50": 26.1}


def test_unknown_columns_are_an_error_naming_them_and_the_known_ones(tmp_path):
    path = write(tmp_path, SPOT_FILE, "model,infer_samples_per_sec,infer_step_time,infer_batch_size,gpu_temp\n")
    result = run_cli("import", "timm", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown column(s) 'gpu_temp'" in result.stderr and "infer_samples_per_sec" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_benchmark_csv_is_told_in_one_line(tmp_path):
    rec = make_record(seed=1)
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps({**rec, "seed": i}) for i in range(3)) + "\n")
    result = run_cli("import", "timm", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert "\n" not in message and len(message) < 600, message
    assert f"{path} does not look like a timm benchmark CSV" in message and "looks like JSON" in message
    assert "model, infer_samples_per_sec|train_samples_per_sec" in message
    other = write(tmp_path, SPOT_FILE, "name,img_per_s\nresnet50,1000\n")
    result = run_cli("import", "timm", str(other), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "no 'model' column" in result.stderr and "name,img_per_s" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_long_list_of_unknown_columns_is_cut_short(tmp_path):
    extra = [f"col{i}" for i in range(25)]
    path = write(tmp_path, SPOT_FILE, ",".join(["model", "infer_samples_per_sec", *extra]) + "\n")
    with pytest.raises(HarnessError) as err:
        import_file(path)
    message = str(err.value)
    assert "'col9' and 15 more" in message and "'col10'" not in message


def test_a_bad_file_name_names_the_part_and_an_option_fixes_it(tmp_path):
    body = HEADER + "\nresnet50,224,4302.84,237.959,1024,25.56,4.11\n"
    path = write(tmp_path, "benchmark-infer-amp16-nchw-pt291-cu128-4090.csv", body)
    result = run_cli("import", "timm", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "precision: part 2 is 'amp16'" in result.stderr and "--precision" in result.stderr
    result = run_cli("import", "timm", str(path), "--precision", "amp", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "from options: precision" in result.stdout
    other = write(tmp_path, "my-4090-numbers.csv", body)
    result = run_cli("import", "timm", str(other), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    for part in ("precision", "layout", "torch version", "CUDA version"):
        assert f"{part}:" in result.stderr
    result = run_cli(
        "import", "timm", str(other), "--precision", "amp_bf16", "--no-channels-last", "--torch", "2.9.1",
        "--cuda", "12.8", "--device", "rtx4090", "--out", str(tmp_path / "out2"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frame = load(tmp_path / "out2")
    assert frame.case_id.tolist() == ["resnet50/inference/bs1024/amp_bf16"]
    assert frame["env.device_name"].tolist() == ["NVIDIA GeForce RTX 4090"]
    assert frame.compile.isna().all(), "a name outside the pattern says nothing about compile"


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "is empty"), ("\n  \n", "is empty"), (HEADER + "\n", "has a header but no rows")],
    ids=["empty", "blank", "header-only"],
)
def test_empty_files_are_errors(tmp_path, text, message):
    path = write(tmp_path, SPOT_FILE, text)
    result = run_cli("import", "timm", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_mode_must_match_the_columns(tmp_path):
    path = write(
        tmp_path,
        "benchmark-train-amp-nchw-pt291-cu128-4090.csv",
        HEADER + "\nresnet50,224,4302.84,237.959,1024,25.56,4.11\n",
    )
    with pytest.raises(HarnessError, match="train columns train_samples_per_sec"):
        import_file(path)
    (record,) = import_file(path, Overrides(mode="infer")).records
    assert record["mode"] == "inference"


def test_a_model_cast_file_alone_imports_nothing_and_says_why(tmp_path):
    path = DATA / "benchmark-infer-bf16-nchw-pt291-cu130-pro6000maxq-dynamo.csv"
    result = run_cli("import", "timm", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "cast to bfloat16" in result.stderr and "Traceback" not in result.stderr


def test_reimport_refuses_without_force_and_never_replaces_a_measured_run(tmp_path):
    out = tmp_path / "out"
    path = DATA / SPOT_FILE
    assert run_cli("import", "timm", str(path), "--out", str(out)).returncode == 0
    again = run_cli("import", "timm", str(path), "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr and "already exists" in again.stderr
    forced = run_cli("import", "timm", str(path), "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert len(load(out)) == len(zoo_rows(path))
    measured = make_run(tmp_path / "measured", [make_record()])
    target = out / "timm-infer-amp-nchw" / "rtx4090-pt291-cu128"
    import shutil

    shutil.rmtree(target)
    shutil.copytree(measured, target)
    refused = run_cli("import", "timm", str(path), "--out", str(out), "--force")
    assert refused.returncode == 2 and "never replaced" in refused.stderr
    assert load(target).source.tolist() == ["harness"]


def test_the_committed_example_runs_are_what_the_importer_writes(imported):
    committed = sorted(p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("records.jsonl"))
    fresh = sorted(p.relative_to(imported) for p in imported.rglob("records.jsonl"))
    assert committed == fresh and len(committed) == 21
    for rel in committed:
        assert (EXAMPLES / rel).read_text() == (imported / rel).read_text(), (
            f"regenerate {rel} (docs/published-results.md)"
        )
        manifest = json.loads((EXAMPLES / rel).with_name("manifest.json").read_text())
        assert manifest["source"] == "timm benchmark.py" and manifest["origin"].startswith("huggingface/")


def test_measured_cases_match_published_ones_on_everything_but_batch_size(tmp_path):
    from harness.importers import match_published

    records = [
        make_record(precision="amp_fp16", batch_size=32, step_ms=10.0, seed=1),  # 3200 img/s
        make_record(precision="amp_fp16", batch_size=32, channels_last=True, step_ms=8.0, seed=2),
        make_record(precision="amp_fp16", batch_size=64, resolution=288, step_ms=40.0, seed=3),
        make_record(precision="fp32", batch_size=32, seed=4),  # no fp32 figure for this GPU
        make_record(model="resnet18", precision="amp_fp16", status="oom"),
    ]
    measured = load(make_run(tmp_path, records))
    eager = EXAMPLES / "timm-infer-amp-nchw" / "rtx4090-pt291-cu128"
    compiled = EXAMPLES / "timm-infer-amp-nchw" / "rtx4090-pt291-cu128-dynamo"
    published = load([eager, compiled])
    matched = match_published(measured, published)
    assert sorted(matched.resolution.tolist()) == [224, 288]  # the /cl, fp32 and oom cases have no match
    row = matched[matched.resolution == 224].iloc[0]
    assert (row.batch_size, row.batch_size_published, row.throughput_published) == (32, 1024, 4302.84)
    assert row.compile_published == False  # noqa: E712 - the eager file, not the dynamo one
    assert row.ratio == pytest.approx(row.throughput_img_s / 4302.84)
    assert row.device_name_published == "NVIDIA GeForce RTX 4090"
    assert matched[matched.resolution == 288].throughput_published.item() == 2631.02
