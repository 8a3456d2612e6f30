"""What ``harness compare`` prints and writes: one row per flagged case with its throughput and step time together,
links to the case in the run's report and to its traces only where they exist, and JSON without empty values."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.cli import main
from harness.regress.compare import BUCKETS
from harness.report.anchors import case_anchor
from harness.store.rundir import RunFolder
from tests.synthetic import make_record, make_run

CASES = ("resnet18/inference/bs32/fp32", "resnet50/inference/bs32/fp32")


def records(step_ms: float, seed: int = 0, **extra) -> list[dict]:
    return [
        make_record(model="resnet18", step_ms=step_ms, seed=seed, **extra),
        make_record(model="resnet50", step_ms=2 * step_ms, seed=seed + 1, **extra),
    ]


def night(root: Path, day: int, step_ms: float = 100.0, name: str | None = None, **extra) -> Path:
    return make_run(
        root,
        records(step_ms, seed=day * 10, **extra),
        suite="nightly",
        started_at=f"2026-01-{day:02d}T02:00:00Z",
        name=name,
    )


def compare(capsys, *argv) -> tuple[int, str]:
    code = main(["compare", *map(str, argv)])
    out, _ = capsys.readouterr()
    return code, out


def with_report_and_trace(run: Path, traced: str = CASES[0]) -> None:
    """Give ``run`` a report (its content does not matter to the links) and a trace of case ``traced``."""
    folder = RunFolder(run)
    folder.report_path.write_text("<!DOCTYPE html><title>report</title>")
    trace = folder.profile_dir(traced)
    trace.mkdir(parents=True)
    (trace / "rank0.1.pt.trace.json.gz").write_bytes(b"\x1f\x8b")


def test_a_regressed_case_is_one_row_with_throughput_and_step_time(tmp_path, capsys):
    base, slow = night(tmp_path, 1), night(tmp_path, 2, step_ms=150, name="slow")
    code, out = compare(capsys, base, slow, "--fail-on", "regression")
    assert code == 1  # the verdict and exit code are as they were
    table = out[out.index("Regressed") : out.index("2 regressed")]
    rows = [line for line in table.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == list(CASES)  # each case once
    header = next(line for line in table.splitlines() if line.startswith("┃"))
    assert "throughput (img/s)" in header and "step time (ms)" in header and "decided by" in header
    for row in rows:
        tput, step = (cell.strip() for cell in row.split("│")[2:4])
        # baseline -> candidate and the change: 1.5x the step time is a third of the throughput lost
        assert re.fullmatch(r"[\d.,]+ -> [\d.,]+ -3\d\.\d%", tput) and re.fullmatch(
            r"[\d.,]+ -> [\d.,]+ \+[45]\d\.\d%", step
        )
    code, md = compare(capsys, base, slow, "--format", "markdown")
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0] == "| case | throughput (img/s) | step time (ms) | other metrics | decided by |"
    assert [line.split(" | ")[0].removeprefix("| ") for line in lines[1:]] == list(CASES)


def test_a_memory_change_is_in_the_same_row(tmp_path, capsys):
    base = night(tmp_path, 1)
    fat = make_run(
        tmp_path,
        [{**r, "rss_peak_mib": 2000.0} for r in records(100.0, seed=20)],
        suite="nightly",
        started_at="2026-01-02T02:00:00Z",
        name="fat",
    )
    _, md = compare(capsys, base, fat, "--format", "markdown")
    rows = [line for line in md.splitlines() if line.startswith("| resnet")]
    assert len(rows) == 2 and all("rss_peak_mib 820 MiB -> 2,000 MiB +143.9%" in row for row in rows)
    # The timed metrics did not move: their cells hold the values without a verdict.
    assert all(row.count(" -> ") == 3 and "regressed" not in row.split(" | ")[1] for row in rows)


def test_a_run_with_a_report_links_each_case_and_its_traces(tmp_path, capsys):
    base, slow = night(tmp_path, 1), night(tmp_path, 2, step_ms=150, name="slow")
    with_report_and_trace(slow)
    code, out = compare(capsys, base, slow, "--format", "json")
    assert code == 0
    result = json.loads(out)
    links = {c["key"]: c["links"] for c in result["buckets"]["regressed"]}
    report = RunFolder(slow).report_path
    assert links == {
        CASES[0]: {"report": f"{report}#{case_anchor(CASES[0])}", "traces": str(RunFolder(slow).profile_dir(CASES[0]))},
        CASES[1]: {"report": f"{report}#{case_anchor(CASES[1])}"},
    }
    assert json.loads((slow / "regressions.json").read_text()) == result
    # The terminal prints the paths; the markdown links them.
    _, text = compare(capsys, base, slow)
    # The case column, its lines joined: rich may fold a long path.
    flat = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert f"{report}#{case_anchor(CASES[1])}" in flat and str(RunFolder(slow).profile_dir(CASES[0])) in flat
    _, md = compare(capsys, base, slow, "--format", "markdown")
    assert f"[{CASES[1]}](<{report}#{case_anchor(CASES[1])}>)" in md
    assert f"([traces](<{RunFolder(slow).profile_dir(CASES[0])}>))" in md
    # summary.md lies in the run folder: its links are relative to it, and lead to the report.
    summary = (slow / "summary.md").read_text()
    target = re.search(rf"\[{re.escape(CASES[0])}\]\(<([^>]+)>\)", summary).group(1)
    assert target == f"report.html#{case_anchor(CASES[0])}" and (slow / target.split("#")[0]).is_file()


def test_a_missing_case_links_to_the_baseline_report_and_a_changed_one_to_both(tmp_path, capsys):
    base, slow = night(tmp_path, 1), night(tmp_path, 2, step_ms=150, name="slow")
    with_report_and_trace(base, traced=CASES[1])
    with_report_and_trace(slow)
    gone = make_run(
        tmp_path, records(150.0, seed=30)[:1], suite="nightly", started_at="2026-01-03T02:00:00Z", name="gone"
    )
    with_report_and_trace(gone)
    result = json.loads(compare(capsys, base, gone, "--format", "json")[1])
    (missing,) = result["buckets"]["missing"]
    assert missing["key"] == CASES[1] and missing["links"] == {
        "report": f"{RunFolder(base).report_path}#{case_anchor(CASES[1])}",
        "traces": str(RunFolder(base).profile_dir(CASES[1])),
    }
    (regressed,) = result["buckets"]["regressed"]
    assert regressed["links"]["baseline_report"] == f"{RunFolder(base).report_path}#{case_anchor(CASES[0])}"


def test_a_run_without_a_report_gets_no_links(tmp_path, capsys):
    base, slow = night(tmp_path, 1), night(tmp_path, 2, step_ms=150, name="slow")
    code, out = compare(capsys, base, slow, "--format", "json")
    assert code == 0 and all("links" not in c for cases in json.loads(out)["buckets"].values() for c in cases)
    for fmt in ("table", "markdown"):
        text = compare(capsys, base, slow, "--format", fmt)[1]
        assert "report.html" not in text and "profiles" not in text and "](" not in text
    # An empty profiles folder is no trace either.
    RunFolder(slow).profile_dir(CASES[0]).mkdir(parents=True)
    assert "profiles" not in compare(capsys, base, slow, "--format", "json")[1]


def empty_values(value, path: str = "") -> list[str]:
    """Where ``value`` holds a null, an empty list or an empty object (a step's recovered_run may be null)."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{path}.{k}"
            if v is None and k != "recovered_run" or isinstance(v, (dict, list)) and not v:
                out.append(here)
            out += empty_values(v, here)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if v is None or isinstance(v, (dict, list)) and not v:
                out.append(f"{path}[{i}]")
            out += empty_values(v, f"{path}[{i}]")
    return out


def test_the_json_holds_no_empty_value(tmp_path, capsys):
    runs = [night(tmp_path, d) for d in range(1, 5)]
    quiet = night(tmp_path, 5, name="quiet")
    noisy = night(tmp_path, 6, step_ms=150, name="noisy", noisy=["other processes used 46% of the cores"])
    new = make_run(
        tmp_path,
        [make_record(model="resnet34", step_ms=50.0), make_record(model="resnet18", status="oom")],
        suite="nightly",
        started_at="2026-01-07T02:00:00Z",
        name="new",
    )
    seen = {}
    for argv in (
        (runs[0], quiet),
        (runs[0], noisy),
        (runs[0], new),
        ("--history", 4, "--root", tmp_path, quiet),
    ):
        result = json.loads(compare(capsys, *argv, "--format", "json")[1])
        assert empty_values(result) == [], argv
        for bucket in result["buckets"]:
            seen[bucket] = True
        # Every bucket is counted, zeros included, though only those with cases are listed.
        assert set(result["counts"]) == set(BUCKETS)
        assert set(result["buckets"]) == {b for b, n in result["counts"].items() if n}
        assert "steps" not in result  # no history of three runs, or no step in it
    assert {"unchanged", "inconclusive", "new", "missing", "newly_failing"} <= set(seen)


def test_the_steps_of_a_history_are_kept_with_a_null_recovered_run(tmp_path, capsys):
    for d in range(1, 10):
        night(tmp_path, d, step_ms=100 if d < 5 else 120)
    cand = night(tmp_path, 10, step_ms=120, name="cand")
    result = json.loads(compare(capsys, "--history", 9, "--root", tmp_path, cand, "--format", "json")[1])
    assert empty_values(result) == [] and set(result["steps"]) == set(CASES)
    assert all(step["recovered_run"] is None for steps in result["steps"].values() for step in steps)


def test_the_hardware_json_holds_no_empty_value_and_every_pair(tmp_path, capsys):
    runs = [night(tmp_path, d, step_ms=ms, name=f"hw{d}") for d, ms in ((1, 100.0), (2, 50.0), (3, 25.0))]
    result = json.loads(compare(capsys, "--hardware", *runs, "--format", "json")[1])
    assert empty_values(result) == []
    assert "notes" not in result and all("img_per_j" not in c for c in result["cases"])
    pairs = {(p["a"], p["b"]): p for p in result["pairs"]}
    assert set(pairs) == {(0, 1), (0, 2), (1, 2)}
    assert [round(pairs[k]["geomean"], 1) for k in sorted(pairs)] == [2.0, 4.0, 2.0]
    assert all(p["cases"] == 2 for p in pairs.values())


def test_hardware_outputs_link_each_case_to_its_runs_report_where_there_is_one(tmp_path, capsys):
    runs = [night(tmp_path, d, step_ms=ms, name=f"hw{d}") for d, ms in ((1, 100.0), (2, 50.0))]
    with_report_and_trace(runs[1])
    result = json.loads(compare(capsys, "--hardware", *runs, "--format", "json")[1])
    links = {(c["run_index"], c["case_id"]): c.get("links") for c in result["cases"]}
    report = RunFolder(runs[1]).report_path
    assert links == {
        (0, CASES[0]): None,
        (0, CASES[1]): None,
        (1, CASES[0]): {
            "report": f"{report}#{case_anchor(CASES[0])}",
            "traces": str(RunFolder(runs[1]).profile_dir(CASES[0])),
        },
        (1, CASES[1]): {"report": f"{report}#{case_anchor(CASES[1])}"},
    }
    md = compare(capsys, "--hardware", *runs, "--format", "markdown")[1]
    row = next(line for line in md.splitlines() if line.startswith(f"| {CASES[0]}"))
    assert re.search(rf"\| \[[\d.,]+\]\(<{re.escape(str(report))}#{case_anchor(CASES[0])}>\) \|", row)
    assert row.count("](") == 1  # the run without a report has no link


def test_the_hardware_outputs_warn_with_the_versions_when_software_differs_too(capsys):
    examples = Path(__file__).resolve().parents[2] / "examples" / "published-timm" / "timm-infer-amp-nchw"
    runs = [examples / name for name in ("rtx3090-pt240-cu124", "rtx4090-pt291-cu128", "rtx5090-pt291-cu130")]
    warning = (
        "Software differs as well as hardware, so every ratio mixes the two: NVIDIA GeForce RTX 3090: torch 2.4.0, "
        "CUDA 12.4; NVIDIA GeForce RTX 4090: torch 2.9.1, CUDA 12.8; NVIDIA GeForce RTX 5090: torch 2.9.1, CUDA 13.0."
    )
    assert json.loads(compare(capsys, "--hardware", *runs, "--format", "json")[1])["notes"][0] == warning
    md = compare(capsys, "--hardware", *runs, "--format", "markdown")[1]
    assert f"- {warning}" in md and "| [1] -> [2] | 31 | 1.40x |" in md
    text = " ".join(compare(capsys, "--hardware", *runs)[1].split())  # the console folds long lines
    assert f"note: {warning}" in text
