"""``harness eval`` as a user runs it: the report, JSON output, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from harness.zoo import build_model
from tests.conftest import run_cli
from tests.unit.test_accuracy_eval import (
    make_class_folders,
    make_folders_with_leftovers,
    ranked_checkpoint,
    save_hash_named,
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return ranked_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_class_folders(root)
    return root


def _eval_cli(*argv, home=None):
    env = {"TORCH_HOME": str(home)} if home else None
    return run_cli("eval", *argv, "--workers", "0", "--device", "cpu", env=env)


def _assert_clean_error(result, *parts):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.startswith("harness eval: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    for part in parts:
        assert part in result.stderr, result.stderr


@pytest.mark.slow
def test_report_and_json(ckpt, data):
    text = _eval_cli("resnet18", "--weights", str(ckpt), "--data", str(data), "--limit", "12", "--batch-size", "8")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "subset: 12 images drawn at random (--limit 12, seed 0)" in out
    assert "recipe: resize 256, crop 224, from IMAGENET1K_V1, the model's best entry" in out
    assert "acc@1" in out and "100.000" in out and "skipped" in out
    as_json = _eval_cli("resnet18", "--weights", str(ckpt), "--data", str(data), "--json")
    assert as_json.returncode == 0, as_json.stderr
    r = json.loads(as_json.stdout)
    assert r["acc1"] == 100.0 and r["images"] == 18 and r["skipped"] == 2 and r["subset"] is False
    assert {"acc1_ci95", "acc5_ci95", "stated_acc1", "acc1_delta", "duration_s", "skipped_files"} <= set(r)


def test_folder_with_the_wrong_number_of_classes(tmp_path):
    # A 1000-class checkpoint, as every published one is; the count comes from its fc before the model is built.
    path = save_hash_named(build_model("resnet18").state_dict(), tmp_path, "resnet18")
    data = tmp_path / "three"
    for c in range(3):
        (data / f"c{c}").mkdir(parents=True)
        Image.new("RGB", (64, 64)).save(data / f"c{c}" / "a.png")
    result = _eval_cli("resnet18", "--weights", str(path), "--data", str(data))
    _assert_clean_error(result, "3 class folders", "1000 outputs", "must hold the model's 1000 classes", "--labels")


def test_missing_and_empty_folders(ckpt, tmp_path):
    _assert_clean_error(
        _eval_cli("resnet18", "--weights", str(ckpt), "--data", str(tmp_path / "nowhere")), "does not exist"
    )
    (tmp_path / "empty").mkdir()
    _assert_clean_error(_eval_cli("resnet18", "--weights", str(ckpt), "--data", str(tmp_path / "empty")), "is empty")


def test_weights_of_another_model(ckpt, data):
    result = _eval_cli("resnet34", "--weights", str(ckpt), "--data", str(data))
    _assert_clean_error(result, "not a resnet34 checkpoint", "missing keys")


def test_missing_tag_weights_say_where(data, torch_home):
    result = _eval_cli("resnet50", "--weights", "V2", "--data", str(data), home=torch_home.parent.parent)
    _assert_clean_error(result, "resnet50-11ad3fa6.pth", "TORCH_HOME")


def test_precision_the_cpu_cannot_run(ckpt, data):
    result = _eval_cli("resnet18", "--weights", str(ckpt), "--data", str(data), "--precision", "tf32")
    _assert_clean_error(result, "tf32 is a CUDA tensor-core mode", "fp32")


def test_eval_says_which_files_it_ignored_and_which_class_folders_are_empty(ckpt, tmp_path):
    make_folders_with_leftovers(tmp_path)
    result = _eval_cli("resnet18", "--weights", str(ckpt), "--data", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "15 images evaluated" in result.stdout
    notes = [line for line in result.stderr.splitlines() if line.startswith("harness: warning: ")]
    assert len(notes) == 2, result.stderr
    assert "ignored 7 non-image files" in notes[0] and "LOC_val_solution.csv, class_00/README.txt" in notes[0]
    assert "1 empty class folder (class_05)" in notes[1]
    as_json = _eval_cli("resnet18", "--weights", str(ckpt), "--data", str(tmp_path), "--json")
    r = json.loads(as_json.stdout)
    assert r["ignored_files"] == 7 and r["empty_classes"] == ["class_05"] and len(r["notes"]) == 2
