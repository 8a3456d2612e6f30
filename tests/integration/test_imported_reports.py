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


def test_compare_hardware_command_on_the_examples_names_the_source(tmp_path):
    needs("harness.regress", "hardware_compare")
    result = run_cli("compare", "--hardware", *map(str, HW_RUNS.values()), "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert "timm benchmark.py" in result.stdout and "RTX 5090" in result.stdout
    assert "cases match on" in result.stdout.lower()
