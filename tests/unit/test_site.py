"""``harness site``: what the index says about a crafted nightly history (an open regression, a recovered one, a
regression of the latest night, as ``harness compare`` judges it), what a second build rewrites and what it leaves
alone, and the one-line errors on bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from harness.regress import compare
from harness.site import build_site
from harness.site.build import group_key
from harness.store.loader import read_run
from harness.store.rundir import append_record
from tests.conftest import run_cli
from tests.synthetic import FINGERPRINT, make_record, make_run

CASES = [
    ("resnet18", "inference", 8, "fp32"),
    ("resnet18", "inference", 32, "fp32"),
    ("resnet50", "inference", 8, "fp32"),
    ("resnet50", "train", 8, "fp32"),
    ("resnet50", "inference", 32, "amp_bf16"),
]
OPEN = "resnet18/inference/bs8/fp32"  # 30% slower from night 5 on, never back
RECOVERED = "resnet18/inference/bs32/fp32"  # 25% slower on nights 3 to 6, back on night 7
TONIGHT = "resnet50/train/bs8/fp32"  # 40% slower on the latest night only
MARKED = "resnet50/inference/bs8/fp32"  # out of memory on night 2, measured under noise on night 9


TREND = f"trends/{group_key('synthetic', 'Synthetic CPU')}.html"
OTHER_TREND = f"trends/{group_key('synthetic', 'Other CPU')}.html"


def night_records(night: int, nights: int, case_ids: list[str]) -> list[dict]:
    records = []
    for i, (model, mode, bs, precision) in enumerate(CASES):
        ms = 10.0 + bs + 3 * i
        cid = case_ids[i]
        if cid == OPEN and night >= 5:
            ms *= 1.0 / 0.7
        if cid == RECOVERED and 3 <= night <= 6:
            ms *= 1.0 / 0.75
        if cid == TONIGHT and night == nights - 1:
            ms *= 1.0 / 0.6
        extra = {}
        if cid == MARKED and night == 2:
            extra["status"] = "oom"
        if cid == MARKED and night == 9:
            extra["noisy"] = ["other processes used 40% of the cores"]
        records.append(make_record(model, mode, bs, precision, False, step_ms=ms, seed=night * 100 + i, **extra))
    return records


def nightly_history(root: Path, nights: int = 12, device: str = "Synthetic CPU", start: int = 0) -> list[Path]:
    """``nights`` runs of suite ``synthetic`` on ``device`` under ``root`` (one a day from 2026-01-01 + start)."""
    from tests.synthetic import case_id

    ids = [case_id(m, mo, bs, p, False) for m, mo, bs, p in CASES]
    fingerprint = {**FINGERPRINT, "device_name": device, "cpu_model": device}
    paths = []
    for night in range(start, start + nights):
        paths.append(
            make_run(
                root,
                night_records(night, start + nights, ids),
                started_at=f"2026-01-{night + 1:02d}T02:00:00Z",
                fingerprint=fingerprint,
                name=f"{device.replace(' ', '-')}-night{night:02d}",
            )
        )
    return paths


def section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert match, f"no section {name}"
    return match.group(1)


def files(out: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


@pytest.fixture
def history(tmp_path):
    results = tmp_path / "results"
    paths = nightly_history(results, 12)
    nightly_history(results, 4, device="Other CPU")
    return results, paths


def test_index_lists_open_recovered_and_latest_regressions(history, tmp_path):
    results, paths = history
    done = build_site(results, tmp_path / "site")
    html = (tmp_path / "site" / "index.html").read_text()
    assert len(done.written) == 16 and not done.skips
    open_ = section(html, "open")
    assert OPEN in open_ and RECOVERED not in open_
    # It started on the night of 2026-01-06 (night 5), about 30% down, and links to that night's report at the case.
    assert "2026-01-06" in open_ and 27 < float(re.search(r"\u2212(\d+\.\d)%", open_)[1]) < 33
    assert re.search(r'href="runs/[^"]*night05/report.html#case-resnet18_inference_bs8_fp32"', open_)
    recovered = section(html, "recovered")
    assert RECOVERED in recovered and OPEN not in recovered
    assert "2026-01-04" in recovered and "2026-01-08" in recovered
    # The latest night's regressions are harness compare's on the same runs: the night against the 5 before it.
    verdict = compare([read_run(p) for p in paths[-6:-1]], read_run(paths[-1]))
    expected = {c.case["case_id"] for c in verdict.regressed + verdict.newly_failing}
    assert expected == {TONIGHT}
    tonight = section(html, "tonight")
    assert set(re.findall(r"<tr>\s*<td>([^<]*)</td><td>synthetic</td><td>Synthetic CPU</td>", tonight)) == expected
    # One row per suite and device, each with its latest night's report and its trend page.
    rows = re.findall(r'<tr data-suite="synthetic" data-device="([^"]+)">', html)
    assert rows == ["Other CPU", "Synthetic CPU"]
    for href in re.findall(r'href="((?:runs|trends)/[^"#]+)"', html):
        assert (tmp_path / "site" / href).is_file(), href
    # Every report loads the site's one plotly.js instead of inlining its own copy.
    report = next((tmp_path / "site" / "runs").glob("*/report.html"))
    assert '<script src="../../plotly.js"></script>' in report.read_text()
    assert (tmp_path / "site" / "plotly.js").stat().st_size > 1_000_000
    assert report.stat().st_size < 1_000_000


def test_trend_page_carries_each_case_series_and_steps(history, tmp_path):
    results, _ = history
    build_site(results, tmp_path / "site")
    page = (tmp_path / "site" / TREND).read_text()
    data = json.loads(re.search(r'<script type="application/json" id="site-data">(.*?)</script>', page, re.S)[1])
    assert len(data["nights"]) == 12 and len(data["cases"]) == 5
    # The case with an open regression comes first in the chooser.
    assert data["cases"][0]["id"] == OPEN and data["cases"][0]["open"] < -0.25
    steps = {c["id"]: c["steps"] for c in data["cases"]}
    assert [(s["index"], s["recovered_at"]) for s in steps[OPEN]] == [(5, None)]
    assert [s["index"] for s in steps[RECOVERED]][:2] == [3, 7] and steps[RECOVERED][0]["recovered_at"] == 7
    assert all(len(c["y"]) == 12 for c in data["cases"])
    marked = next(c for c in data["cases"] if c["id"] == MARKED)
    assert marked["failed"] == [2] and marked["noisy"] == [9] and marked["y"][2] is None
    assert not any("failed" in c or "noisy" in c for c in data["cases"] if c["id"] != MARKED)
    assert '<script src="../plotly.js"></script>' in page


def test_a_new_night_adds_its_report_and_leaves_the_old_ones_alone(history, tmp_path):
    results, _ = history
    out = tmp_path / "site"
    build_site(results, out)
    before = files(out)
    new = nightly_history(results, 1, start=12)[0]
    done = build_site(results, out)
    after = files(out)
    assert done.written == [str(new)] and done.kept == 16 and not done.removed
    assert done.trends_written == [TREND]
    added = set(after) - set(before)
    assert added == {f"runs/synthetic--{new.name}/report.html"}
    for name, (content, mtime) in before.items():
        if name.startswith("runs/") or name in ("plotly.js", OTHER_TREND):
            assert after[name] == (content, mtime), f"{name} was rewritten"
    for name in ("index.html", TREND, "site-state.json"):
        assert after[name][0] != before[name][0], f"{name} was not updated"
    assert "13</td>" in (out / "index.html").read_text()
    # A third build with nothing new rewrites no report and no trend page.
    again = build_site(results, out)
    assert not again.written and not again.trends_written and again.kept == 17


def test_a_changed_run_is_rebuilt_and_a_removed_one_removed(history, tmp_path):
    results, paths = history
    out = tmp_path / "site"
    build_site(results, out)
    append_record(paths[3] / "records-rank0.jsonl", make_record("resnet101", seed=7))
    (paths[3] / "records.jsonl").unlink()
    shutil.rmtree(paths[4])
    done = build_site(results, out)
    assert done.written == [str(paths[3])] and done.removed == [str(paths[4].resolve())]
    assert "resnet101" in (out / "runs" / f"synthetic--{paths[3].name}" / "report.html").read_text()
    assert not (out / "runs" / f"synthetic--{paths[4].name}").exists()
    assert paths[4].name not in (out / TREND).read_text()
    assert done.trends_written == [TREND]


def test_an_unreadable_run_is_skipped_and_named_on_the_index(history, tmp_path):
    results, paths = history
    (paths[2] / "manifest.json").write_text("{not json")
    done = run_cli("site", str(results), "-o", str(tmp_path / "site"))
    assert done.returncode == 5, done.stderr
    assert str(paths[2]) in done.stderr
    html = (tmp_path / "site" / "index.html").read_text()
    assert str(paths[2]) in section(html, "skipped")
    assert len(list((tmp_path / "site" / "runs").iterdir())) == 15


@pytest.mark.parametrize("case", ["missing", "empty", "file", "unwritable", "only-broken"])
def test_bad_input_is_one_line_and_exit_2(case, tmp_path):
    results, out = tmp_path / "results", tmp_path / "site"
    expect = {"missing": "does not exist", "empty": "holds no runs", "file": "is not a folder"}
    if case in ("empty", "unwritable", "only-broken"):
        results.mkdir()
    if case == "file":
        results.write_text("x")
    if case == "unwritable":
        make_run(results, [make_record()])
        (tmp_path / "blocker").write_text("a file, not a folder")
        out = tmp_path / "blocker" / "site"
        expect[case] = "cannot write the site to"
    if case == "only-broken":
        (results / "run").mkdir()
        (results / "run" / "manifest.json").write_text("[]")
        expect[case] = "could be read"
    done = run_cli("site", str(results), "-o", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness site: error: ") and expect[case] in lines[0], lines
    assert "Traceback" not in done.stderr


def test_pairs_whose_names_make_the_same_file_name_get_trend_pages_of_their_own(tmp_path):
    results = tmp_path / "results"
    nightly_history(results, 2, device="CPU a b")
    nightly_history(results, 2, device="CPU a_b")
    done = build_site(results, tmp_path / "site")
    assert len(done.trends_written) == 2 and len(set(done.trends_written)) == 2
    for device in ("CPU a b", "CPU a_b"):
        page = (tmp_path / "site" / f"trends/{group_key('synthetic', device)}.html").read_text()
        data = json.loads(re.search(r'<script type="application/json" id="site-data">(.*?)</script>', page, re.S)[1])
        reports = [n["r"] for n in data["nights"]]
        assert len(reports) == 2 and all(device.replace(" ", "-") + "-night" in r for r in reports), reports


def test_a_second_build_of_the_same_folder_at_once_is_refused(history, tmp_path):
    import fcntl

    results, _ = history
    out = tmp_path / "site"
    out.mkdir()
    with open(out / ".site.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = run_cli("site", str(results), "-o", str(out))
    assert done.returncode == 2 and "another harness site is building" in done.stderr
    assert not (out / "index.html").exists()
    assert build_site(results, out).written  # the lock is gone with its holder
