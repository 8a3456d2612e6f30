"""Bounds on suites (issue 14): alias bombs, non-finite durations, huge batch sizes and resolutions, huge case
counts, and long problem lists. Each stops with one clear message (what, where, how to fix) and exit 2, fast and
in bounded memory; no test asserts a duration."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.suite import Case, Measure, SuiteError, Warmup, load_suite, parse_suite
from harness.suite.schema import json_schema
from tests.conftest import ROOT

OK_MATRIX = "matrix: {model: resnet18, batch_size: 2}\n"
# Generous: the fixed code needs well under a second; the old one ran for minutes and past 1.2 GB.
GUARD_S = 300
MEMORY_LIMIT = 1 << 30  # 1 GiB of address space: a validating harness needs about 300 MB


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def harness_bounded(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m harness ARGV`` in a subprocess limited to MEMORY_LIMIT of address space; a run past GUARD_S
    raises TimeoutExpired (the process never ended)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "harness", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        preexec_fn=_limit_memory,
    )


def _nested_aliases(indent: str, levels: int = 9, width: int = 9) -> list[str]:
    """List items of a YAML alias bomb: level 0 holds `width` ones; each next level holds `width` aliases of the
    one below, so the last stands for width**levels values."""
    lines = [f"{indent}- &a0 [{', '.join(['1'] * width)}]"]
    lines += [f"{indent}- &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return lines


BOMBS = {
    # anchors defined at the top level (as unknown keys), the last one used in the matrix
    "top level": "\n".join(
        [f"a{i}: &a{i} [{', '.join(['1'] * 9 if i == 0 else [f'*a{i - 1}'] * 9)}]" for i in range(9)]
        + ["matrix: {model: resnet18, batch_size: *a8}"]
    )
    + "\n",
    # the whole bomb written under matrix.batch_size
    "matrix.batch_size": "matrix:\n  model: resnet18\n  batch_size:\n" + "\n".join(_nested_aliases("    ")) + "\n",
}


# --- defect 1: alias bombs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("where", list(BOMBS))
def test_alias_bomb_ends_with_exit_2_one_message_and_bounded_memory(tmp_path, where, command):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMBS[where])
    extra = ["--out", str(tmp_path / "results"), "--no-report", "--no-progress"] if command == "run" else []
    result = harness_bounded(command, *extra, str(path), cwd=tmp_path)
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"{path}:" in lines[0] and "alias" in lines[0] and "1,000,000" in lines[0]
    assert len(lines[0]) < 400
    if where == "matrix.batch_size":
        assert f"{path}:3: matrix.batch_size:" in lines[0]  # the key that uses the aliases, on its line
    assert not (tmp_path / "results").exists()


def test_show_formats_an_aliased_value_of_387_million_items_in_bounded_memory(tmp_path):
    # The cause of the hang: messages.show() called repr() on the whole value before cutting it to 60 characters.
    code = (
        "from harness.suite.messages import show\n"
        "v = [1] * 9\n"
        "for _ in range(8):\n"
        "    v = [v] * 9\n"
        "text = show(v)\n"
        "print(len(text)); print(text)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=GUARD_S,
        preexec_fn=_limit_memory,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    length, text = result.stdout.splitlines()
    assert int(length) <= 60 and text.startswith("[[[") and text.endswith("...")


def test_show_is_bounded_for_huge_integers_long_text_and_self_containing_lists():
    from harness.suite.messages import show

    assert show(10**5000) == "<an integer of about 5,001 digits>"  # repr() raises past 4300 digits
    assert len(show("x" * 10_000_000)) == 60 and show("x" * 10_000_000).endswith("...")
    loop: list = []
    loop.append(loop)
    assert show(loop) == "[[[[[...]]]]]"  # four levels, then the rest elided
    assert show([1, True, None, "a", {"k": 2.5}]) == "[1, true, null, 'a', {'k': 2.5}]"
    assert (show(math.inf), show(-math.inf), show(math.nan)) == (".inf", "-.inf", ".nan")


def test_brief_visits_about_width_items_whatever_the_size():
    from harness.suite.brief import brief

    visited = 0

    def items():
        nonlocal visited
        while True:  # an endless iterable: brief must stop on its own
            visited += 1
            yield visited

    class Endless(list):
        def __iter__(self):
            return items()

    assert brief(Endless(), width=60).endswith("...")
    assert visited <= 60


def test_a_recursive_alias_is_refused_with_its_line(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(OK_MATRIX + "tags: &t [a, *t]\n")
    with pytest.raises(SuiteError, match=r"loop\.yaml:2: .*alias to itself"):
        load_suite(path)


def test_an_integer_too_long_to_read_is_one_message_not_a_traceback(tmp_path):
    path = tmp_path / "digits.yaml"
    path.write_text("matrix: {model: resnet18, batch_size: " + "9" * 5000 + "}\n")
    result = harness_bounded("validate", str(path), cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2
    assert f"{path}:1:" in result.stderr and "5,000 digits" in result.stderr


def test_a_few_aliases_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(
        "defaults:\n  measure: &quick {min_seconds: 0.1, min_iters: 2}\n"
        "matrix: &m {model: resnet18, batch_size: [2, 4]}\n"
        "include:\n  - {model: resnet34, batch_size: 2, measure: *quick}\n"
    )
    assert len(load_suite(path).cases()) == 3


# --- defect 2: non-finite numbers -------------------------------------------------------------------------------

NON_FINITE = {
    "measure.min_seconds .inf": ("defaults:\n  measure: {min_seconds: .inf}\n", 2, "defaults.measure.min_seconds",
                                 ">= 0 and <= 604800"),
    "warmup.max_seconds .inf": ("defaults:\n  warmup:\n    max_seconds: .inf\n", 3, "defaults.warmup.max_seconds",
                                "> 0 and <= 604800"),
    "timeout_s .inf": ("defaults: {timeout_s: .inf}\n", 1, "defaults.timeout_s", "> 0 and <= 604800"),
    "timeout_s .nan": ("defaults: {timeout_s: .nan}\n", 1, "defaults.timeout_s", "> 0 and <= 604800"),
    "include measure .inf": (
        "include:\n  - model: resnet18\n    batch_size: 2\n    measure: {min_seconds: .inf}\n",
        4,
        "include[0].measure.min_seconds",
        ">= 0 and <= 604800",
    ),
    "tolerance -.inf": ("defaults:\n  warmup: {tolerance: -.inf}\n", 2, "defaults.warmup.tolerance", ">= 0 and < 1"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(NON_FINITE))
def test_non_finite_numbers_are_refused_naming_key_file_line_and_range(tmp_path, name):
    text, line, key, valid = NON_FINITE[name]
    path = tmp_path / "inf.yaml"
    path.write_text(text + OK_MATRIX)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: {key}: "), message
    assert f"must be a finite number {valid}, got " in message


@pytest.mark.parametrize(
    "text", ["defaults: {timeout_s: 100000000000000000000000}\n", "defaults: {warmup: {max_seconds: 1.0e+300}}\n"]
)
def test_durations_are_at_most_a_week(text):
    with pytest.raises(SuiteError, match=r"must be <= 604800, got .* \(a week"):
        parse_suite(text + OK_MATRIX, "s.yaml")


def test_an_exponent_without_a_sign_gets_the_right_hint():
    # YAML 1.1 reads 1.5e3 as text; the hint used to say it was quoted.
    with pytest.raises(SuiteError, match=r"without a sign as text: write 1\.5e\+3 or 1500"):
        parse_suite("defaults: {timeout_s: 1.5e3}\n" + OK_MATRIX, "s.yaml")


def test_an_infinite_duration_never_reaches_the_manifest(tmp_path):
    # Before: accepted, and the manifest then held Infinity, which is not JSON.
    with pytest.raises(SuiteError, match="finite"):
        parse_suite("defaults:\n  measure: {min_seconds: .inf}\n" + OK_MATRIX, tmp_path / "s.yaml")
    suite = parse_suite("defaults:\n  measure: {min_seconds: 0}\n" + OK_MATRIX, tmp_path / "s.yaml")
    json.dumps(suite.resolved(), allow_nan=False)  # every number the manifest holds is finite


@pytest.mark.parametrize(
    "build",
    [
        lambda: Measure(min_seconds=math.inf),
        lambda: Warmup(max_seconds=math.inf),
        lambda: Warmup(tolerance=math.nan),
        lambda: Case(model="resnet18", batch_size=2, timeout_s=math.inf),
        lambda: Case.from_dict({"model": "resnet18", "batch_size": 2, "measure": {"min_seconds": math.nan}}),
    ],
)
def test_cases_rebuilt_from_json_refuse_non_finite_durations(build):
    with pytest.raises(SuiteError, match="finite"):
        build()


# --- defect 3: batch size and resolution ------------------------------------------------------------------------


def test_a_huge_batch_size_is_refused_with_the_cap_and_its_reason(tmp_path):
    path = tmp_path / "bs.yaml"
    path.write_text("matrix:\n  model: resnet18\n  batch_size: [2, 100000000000000000000000]\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: matrix.batch_size[1]: must be <= 65536, got 100000000000000000000000 (")
    assert "GiB" in message  # the reason for the cap


def test_a_huge_resolution_is_refused_with_the_cap_and_its_reason(tmp_path):
    path = tmp_path / "res.yaml"
    path.write_text(OK_MATRIX + "defaults: {resolution: 100000}\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: defaults.resolution: must be <= 2048, got 100000 (")
    assert "GiB" in message


def test_the_caps_themselves_are_accepted():
    suite = parse_suite("name: caps\nmatrix: {model: resnet18, batch_size: [65536], resolution: [2048]}\n")
    assert [c.id for c in suite.cases()] == ["resnet18/inference/bs65536/fp32/r2048"]


@pytest.mark.parametrize("values", [{"batch_size": 65537}, {"batch_size": 2, "resolution": 2049}])
def test_cases_rebuilt_from_json_refuse_values_past_the_caps(values):
    with pytest.raises(SuiteError, match="65536|2048"):
        Case.from_dict({"model": "resnet18", **values})


def test_schema_states_the_caps_as_maximum():
    schema = json_schema()
    defaults = schema["$defs"]["DefaultsSpec"]["properties"]
    assert defaults["batch_size"]["maximum"] == 65536 and "65536" in defaults["batch_size"]["description"]
    assert defaults["resolution"]["maximum"] == 2048 and "2048" in defaults["resolution"]["description"]
    for axis in ("batch_size", "resolution"):
        for option in schema["$defs"]["MatrixSpec"]["properties"][axis]["anyOf"]:
            item = option.get("items", option)
            assert item["maximum"] == (65536 if axis == "batch_size" else 2048)
    for model, key in (("MeasureSpec", "min_seconds"), ("WarmupSpec", "max_seconds")):
        assert "finite" in schema["$defs"][model]["properties"][key]["description"]


HUGE = 100000000000000000000000  # 10**23, past 64 bits

OTHER_INTEGERS = {
    "defaults.seed": (f"defaults: {{seed: {HUGE}}}\n", 4294967295),
    "defaults.measure.max_iters": (f"defaults: {{measure: {{max_iters: {HUGE}}}}}\n", 10000000),
    "defaults.measure.repeats": (f"defaults: {{measure: {{repeats: {HUGE}}}}}\n", 1000),
    "defaults.warmup.window": (f"defaults: {{warmup: {{window: {HUGE}}}}}\n", 10000000),
    "launch.nnodes": (f"launch: {{nnodes: {HUGE}}}\n", 65536),
    "launch.nproc_per_node": (f"launch: {{nproc_per_node: {HUGE}}}\n", 65536),
    "launch.max_restarts": (f"launch: {{max_restarts: {HUGE}}}\n", 1000),
    "accuracy.limit": (f"accuracy: {{data: val, limit: {HUGE}}}\n", 1000000000),
}


@pytest.mark.parametrize("key", list(OTHER_INTEGERS))
def test_every_integer_a_suite_gives_is_bounded(tmp_path, key):
    # An accepted suite's integers go into the manifest, which other tools read as 64-bit numbers.
    text, most = OTHER_INTEGERS[key]
    path = tmp_path / "ints.yaml"
    path.write_text(OK_MATRIX + text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: {key}: "), message
    assert str(most) in message and str(HUGE) in message


# --- defect 4: case counts --------------------------------------------------------------------------------------


def _matrix(batch_sizes: int, resolutions: int) -> str:
    sizes = ", ".join(str(b) for b in range(2, 2 + batch_sizes))
    sides = ", ".join(str(r) for r in range(32, 32 + resolutions))
    return f"matrix:\n  model: resnet18\n  batch_size: [{sizes}]\n  resolution: [{sides}]\n"


def test_more_than_10000_cases_warn_with_the_count(tmp_path, capsys):
    path = tmp_path / "wide.yaml"
    path.write_text(_matrix(12, 1000))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert f"ok: {path} (12000 cases)" in out.out
    assert "warning" in out.err and "12,000 cases" in out.err and "10,000" in out.err


def test_a_suite_below_the_warning_loads_without_one(tmp_path, capsys):
    path = tmp_path / "fine.yaml"
    path.write_text(_matrix(10, 1000))
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().err == ""


def test_more_than_100000_cases_are_refused_before_any_case_is_built(tmp_path, monkeypatch):
    import harness.suite.expand as expand_module

    built = 0

    class CountingCase(expand_module.Case):
        def __post_init__(self) -> None:
            nonlocal built
            built += 1
            super().__post_init__()

    monkeypatch.setattr(expand_module, "Case", CountingCase)
    path = tmp_path / "huge.yaml"
    path.write_text(_matrix(120, 1000))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: matrix: the matrix crosses 120,000 combinations")
    assert "100,000" in message and "--max-cases" in message
    assert built == 0


def test_max_cases_lifts_the_cap_on_validate(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text(_matrix(120, 1000))
    assert main(["validate", str(path)]) == 2
    assert "--max-cases" in capsys.readouterr().err
    assert main(["validate", "--max-cases", "120000", str(path)]) == 0
    assert f"ok: {path} (120000 cases)" in capsys.readouterr().out


def test_max_cases_on_run_refuses_and_lifts(tmp_path, capsys):
    path = tmp_path / "twelve.yaml"
    path.write_text(_matrix(3, 4))
    assert main(["run", "--dry-run", "--max-cases", "5", str(path)]) == 2
    err = capsys.readouterr().err
    assert "12 cases, more than the cap of 5" in err and "Traceback" not in err
    assert main(["run", "--dry-run", "--max-cases", "12", str(path)]) == 0
    assert "12 cases (dry run" in capsys.readouterr().out


def test_include_entries_count_towards_the_cap(tmp_path, capsys):
    path = tmp_path / "inc.yaml"
    path.write_text("include:\n" + "".join(f"  - {{model: resnet18, batch_size: {b}}}\n" for b in (2, 3, 4)))
    assert main(["validate", "--max-cases", "2", str(path)]) == 2
    assert "include lists 3 entries" in capsys.readouterr().err


def test_a_run_started_with_max_cases_resumes_under_the_same_cap(tmp_path, monkeypatch):
    import harness.suite.suite as suite_module
    from harness.suite import Suite

    monkeypatch.setattr(suite_module, "MAX_CASES", 5)  # a default cap below this suite's 12 combinations
    path = tmp_path / "twelve.yaml"
    path.write_text(_matrix(3, 4) + "exclude:\n  - {batch_size: 2}\n")  # 8 cases left of 12 combinations
    suite = load_suite(path, max_cases=12)
    resolved = json.loads(json.dumps(suite.resolved()))  # as the manifest holds it
    assert resolved["max_cases"] == 12
    again = Suite.from_resolved(resolved)
    assert [c.id for c in again.cases()] == [c.id for c in suite.cases()]
    with pytest.raises(SuiteError, match="cap of 5"):
        Suite.from_resolved({k: v for k, v in resolved.items() if k not in ("max_cases", "cases")})


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_max_cases_must_be_a_positive_integer(value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["validate", "--max-cases", value, "suites/smoke.yaml"])
    assert info.value.code == 2
    assert "--max-cases" in capsys.readouterr().err


def test_schema_states_the_case_count_bounds():
    schema = json_schema()
    text = schema["properties"]["matrix"]["description"]
    assert "10,000" in text and "100,000" in text and "--max-cases" in text
    assert "100,000" in schema["description"] and "65536" in schema["description"]


# --- defect 5: long problem lists -------------------------------------------------------------------------------


def test_a_problem_shared_by_many_matrix_cases_is_listed_once_with_its_count(tmp_path):
    # 5 models x 4 precisions x 2 memory formats = 40 cases, each training at batch 1 and 32 px; the listing used
    # to repeat the same line 8 times per model.
    path = tmp_path / "bn.yaml"
    path.write_text(
        "matrix:\n  model: [resnet18, resnet34, resnet50, resnet101, resnet152]\n  mode: train\n  batch_size: 1\n"
        "  resolution: 32\n  precision: [fp32, tf32, amp_fp16, amp_bf16]\n  channels_last: [false, true]\n"
    )
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.count("1x1 feature map") == 1
    assert "40 matrix cases" in message and "resnet18/train/bs1/fp32/r32" in message


def test_a_long_problem_list_shows_the_first_20_and_counts_the_rest(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text(OK_MATRIX + "".join(f"unknown_{i}: 1\n" for i in range(80)))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"80 problems in {path}:"
    assert len(lines) == 1 + 20 + 1
    assert lines[-1].strip().startswith("... and 60 more")
    assert len(set(lines)) == len(lines)
    assert len(info.value.issues) == 80  # programs still get every problem


def test_identical_problems_are_listed_once():
    from harness.suite.source import Issue, raise_issues

    same = Issue("s.yaml", 3, 1, "matrix", "one problem")
    with pytest.raises(SuiteError) as info:
        raise_issues([same, Issue("s.yaml", 3, 1, "matrix", "one problem"), same])
    assert str(info.value) == "s.yaml:3: matrix: one problem"
