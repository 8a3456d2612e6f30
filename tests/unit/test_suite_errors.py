"""Bad suite files: each mistake stops the suite with one clear message naming the file, the line, the key, the
bad value and what would be valid; several mistakes are all reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.suite import SuiteError, load_suite
from harness.zoo import MODEL_NAMES

OK_MATRIX = "matrix: {model: resnet18, batch_size: 2}\n"


def error_of(tmp_path: Path, text: str, name: str = "bad.yaml") -> SuiteError:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    return info.value


# (suite text, the "file:line" it must point at, key path, pieces of the message)
CASES = {
    "unknown key": (
        "name: x\nmatrix:\n  model: [resnet18]\n  batchsize: [1]\n",
        4,
        "matrix.batchsize",
        ["unknown key", "did you mean batch_size?", "valid keys: model, mode, batch_size"],
    ),
    "unknown top-level key": (
        OK_MATRIX + "regresion: {threshold: 0.1}\n",
        2,
        "regresion",
        ["did you mean regression?"],
    ),
    "unknown model": (
        "matrix:\n  model:\n    - resnet18\n    - resnet5\n  batch_size: 2\n",
        4,
        "matrix.model[1]",
        ["unknown model 'resnet5'", "did you mean resnet50?", "valid choices: " + ", ".join(MODEL_NAMES)],
    ),
    "unknown precision": (
        "defaults: {precision: fp8}\n" + OK_MATRIX,
        1,
        "defaults.precision",
        ["unknown precision 'fp8'", "valid choices: fp32, tf32, amp_fp16, amp_bf16"],
    ),
    "unknown mode": (
        OK_MATRIX.replace("}", ", mode: [inference, training]}"),
        1,
        "matrix.mode[1]",
        ["unknown mode 'training'", "did you mean train?", "valid choices: inference, train"],
    ),
    "unknown device": (
        "defaults: {device: gpu0}\n" + OK_MATRIX,
        1,
        "defaults.device",
        ["unknown device 'gpu0'", "valid choices: auto, cpu, cuda, cuda:N"],
    ),
    "batch size zero": (
        "matrix:\n  model: resnet18\n  batch_size: [4, 0]\n",
        3,
        "matrix.batch_size[1]",
        [">= 1, got 0"],
    ),
    "batch size negative": ("matrix: {model: resnet18, batch_size: -8}\n", 1, "matrix.batch_size", [">= 1, got -8"]),
    "batch size not an integer": (
        "\n\nmatrix: {model: resnet18, batch_size: 2.5}\n",
        3,
        "matrix.batch_size",
        ["expected an integer, got 2.5"],
    ),
    "batch size boolean": (
        "matrix: {model: resnet18, batch_size: [yes]}\n",
        1,
        "matrix.batch_size[0]",
        ["expected an integer, got true", "YAML reads true/false/yes/no as booleans"],
    ),
    "batch size quoted": (
        "matrix: {model: resnet18, batch_size: '64'}\n",
        1,
        "matrix.batch_size",
        ["expected an integer, got '64'", "remove the quotes"],
    ),
    "resolution too small": (
        "defaults: {resolution: 16}\n" + OK_MATRIX,
        1,
        "defaults.resolution",
        ["must be >= 32, got 16"],
    ),
    "wrong type for a bool": (
        OK_MATRIX + "telemetry:\n  nvml: maybe\n",
        3,
        "telemetry.nvml",
        ["expected true or false, got 'maybe'"],
    ),
    "wrong type for a section": (OK_MATRIX + "launch: sweep\n", 2, "launch", ["expected a mapping, got 'sweep'"]),
    "exponent read as text": (
        OK_MATRIX + "regression: {threshold: 5e-2}\n",
        2,
        "regression.threshold",
        ["got '5e-2'", "write 5.0e-2 or 0.05"],
    ),
    "empty matrix": ("name: x\nmatrix: {}\n", 2, "matrix", ["names no axis"]),
    "empty axis": ("matrix:\n  model: []\n  batch_size: 2\n", 2, "matrix.model", ["is empty"]),
    "exclude naming an unknown model": (
        OK_MATRIX + "exclude:\n  - {model: resnet05}\n",
        3,
        "exclude[0].model",
        ["unknown model 'resnet05'", "did you mean resnet50?"],
    ),
    "include naming an unknown model": (
        OK_MATRIX + "include:\n  - model: wide_resnet50\n    batch_size: 2\n",
        3,
        "include[0].model",
        ["unknown model 'wide_resnet50'", "did you mean wide_resnet50_2?"],
    ),
    "empty exclude entry": (OK_MATRIX + "exclude: [{}]\n", 2, "exclude[0]", ["matches every case"]),
    "duplicate key": (
        "matrix:\n  model: resnet18\n  batch_size: 2\n  model: resnet50\n",
        4,
        "matrix.model",
        ["duplicate key (first given at line 2)"],
    ),
    "warm-up bounds crossed": (
        "defaults:\n  warmup: {min_iters: 50, max_iters: 10}\n" + OK_MATRIX,
        2,
        "defaults.warmup",
        ["max_iters (10) is below min_iters (50)"],
    ),
    "no batch size anywhere": ("matrix: {model: resnet18}\n", 1, "matrix", ["no batch_size given"]),
    "include without a model": (
        OK_MATRIX + "include:\n  - {batch_size: 4}\n",
        3,
        "include[0]",
        ["no model here or in defaults"],
    ),
    "weights the model does not have": (
        OK_MATRIX + "defaults:\n  weights: V2\n",
        3,
        "defaults.weights",
        ["resnet18 has no weights 'V2'; it has: V1"],
    ),
    "ddp with inference cases": (
        OK_MATRIX + "launch: {strategy: ddp, world_sizes: [1, 2]}\n",
        2,
        "launch.strategy",
        ["strategy ddp trains", "resnet18/inference/bs2/fp32", "set mode: train"],
    ),
    "world sizes without ddp": (
        OK_MATRIX + "launch:\n  world_sizes: [1, 2]\n",
        3,
        "launch.world_sizes",
        ["applies to strategy ddp only"],
    ),
    "bad suite name": (
        "name: my suite\n" + OK_MATRIX,
        1,
        "name",
        ["got 'my suite'", "letters, digits"],
    ),
    "nproc_per_node": (
        OK_MATRIX + "launch: {nproc_per_node: 0}\n",
        2,
        "launch.nproc_per_node",
        ["positive integer or auto"],
    ),
    "everything excluded": (
        OK_MATRIX + "exclude:\n  - {model: resnet18}\n",
        3,
        "exclude",
        ["excludes every matrix case"],
    ),
    "no cases at all": ("name: x\ndescription: nothing here\n", 1, "", ["no cases; add a matrix"]),
}


@pytest.mark.parametrize("text, line, key, parts", CASES.values(), ids=list(CASES))
def test_bad_suite_message(tmp_path, text, line, key, parts):
    message = str(error_of(tmp_path, text))
    assert "\n" not in message, message
    assert message.startswith(f"{tmp_path / 'bad.yaml'}:{line}: {key}{': ' if key else ''}"), message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


def test_all_problems_are_reported_at_once_in_line_order(tmp_path):
    error = error_of(
        tmp_path,
        "name: x\n"
        "defaults:\n"
        "  precision: fp33\n"
        "matrix:\n"
        "  model: [resnet18, resnet500]\n"
        "  batch_size: [0, 8]\n"
        "  resolutoin: [64]\n",
    )
    lines = str(error).splitlines()
    assert lines[0] == f"4 problems in {tmp_path / 'bad.yaml'}:"
    assert [line.split(": ")[0].rsplit(":", 1)[1] for line in lines[1:]] == ["3", "5", "6", "7"]
    assert (
        "fp33" in lines[1]
        and "resnet500" in lines[2]
        and "got 0" in lines[3]
        and "did you mean resolution?" in lines[4]
    )
    assert [(i.line, i.key) for i in error.issues] == [
        (3, "defaults.precision"),
        (5, "matrix.model[1]"),
        (6, "matrix.batch_size[0]"),
        (7, "matrix.resolutoin"),
    ]


def test_yaml_syntax_error_gives_yaml_line_and_column(tmp_path):
    message = str(error_of(tmp_path, "name: x\nmatrix:\n  model: [resnet18\n  batch_size: 2\n"))
    assert message.startswith(f"{tmp_path / 'bad.yaml'}:4:")
    assert "YAML syntax error" in message


def test_bad_indentation_is_a_syntax_error(tmp_path):
    message = str(error_of(tmp_path, "matrix:\n  model: resnet18\n batch_size: 2\n"))
    assert f"{tmp_path / 'bad.yaml'}:3:" in message and "YAML syntax error" in message


@pytest.mark.parametrize(
    "text, expected",
    [("- resnet18\n- resnet50\n", "top level must be a mapping"), ("just text\n", "got str 'just text'")],
)
def test_file_that_is_not_a_mapping(tmp_path, text, expected):
    message = str(error_of(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'bad.yaml'}:1: ") and expected in message


def test_empty_file(tmp_path):
    assert "the file is empty" in str(error_of(tmp_path, "# only a comment\n"))


def test_missing_file_names_the_suites_next_to_it(tmp_path):
    (tmp_path / "smoke.yaml").write_text(OK_MATRIX)
    with pytest.raises(SuiteError, match=r"smok\.yaml: no such suite file; suites in .*: smoke\.yaml"):
        load_suite(tmp_path / "smok.yaml")


def test_directory_is_not_a_suite(tmp_path):
    with pytest.raises(SuiteError, match="is a directory, not a suite file"):
        load_suite(tmp_path)


def test_file_name_that_cannot_name_a_results_folder(tmp_path):
    message = str(error_of(tmp_path, OK_MATRIX, name="my suite.yaml"))
    assert "cannot name the results folder; add a name: key" in message


def test_training_at_batch_one_on_a_one_pixel_feature_map_is_refused(tmp_path):
    from harness.errors import SuiteError
    from harness.suite import load_suite

    path = tmp_path / "bn.yaml"
    path.write_text("name: bn\nmatrix:\n  model: [resnet18]\n  mode: [train]\n  batch_size: [1]\n  resolution: [32]\n")
    with pytest.raises(SuiteError, match="batch_size >= 2 or resolution >= 33"):
        load_suite(path)
    path.write_text("name: bn\nmatrix:\n  model: [resnet18]\n  mode: [train]\n  batch_size: [1]\n  resolution: [64]\n")
    assert len(load_suite(path).cases()) == 1
