"""Suite loading and expansion: the shipped suites, defaults, matrix, exclude/include, case ids, round trips."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.suite import Case, Measure, Suite, SuiteError, Warmup, load_suite
from harness.zoo import MODEL_NAMES

ROOT = Path(__file__).resolve().parents[2]
SUITES = sorted((ROOT / "suites").glob("*.yaml"))

DESIGN_SKETCH = """\
name: nightly
defaults: {device: auto, resolution: 224, warmup: {iters: 10}, measure: {min_seconds: 2, min_iters: 20, repeats: 5}}
matrix:
  model: [resnet18, resnet50, wide_resnet101_2]
  mode: [inference, train]
  batch_size: [1, 32, 256]
  precision: [fp32, tf32, amp_fp16, amp_bf16]
  channels_last: [false, true]
  compile: [false]
exclude: [{model: wide_resnet101_2, batch_size: 256, mode: train}]
include: [{model: resnet50, batch_size: 512, precision: amp_bf16, channels_last: true}]
launch: {strategy: sweep, nproc_per_node: auto}     # or strategy: ddp, world_sizes: [1, 2, 4, 8]
profile: {cases: [{model: resnet50, batch_size: 64}]}
telemetry: {nvml: true, interval_ms: 50}
regression: {baseline: last-7, threshold: 0.05}
"""


def load(tmp_path: Path, text: str, name: str = "s.yaml") -> Suite:
    path = tmp_path / name
    path.write_text(text)
    return load_suite(path)


def ids(suite: Suite) -> list[str]:
    return [c.id for c in suite.cases()]


@pytest.mark.parametrize("path", SUITES, ids=[p.name for p in SUITES])
def test_every_shipped_suite_validates(path):
    suite = load_suite(path)
    cases = suite.cases()
    assert cases, f"{path.name} expands to no case"
    assert len(set(ids(suite))) == len(cases), "case ids must be unique"
    assert suite.name == path.stem
    assert path.read_text().startswith("#"), "each suite file opens with a comment saying what it is for"
    assert suite.warnings == (), suite.warnings
    json.dumps(suite.resolved())


def test_the_five_suites_are_shipped():
    assert {p.stem for p in SUITES} >= {"smoke", "nightly", "hardware", "ddp-scaling", "profile"}


def test_smoke_suite_is_small_and_complete():
    suite = load_suite(ROOT / "suites" / "smoke.yaml")
    cases = suite.cases()
    assert len(cases) == 80
    assert {c.model for c in cases} == set(MODEL_NAMES)
    assert {(c.device, c.resolution, c.batch_size) for c in cases} == {("cpu", 64, 2)}
    assert {c.mode for c in cases} == {"inference", "train"}
    assert {c.precision for c in cases} == {"fp32", "amp_bf16"}
    assert {c.channels_last for c in cases} == {False, True}
    assert all(c.warmup.max_seconds <= 3 and c.measure.min_seconds <= 0.5 for c in cases)
    assert [c.id for c in cases if c.profile] == ["resnet18/train/bs2/fp32/r64"]


def test_shipped_suite_shapes():
    nightly = load_suite(ROOT / "suites" / "nightly.yaml")
    assert {c.device for c in nightly.cases()} == {"cuda"}
    assert {c.resolution for c in nightly.cases()} == {224}
    assert any(c.profile for c in nightly.cases())
    hardware = load_suite(ROOT / "suites" / "hardware.yaml").cases()
    assert len(hardware) == 70
    assert all(c.channels_last and c.device == "auto" for c in hardware)
    assert {(c.mode, c.batch_size, c.precision) for c in hardware if c.mode == "train"} == {("train", 64, "amp_bf16")}
    ddp = load_suite(ROOT / "suites" / "ddp-scaling.yaml")
    assert ddp.launch.strategy == "ddp" and ddp.launch.world_sizes == [1, 2, 4, 8]
    assert {c.mode for c in ddp.cases()} == {"train"}
    profile = load_suite(ROOT / "suites" / "profile.yaml").cases()
    assert 1 < len(profile) <= 12 and all(c.profile for c in profile)


def test_design_sketch_is_a_valid_suite(tmp_path):
    suite = load(tmp_path, DESIGN_SKETCH)
    # 3 models x 2 modes x 3 batch sizes x 4 precisions x 2 formats, minus 8 excluded, plus 1 included
    assert len(suite.cases()) == 144 - 8 + 1
    assert "wide_resnet101_2/train/bs256/fp32" not in ids(suite)
    assert ids(suite)[-1] == "resnet50/inference/bs512/amp_bf16/cl"
    assert suite.cases()[0].warmup.min_iters == 10  # `iters` is min_iters
    assert suite.cases()[0].measure == Measure(min_seconds=2, min_iters=20, repeats=5)
    assert suite.launch.nproc_per_node == "auto"
    # the sketch's profile entry names a batch size the matrix does not have: a warning, not silence
    assert any("profile.cases[0]" in w and ":13:" in w for w in suite.warnings)


def test_built_in_defaults(tmp_path):
    suite = load(tmp_path, "matrix: {model: resnet18, batch_size: 4}\n")
    (case,) = suite.cases()
    assert case == Case(model="resnet18", batch_size=4)
    assert (case.device, case.resolution, case.mode, case.precision) == ("auto", 224, "inference", "fp32")
    assert (case.channels_last, case.compile, case.weights, case.impl) == (False, False, None, "harness")
    assert case.warmup == Warmup(min_iters=5, max_iters=200, max_seconds=30, window=5, tolerance=0.02)
    assert case.measure == Measure(min_seconds=2, min_iters=20, max_iters=10000, repeats=1)
    assert (case.timeout_s, case.oom_reduce, case.seed, case.profile) == (600, False, 0, False)
    assert (suite.launch.strategy, suite.launch.nproc_per_node, suite.launch.world_sizes) == ("sweep", 1, None)
    assert (suite.telemetry.nvml, suite.telemetry.interval_ms) == (True, 50)
    assert (suite.regression.baseline, suite.regression.threshold) == ("last-7", 0.05)
    assert suite.accuracy is None and suite.profile.cases == []
    assert suite.name == "s" and suite.description == "" and suite.tags == ()


def test_every_axis_may_stand_in_defaults_and_the_matrix_overrides(tmp_path):
    suite = load(
        tmp_path,
        "defaults: {model: resnet50, mode: train, batch_size: 8, resolution: 96, precision: amp_bf16,\n"
        "           channels_last: true, compile: true}\n"
        "matrix: {precision: [fp32, tf32]}\n",
    )
    assert ids(suite) == ["resnet50/train/bs8/fp32/cl/r96/compile", "resnet50/train/bs8/tf32/cl/r96/compile"]


def test_partial_warmup_and_measure_merge_key_by_key(tmp_path):
    suite = load(
        tmp_path,
        "defaults: {warmup: {max_seconds: 3}, measure: {repeats: 4}}\n"
        "matrix: {model: resnet18, batch_size: 2}\n"
        "include: [{model: resnet34, batch_size: 2, warmup: {window: 7}, measure: {min_iters: 9}}]\n",
    )
    first, extra = suite.cases()
    assert first.warmup == Warmup(max_seconds=3) and first.measure == Measure(repeats=4)
    assert extra.warmup == Warmup(max_seconds=3, window=7) and extra.measure == Measure(repeats=4, min_iters=9)


def test_matrix_order_is_stable_whatever_the_key_order(tmp_path):
    a = load(
        tmp_path, "matrix: {model: [resnet18, resnet34], batch_size: [1, 8], channels_last: [false, true]}\n", "a.yaml"
    )
    b = load(
        tmp_path, "matrix: {channels_last: [false, true], batch_size: [1, 8], model: [resnet18, resnet34]}\n", "b.yaml"
    )
    assert (
        ids(a)
        == ids(b)
        == [
            "resnet18/inference/bs1/fp32",
            "resnet18/inference/bs1/fp32/cl",
            "resnet18/inference/bs8/fp32",
            "resnet18/inference/bs8/fp32/cl",
            "resnet34/inference/bs1/fp32",
            "resnet34/inference/bs1/fp32/cl",
            "resnet34/inference/bs8/fp32",
            "resnet34/inference/bs8/fp32/cl",
        ]
    )
    assert ids(load(tmp_path, (tmp_path / "a.yaml").read_text(), "c.yaml")) == ids(a)


def test_exclude_removes_every_match_and_lists_match_any(tmp_path):
    suite = load(
        tmp_path,
        "matrix: {model: [resnet18, resnet50], mode: [inference, train], batch_size: [1, 64, 256]}\n"
        "exclude:\n"
        "  - {model: resnet50, mode: train, batch_size: [64, 256]}\n"
        "  - {batch_size: 1, mode: inference}\n"
        "  - {model: resnet152}\n",
    )
    assert ids(suite) == [
        "resnet18/inference/bs64/fp32",
        "resnet18/inference/bs256/fp32",
        "resnet18/train/bs1/fp32",
        "resnet18/train/bs64/fp32",
        "resnet18/train/bs256/fp32",
        "resnet50/inference/bs64/fp32",
        "resnet50/inference/bs256/fp32",
        "resnet50/train/bs1/fp32",
    ]
    assert len(suite.warnings) == 1 and "s.yaml:5: exclude[2]: matches no matrix case" in suite.warnings[0]


def test_include_adds_cases_from_defaults_after_exclude(tmp_path):
    suite = load(
        tmp_path,
        "tags: [t]\n"
        "defaults: {device: cpu, precision: amp_bf16}\n"
        "matrix: {model: resnet18, mode: train, batch_size: [2, 4]}\n"
        "exclude: [{batch_size: 4}]\n"
        "include:\n"
        "  - {model: resnet50, batch_size: 512, resolution: 128, tags: [big]}\n"
        "  - {model: resnet18, mode: train, batch_size: 4}\n",
    )
    assert ids(suite) == [
        "resnet18/train/bs2/amp_bf16",
        "resnet50/inference/bs512/amp_bf16/r128",  # mode from the built-in default: include ignores the matrix
        "resnet18/train/bs4/amp_bf16",  # excluded from the matrix, added back by include
    ]
    big = suite.cases()[1]
    assert big.device == "cpu" and big.tags == ("t", "big") and suite.cases()[0].tags == ("t",)


def test_include_with_a_matrix_id_replaces_that_case_in_place(tmp_path):
    suite = load(
        tmp_path,
        "matrix: {model: resnet18, batch_size: [1, 2, 3]}\n"
        "include: [{model: resnet18, batch_size: 2, oom_reduce: true, timeout_s: null, weights: V1}]\n",
    )
    assert ids(suite) == ["resnet18/inference/bs1/fp32", "resnet18/inference/bs2/fp32", "resnet18/inference/bs3/fp32"]
    replaced = suite.cases()[1]
    assert replaced.oom_reduce and replaced.timeout_s is None and replaced.weights == "V1"


def test_yaml_anchors_and_merge_keys(tmp_path):
    suite = load(
        tmp_path,
        "defaults: &base {device: cpu, batch_size: 2}\n"
        "matrix: {model: resnet18}\n"
        "include:\n"
        "  - <<: *base\n"
        "    model: resnet50\n"
        "    batch_size: 4\n",
    )
    assert ids(suite) == ["resnet18/inference/bs2/fp32", "resnet50/inference/bs4/fp32"]
    assert suite.cases()[1].device == "cpu"


def test_duplicate_axis_values_give_one_case(tmp_path):
    assert ids(load(tmp_path, "matrix: {model: resnet18, batch_size: [2, 2]}\n")) == ["resnet18/inference/bs2/fp32"]


def test_case_id_rule():
    assert Case(model="resnet50", mode="train", batch_size=256, precision="amp_bf16", channels_last=True).id == (
        "resnet50/train/bs256/amp_bf16/cl"
    )
    full = Case(model="resnet18", batch_size=2, channels_last=True, resolution=64, compile=True)
    assert full.id == "resnet18/inference/bs2/fp32/cl/r64/compile"
    # settings that do not change what is measured do not change the id either
    tuned = Case(model="resnet18", batch_size=2, device="cuda:1", weights="V1", warmup=Warmup(min_iters=50), seed=3)
    assert tuned.id == Case(model="resnet18", batch_size=2).id == "resnet18/inference/bs2/fp32"


def test_case_round_trips_through_json_and_is_frozen():
    case = Case(model="resnet50", mode="train", batch_size=8, tags=("a", "b"), measure=Measure(repeats=3), profile=True)
    data = json.loads(json.dumps(case.to_dict()))
    assert data["id"] == case.id and data["warmup"]["window"] == 5
    assert Case.from_dict(data) == case
    with pytest.raises(FrozenInstanceError):
        case.batch_size = 4
    smaller = case.replace(batch_size=4)
    assert smaller.id == "resnet50/train/bs4/fp32" and case.batch_size == 8


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"model": "resnet50", "batch_size": 8, "batchsize": 4}, "unknown case keys batchsize"),
        ({"model": "resnet50"}, "needs batch_size"),
        ({"model": "resnet5", "batch_size": 8}, "model 'resnet5'"),
        ({"model": "resnet50", "batch_size": True}, "batch_size must be an integer"),
        ({"model": "resnet50", "batch_size": 8, "warmup": {"iter": 3}}, "unknown warmup keys iter"),
        ({"model": "resnet50", "batch_size": 8, "measure": {"min_iters": 9, "max_iters": 3}}, "below min_iters"),
        ({"model": "resnet18", "batch_size": 8, "weights": "V2"}, "resnet18 has no weights 'V2'; it has: V1"),
    ],
)
def test_case_from_dict_rejects_bad_input(data, expected):
    with pytest.raises(SuiteError, match=expected):
        Case.from_dict(data)


def test_profile_block_marks_and_matches_cases(tmp_path):
    suite = load(
        tmp_path,
        "matrix: {model: [resnet18, resnet50], mode: [inference, train], batch_size: 2}\n"
        "profile: {cases: [{model: resnet50, mode: train}, {model: resnet18, mode: inference}]}\n",
    )
    assert [c.id for c in suite.cases() if c.profile] == ["resnet18/inference/bs2/fp32", "resnet50/train/bs2/fp32"]
    assert suite.profile.cases == [
        {"model": ["resnet50"], "mode": ["train"]},
        {"model": ["resnet18"], "mode": ["inference"]},
    ]
    assert suite.profile.matches(Case(model="resnet50", mode="train", batch_size=1024))
    assert not suite.profile.matches(Case(model="resnet50", batch_size=2))


def test_resolved_is_json_and_rebuilds_the_same_suite(tmp_path):
    suite = load(tmp_path, DESIGN_SKETCH.replace("batch_size: 64", "batch_size: 32"), "night.yaml")
    resolved = json.loads(json.dumps(suite.resolved()))
    assert resolved["source"] == str((tmp_path / "night.yaml").resolve())
    assert len(resolved["sha256"]) == 64 and resolved["case_count"] == len(resolved["cases"]) == 137
    assert resolved["launch"]["strategy"] == "sweep" and resolved["defaults"]["warmup"] == {"min_iters": 10}
    again = Suite.from_resolved(resolved)
    assert again.cases() == suite.cases() and again.name == "nightly" and again.sha256 == suite.sha256


def test_weights_tags_and_paths(tmp_path):
    suite = load(
        tmp_path,
        "defaults: {weights: V2}\n"
        "matrix: {model: resnet50, batch_size: 2}\n"
        "include: [{model: resnet18, batch_size: 2, weights: ckpt/resnet18-f37072fd.pth}]\n",
    )
    v2, path = suite.cases()
    assert v2.weights == "V2"
    assert path.weights == str(tmp_path / "ckpt" / "resnet18-f37072fd.pth")


def test_accuracy_block_resolves_its_folder_from_the_suite(tmp_path):
    suite = load(tmp_path, "matrix: {model: resnet18, batch_size: 2}\naccuracy: {data: val, limit: 500}\n")
    assert suite.accuracy.data == tmp_path / "val" and suite.accuracy.limit == 500


def test_ddp_launch_settings(tmp_path):
    suite = load(
        tmp_path,
        "defaults: {mode: train}\nmatrix: {model: resnet50, batch_size: 64}\n"
        "launch: {strategy: ddp, world_sizes: [1, 2, 4, 8], nnodes: 2, nproc_per_node: 4, max_restarts: 1}\n",
    )
    launch = suite.launch
    assert (launch.strategy, launch.world_sizes, launch.nnodes, launch.nproc_per_node, launch.max_restarts) == (
        "ddp",
        [1, 2, 4, 8],
        2,
        4,
        1,
    )


def test_suite_from_a_dict_without_a_file():
    suite = Suite.from_spec({"name": "adhoc", "matrix": {"model": "resnet18", "batch_size": [1, 2]}})
    assert suite.name == "adhoc" and len(suite.cases()) == 2 and suite.source is None
    with pytest.raises(SuiteError, match=r"<suite>: matrix.batch_size\[1\]: must be >= 1, got 0"):
        Suite.from_spec({"matrix": {"model": "resnet18", "batch_size": [1, 0]}})


def test_suite_error_is_a_harness_error():
    assert issubclass(SuiteError, HarnessError)
