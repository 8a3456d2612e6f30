"""`harness validate` and `harness schema` as a user runs them: output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli

SUITES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "suites").glob("*.yaml"))


def test_validate_every_shipped_suite():
    result = run_cli("validate", *SUITES)
    assert result.returncode == 0, result.stderr
    assert "ok: suites/smoke.yaml (80 cases)" in result.stdout
    assert result.stdout.count("ok: ") == len(SUITES)
    assert result.stderr == ""


def test_validate_list_prints_case_ids_and_marks_profiled_ones():
    result = run_cli("validate", "--list", "suites/smoke.yaml")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 81
    assert "  resnet18/inference/bs2/fp32/r64" in lines
    assert "  resnet18/train/bs2/fp32/r64  *" in lines
    assert "  wide_resnet101_2/train/bs2/amp_bf16/cl/r64" in lines


def test_validate_reports_every_bad_file_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("matrix:\n  model: resnet5\n  batchsize: 2\n")
    result = run_cli("validate", "suites/smoke.yaml", str(bad), str(tmp_path / "missing.yaml"), str(tmp_path))
    assert result.returncode == 2
    assert "ok: suites/smoke.yaml (80 cases)" in result.stdout
    assert f"{bad}:2: matrix.model: unknown model 'resnet5' (did you mean resnet50?)" in result.stderr
    assert f"{bad}:3: matrix.batchsize: unknown key (did you mean batch_size?)" in result.stderr
    assert f"{tmp_path / 'missing.yaml'}: no such suite file" in result.stderr
    assert "is a directory" in result.stderr
    assert "3 of 4 suite files have problems" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_yaml_syntax_error_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("matrix: {model: [resnet18, batch_size: 2\n")
    result = run_cli("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "YAML syntax error" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_validate_prints_warnings_but_passes(tmp_path):
    path = tmp_path / "warn.yaml"
    path.write_text("matrix: {model: resnet18, batch_size: 2}\nexclude: [{model: resnet50}]\n")
    result = run_cli("validate", str(path))
    assert result.returncode == 0
    assert f"warning: {path}:2: exclude[0]: matches no matrix case" in result.stderr


def test_validate_needs_a_file():
    result = run_cli("validate")
    assert result.returncode == 2 and "SUITE" in result.stderr


def test_schema_is_json_schema_with_descriptions():
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False
    top = {"name", "description", "tags", "defaults", "matrix", "exclude", "include", "launch", "profile"}
    assert top | {"telemetry", "regression", "accuracy"} == set(schema["properties"])
    models = [schema["properties"], *(d.get("properties", {}) for d in schema["$defs"].values())]
    undescribed = [name for props in models for name, prop in props.items() if not prop.get("description")]
    assert undescribed == []
    defaults = schema["$defs"]["DefaultsSpec"]["properties"]
    assert len(defaults["model"]["enum"]) == 10 and "resnet50" in defaults["model"]["enum"]
    assert defaults["precision"]["enum"] == ["fp32", "tf32", "amp_fp16", "amp_bf16"]
    axis = schema["$defs"]["MatrixSpec"]["properties"]["batch_size"]["anyOf"]
    assert {"type": "integer", "minimum": 1, "maximum": 65536} in axis  # a single value or a list


def test_schema_out_writes_the_file(tmp_path):
    out = tmp_path / "suite.schema.json"
    result = run_cli("schema", "--out", str(out))
    assert result.returncode == 0 and f"wrote {out}" in result.stdout
    assert json.loads(out.read_text())["title"] == "harness suite"
    unwritable = run_cli("schema", "--out", str(tmp_path / "no" / "such" / "dir" / "s.json"))
    assert unwritable.returncode == 2 and "cannot write the schema" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr


@pytest.mark.parametrize("module", ["harness.commands.validate", "harness.commands.schema", "harness.suite.case"])
def test_light_modules_import_no_pydantic_yaml_or_torch(module):
    # `harness validate --help` stays fast, and workers can rebuild cases from JSON without the schema stack
    code = f"import sys, {module}; print(sorted(m for m in ('pydantic', 'yaml', 'torch') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
