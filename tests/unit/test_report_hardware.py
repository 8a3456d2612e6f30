"""The hardware comparison page: its speedups and geometric means are the throughput ratios of the records, the
page is self-contained and escaped, and each section says what it holds (or that there is nothing)."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser

import pytest

from harness.errors import StoreError
from harness.regress import hardware_compare
from harness.report import build_hardware_page, write_hardware_report
from harness.report.hardware import short_names
from harness.store import read_runs
from tests.conftest import ROOT, run_cli
from tests.synthetic import FINGERPRINT, make_record, make_run

HOSTILE = "<script>alert(1)</script>"
#: Step time (ms) of each run relative to the reference: run 1 is about twice as fast, run 2 a third faster.
FACTORS = (1.0, 0.5, 0.75)
MODELS = {"resnet18": 8.0, "resnet34": 15.0, "resnet50": 30.0}


class Page(HTMLParser):
    """Tags, script bodies, visible text and tables (cells with their data-sort) as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self.tables: dict[str, list[dict]] = {}  # section id -> its tables: {"header": [...], "rows": [[(text, sort)]]}
        self._in_script = False
        self._section = ""
        self._cell: list | None = None
        self._in_head = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self._in_script = tag in ("script", "style")
        if tag == "script":
            self.scripts.append("")
        elif tag == "section":
            self._section = attrs.get("id", "")
        elif tag == "table":
            self.tables.setdefault(self._section, []).append({"header": [], "rows": []})
        elif tag in ("thead", "tfoot"):
            self._in_head = True  # the footer's "no rows for this filter" is no data row either
        elif tag == "tr" and not self._in_head:
            self.tables[self._section][-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = [attrs.get("data-sort"), ""]

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._in_script = False
        elif tag in ("thead", "tfoot"):
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            table = self.tables[self._section][-1]
            if tag == "th":
                table["header"].append(self._cell[1])
            elif not self._in_head:
                table["rows"][-1].append((self._cell[1], self._cell[0]))
            self._cell = None

    def handle_data(self, data):
        if self._in_script:
            if self.scripts and self.tags[-1][0] == "script":
                self.scripts[-1] += data
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell[1] += data

    def header(self, section: str, index: int = 0) -> list[str]:
        """The column headers of the section's ``index``-th table."""
        return self.tables[section][index]["header"]

    def rows(self, section: str, index: int = 0) -> list[dict[str, tuple[str, str | None]]]:
        """The body rows of the section's ``index``-th table, as {header: (text, data-sort)}."""
        table = self.tables[section][index]
        return [dict(zip(table["header"], r, strict=True)) for r in table["rows"] if r]


def fingerprint(device: str) -> dict:
    return {**FINGERPRINT, "device_name": device, "device_type": "cuda", "cuda": "12.4"}


def run_records(factor: float, telemetry: bool, extra: list[dict] | None = None) -> list[dict]:
    records = []
    for model, ms in MODELS.items():
        for mode in ("inference", "train"):
            for precision in ("fp32", "amp_bf16"):
                step = ms * factor * (3 if mode == "train" else 1) * (0.6 if precision == "amp_bf16" else 1)
                rec = make_record(model, mode, 32, precision, step_ms=step, seed=len(records))
                if telemetry:
                    rec["telemetry"] = {"power_avg_w": 250.0, "img_per_j": rec["throughput_img_s"] / 250.0}
                    rec["mfu"] = 0.1 / factor
                records.append(rec)
    return records + (extra or [])


@pytest.fixture
def three_runs(tmp_path):
    """Reference "GPU A", a hostile-named GPU about twice as fast, and "GPU C" (no telemetry) that also has a
    resnet101 case nobody else has and a resnet50 training case that ran out of memory."""
    only_c = make_record("resnet101", "inference", 32, "fp32", step_ms=50.0, seed=99)
    runs = [
        make_run(tmp_path, run_records(FACTORS[0], True), fingerprint=fingerprint("GPU A"), name="a"),
        make_run(tmp_path, run_records(FACTORS[1], True), fingerprint=fingerprint(HOSTILE), name="b"),
        make_run(tmp_path, run_records(FACTORS[2], False, [only_c]), fingerprint=fingerprint("GPU C"), name="c"),
    ]
    c = read_runs([runs[2]])[0]
    # The OOM replaces the measured resnet50 train fp32 case of run C.
    kept = [r for r in c.records if r["case_id"] != "resnet50/train/bs32/fp32"]
    kept.append(make_record("resnet50", "train", 32, "fp32", status="oom"))
    (runs[2] / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    return runs


def throughputs(run_dir) -> dict[str, float]:
    return {r["case_id"]: r["throughput_img_s"] for r in read_runs([run_dir])[0].records if r["status"] == "ok"}


def page_of(runs) -> tuple[str, Page]:
    text = build_hardware_page(hardware_compare(runs))
    return text, Page(text)


def plots_of(parsed: Page) -> dict:
    return json.loads(parsed.scripts[0])["plots"]


def test_speedup_bars_and_table_are_the_throughput_ratios(three_runs):
    text, parsed = page_of(three_runs)
    ref, fast = throughputs(three_runs[0]), throughputs(three_runs[1])
    speedup_plots = [p for p in plots_of(parsed).values() if p["layout"]["title"]["text"].startswith("Speedup over")]
    # One chart per mode and precision (memory format and resolution are the same everywhere here).
    assert len(speedup_plots) == 4
    checked = 0
    for plot in speedup_plots:
        title = plot["layout"]["title"]["text"]
        mode = "inference" if "inference" in title else "train"
        precision = "amp_bf16" if "amp_bf16" in title else "fp32"
        (bars,) = [t for t in plot["data"] if t.get("meta", {}).get("run") == 1]
        for model, y, label in zip(bars["x"], bars["y"], bars["text"], strict=True):
            case = f"{model}/{mode}/bs32/{precision}"
            assert y == pytest.approx(fast[case] / ref[case], rel=1e-5)  # the page keeps six digits
            assert label == f"{fast[case] / ref[case]:.2f}×"
            checked += 1
        reference_line = [t for t in plot["data"] if not t.get("meta")]
        assert [t["name"] for t in reference_line] == ["GPU A (torch 2.13.0) = 1.0"]
        assert plot["layout"]["shapes"][0]["y0"] == 1
    assert checked == 12
    # The throughput table has the exact ratio (its sort key) and each run's img/s.
    rows = {r["case"][0]: r for r in parsed.rows("throughput")}
    speed_col = [h for h in parsed.header("throughput") if h.startswith("×")][0]
    for case, tput in ref.items():
        row = rows[f"{case}/r224"]  # the comparison's case label always names the resolution
        assert float(row[speed_col][1]) == fast[case] / tput
        assert float(row["img/s GPU A (torch 2.13.0)"][1]) == tput


def test_geometric_mean_per_mode_and_precision(three_runs):
    _, parsed = page_of(three_runs)
    ref, slow = throughputs(three_runs[0]), throughputs(three_runs[2])
    names = [h for h in parsed.header("throughput") if h.startswith("img/s")]
    run_c = names[2].removeprefix("img/s ")
    table = parsed.rows("geomean")
    for mode in ("inference", "train"):
        for precision in ("fp32", "amp_bf16"):
            ratios = [
                slow[c] / ref[c] for c in ref if c in slow and c.split("/")[1] == mode and c.split("/")[3] == precision
            ]
            expected = math.exp(sum(map(math.log, ratios)) / len(ratios))
            (row,) = [r for r in table if (r["run"][0], r["mode"][0], r["precision"][0]) == (run_c, mode, precision)]
            assert float(row["geomean speedup"][1]) == pytest.approx(expected, rel=1e-12)
            # The OOM case has no speedup, so train fp32 of run C averages two cases, not three.
            assert row["cases"][0] == str(len(ratios)) == ("2" if (mode, precision) == ("train", "fp32") else "3")
    everything = [slow[c] / ref[c] for c in ref if c in slow]
    (row,) = [r for r in table if (r["run"][0], r["mode"][0]) == (run_c, "all")]
    assert float(row["geomean speedup"][1]) == pytest.approx(math.exp(sum(map(math.log, everything)) / 11))
    (chart,) = [p for p in plots_of(parsed).values() if p["layout"]["title"]["text"].startswith("Geometric")]
    (bars,) = [t for t in chart["data"] if t.get("meta", {}).get("run") == 2]
    assert bars["x"][0] == "all cases"
    assert bars["y"][0] == pytest.approx(math.exp(sum(map(math.log, everything)) / 11), rel=1e-5)


def test_page_is_self_contained_with_plotly_once(three_runs, tmp_path):
    from plotly.offline import get_plotlyjs

    out = write_hardware_report(hardware_compare(three_runs), tmp_path / "hw.html")
    text = out.read_text()
    assert text.count(get_plotlyjs()[:2000]) == 1 and text.count("<script") == 3
    parsed = Page(text)
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "action", "poster", "data"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, attrs)
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
    assert "url(" not in re.search(r"<style>(.*?)</style>", text, re.S).group(1)
    ids = {a["id"] for t, a in parsed.tags if t == "div" and "plot" in a.get("class", "")}
    assert ids == set(plots_of(parsed)) and len(ids) == 4 + 1 + 4 + 4  # speedups, geomean, throughput, img/J, MFU


def test_a_hostile_device_name_is_escaped_everywhere(three_runs):
    text, parsed = page_of(three_runs)
    assert HOSTILE not in text and "alert(1)</script>" not in text
    assert text.count("<script") == 3 and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    shown = "".join(parsed.text)
    assert f"Hardware comparison: GPU A vs {HOSTILE} vs GPU C" in shown  # the title, as text
    assert "<" not in parsed.scripts[0] and "&" not in parsed.scripts[0]
    # plotly renders a subset of HTML in names and hover text: there the name arrives escaped once more.
    names = {t.get("name") for p in plots_of(parsed).values() for t in p["data"]}
    assert "&lt;script&gt;alert(1)&lt;/script&gt; (torch 2.13.0)" in names and not any(
        "<script" in str(n) for n in names
    )


def test_runs_section_names_devices_versions_source_and_rule(three_runs, tmp_path):
    imported = tmp_path / "published"
    run = make_run(imported, run_records(0.4, False), fingerprint=fingerprint("GPU P"), name="p")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(source="timm benchmark.py", started_at=None, imported_at="2026-02-01T00:00:00Z")
    manifest["environment"]["torch"] = "2.9.1"
    (run / "manifest.json").write_text(json.dumps(manifest))
    records = [{**r, "samples_ms": None} for r in read_runs([run])[0].records]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text, parsed = page_of([three_runs[0], run])
    rows = parsed.rows("runs")
    assert [r["device"][0] for r in rows] == ["GPU A", "GPU P"]
    assert [r["torch"][0] for r in rows] == ["2.13.0", "2.9.1"] and rows[0]["CUDA"][0] == "12.4"
    assert rows[0]["source"][0] == "harness measurement"
    assert rows[1]["source"][0] == "published figures (timm benchmark.py), no samples"
    assert rows[0]["date (UTC)"][0] == "2026-01-01T00:00:00Z" and rows[1]["date (UTC)"][0].startswith(
        "imported 2026-02"
    )
    assert rows[0]["cases"][0] == rows[1]["cases"][0] == "12" and rows[1]["with a speedup"][0] == "12"
    assert "Matching rule: cases match on model, mode, batch_size, resolution, precision" in "".join(parsed.text)


def test_efficiency_side_by_side_and_no_telemetry_note(three_runs):
    _, parsed = page_of(three_runs)
    shown = "".join(parsed.text)
    assert "No images per joule (no NVML telemetry): GPU C" in shown
    row = {r["case"][0]: r for r in parsed.rows("efficiency")}["resnet18/inference/bs32/fp32/r224"]
    assert row["MFU GPU A (torch 2.13.0)"][0] == "10.00%" and row["img/J GPU A (torch 2.13.0)"][1] is not None
    assert "MFU GPU C (torch 2.13.0)" not in row  # no column for a run without MFU
    # ... and no row for a case that only such a run has.
    assert "resnet101/inference/bs32/fp32/r224" not in {r["case"][0] for r in parsed.rows("efficiency")}
    charts = [p for p in plots_of(parsed).values() if p["layout"]["title"]["text"].startswith(("Images per", "MFU"))]
    assert len(charts) == 4 and all(len([t for t in c["data"] if t.get("meta")]) == 2 for c in charts)
    # Without telemetry anywhere the section says so and draws nothing.
    _, bare = page_of([three_runs[2], three_runs[2]])
    assert "No telemetry" in "".join(bare.text) and "efficiency" not in bare.tables


def test_cases_on_only_some_runs_and_failures_are_listed(three_runs):
    _, parsed = page_of(three_runs)
    (row,) = parsed.rows("partial")
    assert row["case"][0] == "resnet101/inference/bs32/fp32/r224"
    assert row["on"][0] == "GPU C (torch 2.13.0)" and "GPU A" in row["not on"][0]
    (failed,) = parsed.rows("partial", 1)
    assert [failed[k][0] for k in ("case", "run", "status")] == [
        "resnet50/train/bs32/fp32/r224",
        "GPU C (torch 2.13.0)",
        "oom",
    ]
    _, same = page_of([three_runs[0], three_runs[1]])
    assert "Every case is on every run." in "".join(same.text)


def test_short_names_drop_shared_leading_words_but_keep_the_product_line():
    geforce = ["NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 4090"]
    labels = [f"{d} (torch 2.9.1)" for d in geforce]
    assert short_names(labels, geforce) == ["RTX 3090 (torch 2.9.1)", "RTX 4090 (torch 2.9.1)"]
    mixed = ["NVIDIA GeForce RTX 3090", "NVIDIA RTX PRO 6000"]
    assert short_names(mixed, mixed) == mixed
    # One device under two torch builds: the device name is what the reader needs, it stays.
    same = ["NVIDIA A100 (torch 2.4.0)", "NVIDIA A100 (torch 2.9.1)"]
    assert short_names(same, ["NVIDIA A100", "NVIDIA A100"]) == same


def test_an_unwritable_path_is_a_clear_error(three_runs, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="--html FILE"):
        write_hardware_report(hardware_compare(three_runs), blocker / "hw.html")
    with pytest.raises(Exception, match="HardwareComparison"):
        write_hardware_report(three_runs, tmp_path / "x.html")


def test_cli_writes_the_page(three_runs, tmp_path):
    out = tmp_path / "out" / "hw.html"
    done = run_cli("compare", "--hardware", str(three_runs[0]), str(three_runs[1]), "--html", str(out))
    assert done.returncode == 0, done.stderr
    assert out.is_file() and f"wrote {out}" in done.stderr
    assert "Hardware comparison: GPU A vs &lt;script&gt;" in out.read_text()


EXAMPLES = ROOT / "examples" / "published-timm" / "timm-infer-amp-nchw"
PUBLISHED = {  # AMP, NCHW, eager: the newest published file of each GPU
    "rtx3090-pt240-cu124": "benchmark-infer-amp-nchw-pt240-cu124-rtx3090.csv",
    "rtx4090-pt291-cu128": "benchmark-infer-amp-nchw-pt291-cu128-4090.csv",
    "rtx5090-pt291-cu130": "benchmark-infer-amp-nchw-pt291-cu130-5090.csv",
}


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/published-timm (harness import timm) not in this tree")
def test_published_3090_4090_5090_speedups_are_the_published_ratios():
    import csv

    def published(name: str) -> dict[str, float]:
        with open(EXAMPLES.parent / "csv" / PUBLISHED[name], newline="") as f:
            rows = csv.DictReader(f)
            return {r["model"]: float(r["infer_samples_per_sec"]) for r in rows if r["infer_img_size"] == "224"}

    runs = [EXAMPLES / name for name in PUBLISHED]
    _, parsed = page_of(runs)
    base = published("rtx3090-pt240-cu124")
    (plot,) = [p for p in plots_of(parsed).values() if p["layout"]["title"]["text"].endswith("NCHW · 224px")]
    for index, name in enumerate(list(PUBLISHED)[1:], start=1):
        mine = published(name)
        (bars,) = [t for t in plot["data"] if t.get("meta", {}).get("run") == index]
        assert sorted(bars["x"]) == sorted(base)
        for model, y in zip(bars["x"], bars["y"], strict=True):
            assert y == pytest.approx(mine[model] / base[model], rel=1e-5), (name, model)
        rows = {r["case"][0]: r for r in parsed.rows("throughput")}
        column = [h for h in parsed.header("throughput") if h.startswith("×")][index - 1]
        for model, tput in base.items():
            case = f"{model}/inference/bs1024/amp_fp16/r224"
            assert float(rows[case][column][1]) == pytest.approx(mine[model] / tput, rel=1e-12)
    sources = [r["source"][0] for r in parsed.rows("runs")]
    assert sources == ["published figures (timm benchmark.py), no samples"] * 3


def test_the_page_is_written_without_torch(three_runs, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "hw.html"
    code = (
        "import sys; from harness.regress import hardware_compare; from harness.report import write_hardware_report; "
        f"write_hardware_report(hardware_compare({[str(r) for r in three_runs]!r}), {str(out)!r}); "
        "print('torch' in sys.modules)"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False" and out.is_file()


def test_runs_without_cases_render_with_notes(tmp_path):
    empty = [make_run(tmp_path, [], name=name, fingerprint=fingerprint(name)) for name in ("GPU A", "GPU B")]
    text, parsed = page_of(empty)
    shown = "".join(parsed.text)
    assert "Hardware comparison: GPU A vs GPU B" in shown and "no speedup to show" in shown
    assert "These runs hold no cases." in shown and "No telemetry" in shown and plots_of(parsed) == {}


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="examples/published-timm (harness import timm) not in this tree")
def test_a_measured_run_against_a_published_one_through_the_cli(tmp_path):
    # Mixed sources match without batch size (harness.importers.match): both measured batch sizes of resnet50
    # are held against the published batch of 1024, and keep their own bars.
    measured = make_run(
        tmp_path,
        [make_record("resnet50", "inference", bs, "amp_fp16", step_ms=bs * 2.0, seed=bs) for bs in (8, 32)],
        fingerprint=fingerprint("GPU M"),
        name="m",
    )
    published = EXAMPLES / "rtx3090-pt240-cu124"
    out = tmp_path / "mixed.html"
    done = run_cli("compare", "--hardware", str(measured), str(published), "--html", str(out))
    assert done.returncode == 0, done.stderr
    parsed = Page(out.read_text())
    (plot,) = [p for p in plots_of(parsed).values() if p["layout"]["title"]["text"].startswith("Speedup")]
    (bars,) = [t for t in plot["data"] if t.get("meta", {}).get("run") == 1]
    mine = throughputs(measured)
    records = read_runs([published])[0].records
    (theirs,) = [r["throughput_img_s"] for r in records if r["model"] == "resnet50" and r["resolution"] == 224]
    assert bars["x"] == ["resnet50 bs8", "resnet50 bs32"]
    for bs, y in zip((8, 32), bars["y"], strict=True):
        assert y == pytest.approx(theirs / mine[f"resnet50/inference/bs{bs}/amp_fp16"], rel=1e-5)
    sources = [r["source"][0] for r in parsed.rows("runs")]
    assert sources == ["harness measurement", "published figures (timm benchmark.py), no samples"]
    assert "batch size is not matched" in "".join(parsed.text)


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def test_every_pair_of_runs_has_its_ratio_at_a_glance_and_per_case(three_runs):
    _, parsed = page_of(three_runs)
    tput = [throughputs(run) for run in three_runs]
    names = [f"{d} (torch 2.13.0)" for d in ("GPU A", HOSTILE, "GPU C")]
    rows = parsed.rows("glance")
    assert [r["runs (before → after)"][0] for r in rows] == [
        f"{names[a]} → {names[b]}" for a, b in ((0, 1), (0, 2), (1, 2))
    ]
    for row, (a, b) in zip(rows, ((0, 1), (0, 2), (1, 2)), strict=True):
        ratios = [tput[b][case] / tput[a][case] for case in tput[a] if case in tput[b]]
        assert int(row["cases"][0]) == len(ratios) == (12 if a == 0 and b == 1 else 11)
        assert float(row["geometric mean"][1]) == pytest.approx(geomean(ratios), rel=1e-12)
        assert float(row["min"][1]) == pytest.approx(min(ratios)) and float(row["max"][1]) == pytest.approx(max(ratios))
    # B is about twice as fast as A and C a third faster, so C over B is about 2/3.
    assert [row["geometric mean"][0] for row in rows] == ["2.00×", "1.33×", "0.67×"]
    header = parsed.header("throughput")
    pairs = [h for h in header if h.startswith("×")]
    assert pairs == [f"× {names[a]} → {names[b]}" for a, b in ((0, 1), (0, 2), (1, 2))]
    for row in parsed.rows("throughput"):
        case = row["case"][0].removesuffix("/r224")  # the label names the resolution, the case id does not
        if case in tput[1] and case in tput[2]:
            assert float(row[pairs[2]][1]) == pytest.approx(tput[2][case] / tput[1][case], rel=1e-12)
        else:
            assert row[pairs[2]] == ("", None)  # the OOM case and the case only C has: no ratio


def test_absolute_throughput_bars_are_the_records_throughputs(three_runs):
    _, parsed = page_of(three_runs)
    tput = [throughputs(run) for run in three_runs]
    charts = [p for p in plots_of(parsed).values() if p["layout"]["title"]["text"].startswith("Throughput, ")]
    titles = sorted(p["layout"]["title"]["text"] for p in charts)
    assert titles == sorted(f"Throughput, {m} · {p}" for m in ("inference", "train") for p in ("fp32", "amp_bf16"))
    seen = 0
    for plot in charts:
        _, group = plot["layout"]["title"]["text"].split(", ", 1)
        mode, precision = group.split(" · ")
        assert [t["meta"]["run"] for t in plot["data"]] == [0, 1, 2]  # every run, the reference too
        for trace in plot["data"]:
            run = trace["meta"]["run"]
            for model, y in zip(trace["x"], trace["y"], strict=True):
                assert y == pytest.approx(tput[run][f"{model}/{mode}/bs32/{precision}"], rel=1e-5)
                seen += 1
    assert seen == 12 * 3 - 1 + 1  # the OOM case has no bar; resnet101 on C has one


def versioned(tmp_path, device: str, torch: str, cuda: str, name: str, factor: float = 1.0):
    return make_run(
        tmp_path,
        run_records(factor, False),
        fingerprint={**fingerprint(device), "torch": torch, "cuda": cuda},
        name=name,
    )


def test_a_warning_names_the_versions_when_software_differs_as_well_as_hardware(tmp_path):
    runs = [
        versioned(tmp_path, "GPU A", "2.4.0", "12.4", "a"),
        versioned(tmp_path, "GPU B", "2.9.1", "12.8", "b", 0.5),
        versioned(tmp_path, "GPU C", "2.9.1", "13.0", "c", 0.4),
    ]
    _, parsed = page_of(runs)
    warning = [t for t in parsed.text if t.startswith("Software differs as well as hardware")]
    assert warning == [
        "Software differs as well as hardware, so every ratio mixes the two: GPU A: torch 2.4.0, CUDA 12.4; "
        "GPU B: torch 2.9.1, CUDA 12.8; GPU C: torch 2.9.1, CUDA 13.0."
    ]
    changes = [r["software change"][0] for r in parsed.rows("glance")]
    assert changes == ["torch 2.4.0→2.9.1, CUDA 12.4→12.8", "torch 2.4.0→2.9.1, CUDA 12.4→13.0", "CUDA 12.8→13.0"]


def test_no_software_warning_for_one_software_stack_or_one_device(tmp_path):
    same = [versioned(tmp_path, "GPU A", "2.9.1", "12.8", "a"), versioned(tmp_path, "GPU B", "2.9.1", "12.8", "b")]
    one_device = [
        versioned(tmp_path, "GPU A", "2.4.0", "12.4", "c"),
        versioned(tmp_path, "GPU A", "2.9.1", "12.8", "d"),
    ]
    for runs in (same, one_device):
        text, parsed = page_of(runs)
        assert "Software differs" not in text
        assert not any(n.startswith("Software differs") for n in hardware_compare(runs).notes)
    assert parsed.rows("glance")[0]["software change"][0] == "torch 2.4.0→2.9.1, CUDA 12.4→12.8"
