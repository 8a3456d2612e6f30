"""Imported published runs work where runs work: hardware comparison, reports in a browser, measured vs published."""

from __future__ import annotations

import csv
import importlib
import math

import pytest

from tests.conftest import ROOT, run_cli

EXAMPLES = ROOT / "examples" / "published-timm"
SUITE = EXAMPLES / "timm-infer-amp-nchw"
HW_RUNS = {  # AMP fp16, NCHW, eager, batch 1024: the newest file of each GPU
    "NVIDIA GeForce RTX 3090": SUITE / "rtx3090-pt240-cu124",
    "NVIDIA GeForce RTX 4090": SUITE / "rtx4090-pt291-cu128",
    "NVIDIA GeForce RTX 5090": SUITE / "rtx5090-pt291-cu130",
}
CSV_OF = {
    "NVIDIA GeForce RTX 3090": "benchmark-infer-amp-nchw-pt240-cu124-rtx3090.csv",
    "NVIDIA GeForce RTX 4090": "benchmark-infer-amp-nchw-pt291-cu128-4090.csv",
    "NVIDIA GeForce RTX 5090": "benchmark-infer-amp-nchw-pt291-cu130-5090.csv",
}


def published(device: str, resolution: int = 224) -> dict[str, float]:
    """Published images/s per model at ``resolution``, read straight from the CSV with the csv module."""
    with open(EXAMPLES / "csv" / CSV_OF[device], newline="") as f:
        return {
            r["model"]: float(r["infer_samples_per_sec"])
            for r in csv.DictReader(f)
            if int(r["infer_img_size"]) == resolution
        }


def needs(module: str, name: str):
    """The attribute ``name`` of ``module``, or a skip saying which part of the harness is not there yet."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        pytest.skip(f"{module}.{name} is not in this tree (the {module.split('.')[1]} package is needed)")


def test_expected_ratios_are_read_from_the_published_files():
    base, new = published("NVIDIA GeForce RTX 3090"), published("NVIDIA GeForce RTX 5090")
    assert len(base) == len(new) == 10
    assert math.isclose(new["resnet50"] / base["resnet50"], 6356.02 / 3219.06)


def test_hardware_speedups_of_3090_4090_5090_are_the_published_ratios():
    hardware_compare = needs("harness.regress", "hardware_compare")
    result = hardware_compare(list(HW_RUNS.values()))
    base = published("NVIDIA GeForce RTX 3090")
    frame = result.frame[result.frame.resolution == 224]
    for index, device in enumerate(HW_RUNS):
        if index == 0:
            continue
        mine = published(device)
        rows = frame[frame.run_index == index].set_index("model")
        assert sorted(rows.index) == sorted(base)
        for model, tput in base.items():
            assert rows.loc[model, "speedup"] == pytest.approx(mine[model] / tput, rel=1e-12), (device, model)
        all_res = result.frame[result.frame.run_index == index]
        summary = result.summary[(result.summary.run_index == index) & (result.summary["mode"] == "inference")]
        expected = math.exp(sum(math.log(s) for s in all_res.speedup) / len(all_res))
        assert summary.geomean_speedup.item() == pytest.approx(expected, rel=1e-12)


def test_published_step_times_are_means_not_medians():
    hardware_compare = needs("harness.regress", "hardware_compare")
    device = "NVIDIA GeForce RTX 4090"
    with open(EXAMPLES / "csv" / CSV_OF[device], newline="") as f:
        step = {r["model"]: float(r["infer_step_time"]) for r in csv.DictReader(f) if r["infer_img_size"] == "224"}
    frame = hardware_compare([HW_RUNS[device], HW_RUNS["NVIDIA GeForce RTX 5090"]]).frame
    rows = frame[(frame.run_index == 0) & (frame.resolution == 224)].set_index("model")
    assert rows["step_ms_median"].isna().all()
    assert rows["step_ms_mean"].to_dict() == step


def test_compare_hardware_command_on_the_examples_names_the_source(tmp_path):
    needs("harness.regress", "hardware_compare")
    result = run_cli("compare", "--hardware", *map(str, HW_RUNS.values()), "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert "timm benchmark.py" in result.stdout and "RTX 5090" in result.stdout
    assert "cases match on" in result.stdout.lower()


def test_a_measured_run_against_published_ones_matches_on_everything_but_batch_size(tmp_path):
    needs("harness.regress", "hardware_compare")
    from harness.importers.match import compare_with_published
    from harness.store import read_runs
    from tests.synthetic import make_record, make_run

    records = [
        make_record(precision="amp_fp16", batch_size=64, step_ms=20.0, seed=1),
        make_record(model="resnet18", precision="amp_fp16", batch_size=64, resolution=160, step_ms=4.0, seed=2),
        make_record(precision="amp_fp16", batch_size=64, channels_last=True, step_ms=15.0, seed=3),
    ]
    measured = make_run(tmp_path, records)
    runs = read_runs([measured, HW_RUNS["NVIDIA GeForce RTX 4090"], HW_RUNS["NVIDIA GeForce RTX 5090"]])
    result = compare_with_published(runs)
    assert "batch size is not matched" in result.rule
    frame = result.frame
    mine = {(r["model"], r["resolution"]): r["throughput_img_s"] for r in records if not r["channels_last"]}
    for index, device in ((1, "NVIDIA GeForce RTX 4090"), (2, "NVIDIA GeForce RTX 5090")):
        rows = frame[frame.run_index == index].set_index("model")
        assert sorted(rows.index) == ["resnet18", "resnet50"]  # the channels_last case has no NCHW match
        assert set(rows.batch_size) == {1024}
        assert rows.loc["resnet50", "speedup"] == pytest.approx(published(device)["resnet50"] / mine["resnet50", 224])
        assert rows.loc["resnet18", "speedup"] == pytest.approx(
            published(device, 160)["resnet18"] / mine["resnet18", 160]
        )
    assert any("published figures" in note for note in result.notes)


def test_compare_hardware_command_holds_a_measured_run_against_published_ones(tmp_path):
    needs("harness.regress", "hardware_compare")
    from tests.synthetic import make_record, make_run

    measured = make_run(tmp_path, [make_record(precision="amp_fp16", batch_size=64, step_ms=20.0)])
    result = run_cli("compare", "--hardware", str(measured), str(HW_RUNS["NVIDIA GeForce RTX 4090"]))
    assert result.returncode == 0, result.stderr
    assert "batch size is not matched" in " ".join(result.stdout.split())
    assert "4,303" in result.stdout and "bs 64 | 1024" in result.stdout


@pytest.mark.browser
def test_the_report_of_an_imported_run_renders_without_console_errors(tmp_path):
    write_report = needs("harness.report", "write_report")
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM

    out = write_report([SUITE / "rtx4090-pt291-cu128", SUITE / "rtx4090-pt291-cu128-dynamo"], tmp_path / "r.html")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
        page.goto(out.resolve().as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=30000)
        titles = page.evaluate("Array.from(document.querySelectorAll('.gtitle')).map(e => e.textContent)")
        body = page.inner_text("body")
        browser.close()
    assert errors == []
    assert "timm benchmark.py" in body
    assert any("against resolution" in t for t in titles), titles
    assert any("Resolution scaling" in t for t in titles), titles


def test_resolution_figures_of_an_imported_run_hold_the_published_numbers():
    needs("harness.report", "write_report")
    from harness.report.data import prepare
    from harness.report.resolution import pixel_scaling, throughput_vs_resolution
    from harness.store import read_runs

    ok = prepare(read_runs([HW_RUNS["NVIDIA GeForce RTX 4090"]])).ok
    with open(EXAMPLES / "csv" / CSV_OF["NVIDIA GeForce RTX 4090"], newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["model"] == "resnet50"]
    by_res = {int(r["infer_img_size"]): float(r["infer_samples_per_sec"]) for r in rows}
    (line,) = [
        t for t in throughput_vs_resolution(ok, "inference").data if t.meta and t.meta["fk"]["model"] == "resnet50"
    ]
    assert dict(zip(line.x, line.y, strict=True)) == by_res
    (line,) = [t for t in pixel_scaling(ok, "inference").data if t.meta and t.meta["fk"]["model"] == "resnet50"]
    expected = {r: t * r * r / (by_res[224] * 224 * 224) for r, t in by_res.items()}
    assert dict(zip(line.x, line.y, strict=True)) == pytest.approx(expected, rel=1e-12)
    assert expected[224] == 1.0 and expected[288] > 1.0  # the 4090 moves more pixels per second at 288 px
    train = prepare(read_runs([EXAMPLES / "timm-train-amp-nchw" / "rtx3090-pt112-cu113"])).ok
    assert pixel_scaling(train, "train") is None  # one resolution: nothing to scale


def test_report_command_on_published_runs_of_three_gpus(tmp_path):
    needs("harness.report", "write_report")
    out = tmp_path / "hw.html"
    result = run_cli("report", *map(str, HW_RUNS.values()), "-o", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    for device in HW_RUNS:
        assert device in page
    assert "timm benchmark.py" in page and "Resolution scaling" in page
