"""The HTML report: the right numbers in the right charts and tables, a self-contained and escaped page, and
bad input rendered as far as it can be (or a clear error)."""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.errors import StoreError
from harness.report import accuracy as acc
from harness.report import efficiency as eff
from harness.report import figures as figs
from harness.report import write_report
from harness.report.data import prepare
from harness.report.page import build_report, read_inputs, script_json
from harness.store import read_runs
from harness.zoo.catalog import get_entry
from tests.conftest import ROOT, run_cli
from tests.synthetic import make_record, make_run

XSS = "<img src=x onerror=alert(1)>"


def data_of(*paths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs, notes = read_inputs(paths)
    return prepare(runs, notes)


def ok_frame(*paths):
    return data_of(*paths).ok


def trace_named(fig, name):
    matches = [t for t in fig.data if t.name == name]
    assert len(matches) == 1, [t.name for t in fig.data]
    return matches[0]


class Page(HTMLParser):
    """Tags, attributes, script bodies and visible text of a page, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag in ("script", "style")
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            if self.scripts and self.tags[-1][0] == "script":
                self.scripts[-1] += data
        else:
            self.text.append(data)


@pytest.fixture
def matrix_run(tmp_path):
    """resnet18/34/50, inference, bs 8 and 32, fp32 and amp_bf16, NCHW and channels_last, plus one OOM."""
    step = {"resnet18": 10.0, "resnet34": 20.0, "resnet50": 40.0}
    records = []
    for model, base in step.items():
        for bs in (8, 32):
            for precision in ("fp32", "amp_bf16"):
                for cl in (False, True):
                    ms = base * bs / 32 * (0.5 if precision == "amp_bf16" else 1) * (0.8 if cl else 1)
                    records.append(make_record(model, "inference", bs, precision, cl, step_ms=ms, seed=len(records)))
    records.append(make_record("resnet101", "train", 256, "fp32", status="oom"))
    return make_run(tmp_path, records, suite="matrix")


def record_of(run, case_id):
    (rec,) = [r for r in read_runs([run])[0].records if r["case_id"] == case_id]
    return rec


# -- figures -----------------------------------------------------------------------------------------------------
def test_throughput_bar_equals_the_records_throughput_with_its_interval(matrix_run):
    fig = figs.throughput_bars(ok_frame(matrix_run), "inference")
    rec = record_of(matrix_run, "resnet50/inference/bs32/fp32")
    bar = trace_named(fig, "fp32 · NCHW")
    i = list(bar.x).index("resnet50 bs32")
    assert bar.y[i] == rec["throughput_img_s"]
    low, high = rec["throughput_ci95"]
    assert bar.error_y.array[i] == pytest.approx(high - rec["throughput_img_s"])
    assert bar.error_y.arrayminus[i] == pytest.approx(rec["throughput_img_s"] - low)
    # Filter metadata travels with every point, so the page can drop points of other models.
    assert bar.meta["pk"]["model"][i] == "resnet50" and bar.meta["fk"] == {"mode": "inference", "precision": "fp32"}
    assert figs.throughput_bars(ok_frame(matrix_run), "train") is None


def test_amp_and_channels_last_speedup_cells_are_throughput_ratios(matrix_run):
    ok = ok_frame(matrix_run)
    amp = record_of(matrix_run, "resnet34/inference/bs8/amp_bf16")["throughput_img_s"]
    fp32 = record_of(matrix_run, "resnet34/inference/bs8/fp32")["throughput_img_s"]
    heat = figs.amp_speedup(ok, "inference").data[0]
    assert list(heat.x) == ["amp_bf16 bs8", "amp_bf16 bs32"]
    # The colour is log2 of the ratio on a fixed range; the label is the ratio.
    assert heat.z[list(heat.y).index("resnet34")][0] == pytest.approx(math.log2(amp / fp32))
    assert heat.text[list(heat.y).index("resnet34")][0] == f"{amp / fp32:.2f}×"
    assert (heat.zmin, heat.zmax) == (-2.0, 2.0)
    assert "resnet34 · channels_last" in heat.y
    # The filter keeps an AMP column for either of its precisions, and drops rows of other models.
    assert heat.meta["ck"]["precision"] == [["amp_bf16", "fp32"]] * 2 and heat.meta["rk"]["model"][0] == "resnet18"
    cl = record_of(matrix_run, "resnet18/inference/bs32/fp32/cl")["throughput_img_s"]
    nchw = record_of(matrix_run, "resnet18/inference/bs32/fp32")["throughput_img_s"]
    heat = figs.channels_last_speedup(ok, "inference").data[0]
    assert list(heat.x) == ["fp32 bs8", "fp32 bs32", "amp_bf16 bs8", "amp_bf16 bs32"]
    assert heat.z[list(heat.y).index("resnet18")][1] == pytest.approx(math.log2(cl / nchw))
    assert figs.amp_speedup(ok, "train") is None


NOISE = "2 stalled steps (> 3x the median 300 ms): 603 ms, 10878 ms"


def test_a_noisy_case_is_marked_with_its_reason_and_does_not_set_the_heatmap_colours(tmp_path):
    records = [
        make_record("resnet18", "inference", 8, "fp32", step_ms=10.0, seed=1),
        # One noisy cell reading 20x: the colour range stays fixed, the cell is marked and says why.
        make_record(
            "resnet18", "inference", 8, "amp_bf16", step_ms=0.5, seed=2, noisy=[NOISE], throughput_total_img_s=8000.0
        ),
        make_record("resnet34", "inference", 8, "fp32", step_ms=20.0, seed=3),
        make_record("resnet34", "inference", 8, "amp_bf16", step_ms=16.0, seed=4),
    ]
    run = make_run(tmp_path, records, suite="noisy")
    data = data_of(run)
    ok = data.ok
    assert ok.set_index("case_id")["noisy"].to_dict() == {
        "resnet18/inference/bs8/fp32": False,
        "resnet18/inference/bs8/amp_bf16": True,
        "resnet34/inference/bs8/fp32": False,
        "resnet34/inference/bs8/amp_bf16": False,
    }
    heat = figs.amp_speedup(ok, "inference").data[0]
    noisy_row, quiet_row = list(heat.y).index("resnet18"), list(heat.y).index("resnet34")
    assert (heat.zmin, heat.zmax) == (-2.0, 2.0) and heat.z[noisy_row][0] == pytest.approx(math.log2(20), rel=0.05)
    assert heat.text[noisy_row][0].endswith(" ⚠") and not heat.text[quiet_row][0].endswith("⚠")
    reason = html.escape(NOISE, quote=False)
    assert f"⚠ noisy: resnet18/inference/bs8/amp_bf16: {reason}" in heat.customdata[noisy_row][0]
    bars = trace_named(figs.throughput_bars(ok, "inference"), "amp_bf16 · NCHW")
    assert list(bars.text) == ["⚠", ""] and "⚠ noisy: 2 stalled steps" in bars.hovertext[0]
    assert "over the total time: 8,000 img/s" in bars.hovertext[0]
    # The images-over-total-time figure is in the hover where stalls moved it away from the median step's.
    assert "over the total time" not in bars.hovertext[1]
    assert trace_named(figs.throughput_bars(ok, "inference"), "fp32 · NCHW").text is None
    # The throughput table marks the figure and gives the reason; the headline table marks the figure.
    page, _ = build_report([run])
    assert f"⚠ {NOISE}" in html.unescape(page) and "1 case(s) measured under noise" in page
    assert "images per second of the median step" in page


def test_pareto_front_holds_exactly_the_undominated_models(tmp_path):
    # resnet34 is slower than resnet50 and states a lower acc@1: dominated. resnet18 is fastest; resnet50 most
    # accurate of the three; resnet101 more accurate still but slowest.
    speeds = {"resnet18": 5.0, "resnet34": 40.0, "resnet50": 30.0, "resnet101": 60.0}
    run = make_run(tmp_path, [make_record(m, step_ms=ms, seed=i) for i, (m, ms) in enumerate(speeds.items())])
    points = acc.accuracy_points(ok_frame(run))
    assert set(points.loc[points["front"], "model"]) == {"resnet18", "resnet50", "resnet101"}
    fig = acc.accuracy_figure(ok_frame(run), "inference")
    (front,) = [t for t in fig.data if (t.meta or {}).get("role") == "front"]
    assert sorted(front.meta["pk"]["model"]) == ["resnet101", "resnet18", "resnet50"]
    resnet50 = points.set_index("model").loc["resnet50"]
    assert resnet50["acc1"] == get_entry("resnet50").best_weights.acc1
    assert "best stated entry" in resnet50["weights_note"] and "IMAGENET1K_V2" in resnet50["weights_note"]


def test_stated_accuracy_follows_the_weights_tag():
    assert acc.stated_accuracy("resnet50", "V1")[0] == get_entry("resnet50").weights_entry("V1").acc1
    assert acc.stated_accuracy("resnet50", "IMAGENET1K_V2")[1] == "IMAGENET1K_V2"
    assert acc.stated_accuracy("resnet50", "/w/resnet50-0676ba61.pth")[0] == 76.130
    assert acc.stated_accuracy("resnet50", "/w/mine.pth") is None
    assert acc.stated_accuracy("not_a_model", None) is None


def test_measured_accuracy_is_shown_against_stated(tmp_path):
    run = make_run(tmp_path, [make_record("resnet18", weights="V1", accuracy={"acc1": 0.6931, "acc5": 0.89})])
    rows = acc.measured_accuracy(data_of(run).snapshot)
    assert rows["measured"].iloc[0] == pytest.approx(69.31) and rows["stated"].iloc[0] == 69.758
    page, _ = build_report([run])
    assert "Measured accuracy" in page and "69.31" in page


def test_ops_deviation_is_in_the_chart_and_the_table(tmp_path):
    rec = make_record("resnet50")
    rec.update(macs_per_img=4.2e9, stated_gmacs=4.0, ops_deviation=0.05)
    run = make_run(tmp_path, [rec])
    fig = eff.ops_figure(ok_frame(run))
    measured, stated = fig.data
    assert measured.y == (4.2,) and stated.y == (4.0,) and measured.text == ("+5.00%",)
    page, _ = build_report([run])
    assert re.search(r'<td class="num warn" data-sort="0.05">\+5.00%</td>', page)


def test_lines_name_each_line_or_explain_the_encoding_when_there_are_many(matrix_run, tmp_path):
    fig = figs.throughput_lines(ok_frame(matrix_run), "inference")
    assert len(fig.data) == 12 and all(t.showlegend is not False for t in fig.data)
    assert fig.data[0].name == "resnet18 · fp32 · NCHW" and list(fig.data[0].x) == [8, 32]
    models = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    records = [
        make_record(m, "inference", bs, p, cl, seed=bs)
        for m in models
        for bs in (8, 32)
        for p in ("fp32", "amp_fp16")
        for cl in (False, True)
    ]
    fig = figs.throughput_lines(ok_frame(make_run(tmp_path, records)), "inference")
    lines = [t for t in fig.data if t.meta]
    assert len(lines) == 20 and all(t.showlegend is False for t in lines)
    assert [t.name for t in fig.data if not t.meta] == [*models, "fp32", "amp_fp16", "NCHW", "channels_last"]


def test_memory_uses_cuda_allocation_when_present_else_rss(tmp_path):
    cuda = make_record("resnet18", batch_size=8, peak_allocated_mib=1234.0, device="cuda")
    cpu = make_record("resnet18", batch_size=16)
    run = make_run(tmp_path, [cuda, cpu])
    fig = figs.memory_lines(ok_frame(run), "inference")
    (line,) = fig.data
    assert line.type == "scatter"
    assert list(line.x) == [8, 16] and list(line.y) == [1234.0, cpu["rss_peak_mib"]]
    assert "peak allocated (CUDA)" in fig.layout.yaxis.title.text and "peak RSS (CPU)" in fig.layout.yaxis.title.text


def test_one_batch_size_draws_bars_not_lines(tmp_path):
    run = make_run(tmp_path, [make_record("resnet18", batch_size=2, resolution=r, seed=r) for r in (64, 32)])
    ok = ok_frame(run)
    assert figs.throughput_lines(ok, "inference") is None
    bars = figs.memory_lines(ok, "inference")
    assert bars.data[0].type == "bar" and list(bars.data[0].x) == ["resnet18 bs2 32px", "resnet18 bs2 64px"]


def test_telemetry_charts_and_throttle_flag(tmp_path):
    plain = make_run(tmp_path / "a", [make_record()])
    assert "No telemetry" in build_report([plain])[0]
    rec = make_record("resnet50")
    rec["telemetry"] = {
        "power_avg_w": 200.0,
        "power_max_w": 250.0,
        "img_per_j": 3.5,
        "throttle_reasons": ["hw_slowdown"],
    }
    run = make_run(tmp_path / "b", [rec])
    fig = eff.img_per_joule_bars(ok_frame(run), "inference")
    assert fig.data[0].y == (3.5,)
    power = eff.power_bars(ok_frame(run), "inference").data[0]
    assert power.y == (200.0,) and power.error_y.array == (50.0,)
    assert '<td class="warn" data-sort="hw_slowdown">hw_slowdown</td>' in build_report([run])[0]


def test_trends_draw_each_case_across_runs_and_mark_steps(tmp_path, monkeypatch):
    runs = [
        make_run(tmp_path, [make_record(step_ms=ms, seed=i)], started_at=f"2026-01-0{i + 1}T00:00:00Z")
        for i, ms in enumerate([100, 100, 100, 150, 150])
    ]
    data = data_of(*runs)
    from harness.report import trends

    monkeypatch.setattr(trends, "step_detector", lambda: None)
    ((title, rows),) = trends.trend_groups(data.frame)
    fig = trends.trend_figure(rows, title)
    (line,) = fig.data
    assert line.name == "resnet50/inference/bs32/fp32/r224" and len(line.x) == 5 and line.x[0].startswith("2026-01-01")
    monkeypatch.setattr(trends, "step_detector", lambda: lambda series, threshold: [3] if threshold == 0.05 else [])
    fig = trends.trend_figure(rows, title)
    assert fig.data[-1].name == "detected step" and fig.data[-1].x == (line.x[3],)
    # The regress module's Step objects carry the change and the recovery; the hover says both.
    step = SimpleNamespace(index=3, before=320.0, after=213.0, change=-0.334, recovered_at=None)
    monkeypatch.setattr(trends, "step_detector", lambda: lambda series, threshold: [step])
    fig = trends.trend_figure(rows, title)
    assert fig.data[-1].x == (line.x[3],) and fig.data[-1].hovertext[0].startswith("step -33.4%: resnet50")
    # One run alone has no trend.
    assert trends.trend_groups(data_of(runs[0]).frame) == []


def test_trends_of_many_cases_draw_one_case_at_a_time_through_a_chooser(tmp_path):
    from harness.report import trends

    def night(day):
        return [
            make_record(m, mode, bs, p, seed=bs + day, step_ms=150.0 if (day, m, bs) == (3, "resnet34", 4) else 100.0)
            for m in ("resnet18", "resnet34", "resnet50")
            for mode in ("inference", "train")
            for bs in (1, 2, 4, 8, 16, 32, 64)
            for p in ("fp32", "amp_bf16")
        ]

    runs = [make_run(tmp_path, night(d), started_at=f"2026-01-0{d}T00:00:00Z") for d in (1, 2, 3)]
    ((title, rows),) = trends.trend_groups(data_of(*runs).frame)
    fig = trends.trend_figure(rows, title)
    assert len(rows["case_id"].unique()) == 84 > trends.MAX_TRACES
    assert len(fig.data) == 84 and all(len(t.x) == 3 for t in fig.data)  # one trace per case, every run
    choices, chosen = trends.chooser(fig)
    # Too many cases to draw at once: no "every case" choice; the chart opens on the case that moved most.
    assert [v for v, _ in choices] == [t.meta["case"] for t in fig.data] and "*" not in dict(choices)
    assert chosen.startswith("resnet34/") and "/bs4/" in chosen
    line = [t for t in fig.data if t.meta["case"] == "resnet34/train/bs1/amp_bf16/r224"][0]
    assert line.y[0] == record_of(runs[0], "resnet34/train/bs1/amp_bf16")["throughput_img_s"]
    assert fig.layout.showlegend  # one case drawn: its line (and any step rings) in the legend


def test_the_latest_run_is_what_the_per_case_sections_show(tmp_path):
    old = make_run(tmp_path, [make_record(step_ms=200)], started_at="2026-01-01T00:00:00Z")
    new = make_run(tmp_path, [make_record(step_ms=100)], started_at="2026-01-02T00:00:00Z")
    ok = ok_frame(new, old)
    assert len(ok) == 1 and ok["tput"].iloc[0] == record_of(new, "resnet50/inference/bs32/fp32")["throughput_img_s"]


# -- the page ----------------------------------------------------------------------------------------------------
def test_page_is_self_contained_with_plotly_once(matrix_run, tmp_path):
    from plotly.offline import get_plotlyjs

    out = write_report([matrix_run], tmp_path / "r.html")
    page = out.read_text()
    assert page.count(get_plotlyjs()[:2000]) == 1 and page.count("<script") == 3
    parsed = Page(page)
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "action", "poster", "data"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, attrs)
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
    assert "url(" not in re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    ids = {a["id"] for t, a in parsed.tags if t == "div" and "plot" in a.get("class", "")}
    embedded = json.loads(parsed.scripts[0])["plots"]
    assert ids == set(embedded) and len(ids) >= 8


def test_every_trace_carries_filter_keys_the_page_can_slice(tmp_path):
    # The page filter slices per-point (pk), per-row (rk) and per-column (ck) key lists together with the data;
    # a list of the wrong length would silently drop or misplace points in the browser.
    records = []
    for model in ("resnet18", "resnet50"):
        for mode in ("inference", "train"):
            for bs in (8, 32):
                for precision in ("fp32", "amp_fp16"):
                    for cl in (False, True):
                        rec = make_record(model, mode, bs, precision, cl, seed=len(records))
                        rec["telemetry"] = {"power_avg_w": 100.0, "power_max_w": 120.0, "img_per_j": 2.0}
                        rec["mfu"] = 0.2
                        records.append(rec)
    records[0]["profile"] = {"top_ops": [{"name": "aten::addmm", "self_time_ms": 1.0}], "trace_dir": None}
    runs = [make_run(tmp_path, records, started_at=f"2026-01-0{d}T00:00:00Z") for d in (1, 2)]
    page, _ = build_report(runs)
    plots = json.loads(Page(page).scripts[0])["plots"]
    assert len(plots) >= 15
    keyed = 0
    for plot in plots.values():
        for trace in plot["data"]:
            meta = trace.get("meta")
            if not meta:
                assert trace["x"] == [None], trace.get("name")  # legend keys only
                continue
            keyed += 1
            assert set(meta.get("fk", {})) <= {"model", "mode", "precision"}
            for name, values in meta.get("pk", {}).items():
                assert len(values) == len(trace["x"]), (plot["layout"]["title"], name)
            for values in meta.get("rk", {}).values():
                assert len(values) == len(trace["y"]) == len(trace["z"])
            for values in meta.get("ck", {}).values():
                assert len(values) == len(trace["x"]) == len(trace["z"][0])
    assert keyed > 40


def test_user_strings_are_escaped(tmp_path):
    rec = make_record("resnet18", suite=XSS, status="error", message=f"boom {XSS} </script><script>alert(2)</script>")
    run = make_run(tmp_path, [make_record("resnet18", suite=XSS), rec], suite=XSS)
    page, _ = build_report([run])
    parsed = Page(page)
    assert not any(tag == "img" for tag, _ in parsed.tags)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert XSS in "".join(parsed.text)  # shown to the reader as text
    assert page.count("<script") == 3 and "alert(2)</script>" not in page
    assert "<" not in parsed.scripts[0] and "&" not in parsed.scripts[0]


def test_script_json_cannot_close_its_element():
    text = script_json({"s": "</script><!-- & \u2028", "x": float("nan"), "y": 1.23456789})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"s": "</script><!-- & \u2028", "x": None, "y": 1.23457}


def test_imported_runs_say_they_have_no_intervals(tmp_path):
    rec = make_record("resnet50")
    rec.update(samples_ms=None, throughput_ci95=None)
    run = make_run(tmp_path, [rec])
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "source": "published"}))
    page, data = build_report([run])
    assert "no intervals (published figures, no samples)" in page
    assert figs.throughput_bars(data.ok, "inference").data[0].error_y.array is None


def test_a_published_mean_step_time_is_shown_marked_as_a_mean(tmp_path):
    published = make_record("resnet50", seed=1)
    published.update(samples_ms=None, throughput_ci95=None, step_ms_median=None, step_ms_mean=12.5)
    measured = make_record("resnet18", seed=2, step_ms=7.0)
    page, _ = build_report([make_run(tmp_path, [published, measured])])
    cells = Page(page).text
    assert "12.5 (mean)" in cells
    assert f"{measured['step_ms_median']:.4g}" in cells  # a measured case still shows its median, unmarked
    assert sum("(mean)" in c for c in cells) == 1
    assert "1 case(s): the step time shown is the published mean" in page


def test_profile_section_lists_top_ops_and_how_to_open_the_trace(tmp_path):
    rec = make_record("resnet18")
    ops = [{"name": "aten::conv2d", "calls": 40, "self_time_ms": 12.5, "self_cuda_time_ms": None, "share": 0.61}]
    rec["profile"] = {"trace_dir": "profiles/resnet18-inference", "top_ops": ops, "error": None}
    run = make_run(tmp_path, [rec, make_record("resnet34")])
    page, _ = build_report([run], base_dir=run)
    assert "The trace files are not beside this report (looked in profiles/resnet18-inference)" in page
    trace = run / "profiles" / "resnet18-inference" / "rank0.1700000000.pt.trace.json.gz"
    trace.parent.mkdir(parents=True, exist_ok=True)
    trace.write_bytes(b"")
    page, _ = build_report([run], base_dir=run)
    # A relative link from the report's folder that opens, with how to open it; no absolute paths.
    assert 'href="profiles/resnet18-inference/rank0.1700000000.pt.trace.json.gz"' in page
    assert "ui.perfetto.dev and drag this file in" in page and str(tmp_path) not in page.split("<footer")[0]
    assert "tensorboard --logdir profiles " in page  # a plain path needs no quoting
    page, _ = build_report([run], base_dir=tmp_path)
    assert f'href="synthetic/{run.name}/profiles/resnet18-inference/rank0.1700000000.pt.trace.json.gz"' in page
    assert "aten::conv2d" in page and "61.0%" in page
    assert "No profiled cases" in build_report([make_run(tmp_path / "b", [make_record()])])[0]
    spaced = make_run(tmp_path / "c", [rec], suite="nightly gpu")
    page = html.unescape(build_report([spaced], base_dir=tmp_path / "c")[0])
    assert f"tensorboard --logdir 'nightly gpu/{spaced.name}/profiles'" in page


# -- bad input ---------------------------------------------------------------------------------------------------
def test_a_run_without_records_renders_with_notes(tmp_path):
    page, _ = build_report([make_run(tmp_path, [])])
    assert "No records" in page and "No successful cases to show." in page and page.count("<section") == 12


def test_only_failed_records_render_the_failures(tmp_path):
    run = make_run(tmp_path, [make_record(status="oom"), make_record("resnet18", status="error")])
    page, data = build_report([run])
    assert data.ok.empty and "No successful cases to show." in page
    assert page.count('<td class="bad" data-sort="oom">oom</td>') == 1 and "synthetic error" in page


def test_truncated_and_newer_schema_lines_are_listed_as_skipped(tmp_path):
    newer = {**make_record("resnet18"), "schema_version": 99}
    run = make_run(tmp_path, [make_record(), newer])
    (run / "records.jsonl").unlink()
    with open(run / "records-rank0.jsonl", "a") as f:
        f.write('{"model": "resnet34", "stat')
    page, data = build_report([run])
    assert len(data.frame) == 1
    assert "truncated last line skipped" in page and "schema version 99 is newer" in page


def test_records_of_an_older_schema_are_migrated_and_shown(tmp_path):
    old = {k: v for k, v in make_record().items() if k not in ("schema_version", "throughput_ci95")}
    # no samples or median (a published figure): its interval is still of its throughput after the migrations
    old.update(ci95=[100.0, 400.0], samples_ms=None, step_ms_median=None)
    page, data = build_report([make_run(tmp_path, [old])])
    assert data.ok["throughput_ci95"].iloc[0] == [100.0, 400.0] and "100 to 400" in page


def test_a_folder_that_is_not_a_run_is_noted_beside_real_runs(tmp_path):
    run = make_run(tmp_path / "runs", [make_record()])
    (tmp_path / "empty").mkdir()
    page, data = build_report([run, tmp_path / "empty"])
    assert len(data.ok) == 1 and "empty: not read:" in page and "holds no run folders" in page
    with pytest.raises(StoreError, match="nothing to report"):
        build_report([tmp_path / "empty"])
    with pytest.raises(StoreError, match="does not exist"):
        build_report([run, tmp_path / "missing"])


def test_cli_writes_the_report_and_rejects_a_missing_path(matrix_run, tmp_path):
    out = tmp_path / "out" / "report.html"
    done = run_cli("report", str(matrix_run), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.is_file() and f"wrote {out}" in done.stdout and "matrix" in out.read_text()
    default = run_cli("report", str(matrix_run))
    assert default.returncode == 0 and (matrix_run / "report.html").is_file()
    bad = run_cli("report", str(tmp_path / "nope"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = run_cli("report", str(empty), "-o", str(tmp_path / "x.html"))
    assert bad.returncode == 2 and "nothing to report" in bad.stderr and "Traceback" not in bad.stderr


def test_report_imports_no_torch(matrix_run, tmp_path):
    code = (
        "import sys; from harness.report import write_report; "
        f"write_report([{str(matrix_run)!r}], {str(tmp_path / 'r.html')!r}); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False" and Path(tmp_path / "r.html").is_file()


# -- what changed, where, and is it real ---------------------------------------------------------------------------
def test_numbers_have_one_format_with_thousands_separators():
    from harness.report.blocks import fmt_number, num

    assert [fmt_number(v) for v in (17691.3, 4303.2, 999.94, 56.789, 0.5)] == [
        "17,691",
        "4,303",
        "999.9",
        "56.79",
        "0.5",
    ]
    assert fmt_number(0.0000123) == "0.0000123" and num(-12345.6, signed=True).text == "-12,346"
    assert num(1234.5, unit="img/s").text == "1,234 img/s" and num(1234.5).sort == 1234.5


def test_case_ids_are_shown_with_their_resolution_224_included():
    from harness.report.data import shown_id

    assert shown_id("resnet50/inference/bs32/fp32", 224) == "resnet50/inference/bs32/fp32/r224"
    assert shown_id("resnet50/train/bs8/amp_bf16/cl/compile", 224) == "resnet50/train/bs8/amp_bf16/cl/r224/compile"
    assert shown_id("resnet18/inference/bs1024/amp_fp16/r160", 160) == "resnet18/inference/bs1024/amp_fp16/r160"
    assert shown_id("odd-id", None) == "odd-id"


CASES = [
    ("resnet18", "fp32", 8.0),
    ("resnet18", "amp_bf16", 4.0),
    ("resnet50", "fp32", 30.0),
    ("resnet50", "amp_bf16", 15.0),
]


def slowed_runs(tmp_path, factor=1.4):
    records = [make_record(m, "inference", 32, p, step_ms=ms, seed=i) for i, (m, p, ms) in enumerate(CASES)]
    slower = [
        make_record(m, "inference", 32, p, step_ms=ms * (factor if m == "resnet50" and p == "fp32" else 1), seed=i + 9)
        for i, (m, p, ms) in enumerate(CASES)
    ]
    base = make_run(tmp_path, records, started_at="2026-01-01T00:00:00Z")
    return base, make_run(tmp_path, slower, started_at="2026-01-02T00:00:00Z")


def test_the_changes_section_holds_harness_compares_verdicts(tmp_path):
    from harness.regress import Thresholds, compare
    from harness.report.anchors import case_anchor
    from harness.report.changes import comparisons

    base, cand = slowed_runs(tmp_path)
    data = data_of(cand, base)
    (found,), notes = comparisons(data)
    assert notes == [] and found.baseline.path == base and found.candidate.path == cand
    direct = compare(read_runs([base]), read_runs([cand])[0], Thresholds(relative=0.05, p=0.001))
    mine = {c.key: b for b, cases in found.result.buckets.items() for c in cases}
    assert mine == {c.key: b for b, cases in direct.buckets.items() for c in cases}
    assert mine["resnet50/inference/bs32/fp32"] == "regressed" and list(mine.values()).count("unchanged") == 3
    page = render_of(data)
    anchor = case_anchor("resnet50/inference/bs32/fp32").removeprefix("case-")
    assert f'<a href="#change-{anchor}">resnet50/inference/bs32/fp32/r224</a>' in page  # the verdict panel's link
    assert f'id="change-{anchor}"' in page and "1 regression(s) against the baseline" in page


def render_of(data):
    from harness.report.page import render

    return render(data)


def test_report_baseline_option_names_the_run_compared_against(tmp_path):
    base, cand = slowed_runs(tmp_path)
    third = make_run(
        tmp_path,
        [make_record(m, "inference", 32, p, step_ms=ms) for m, p, ms in CASES],
        started_at="2026-01-03T00:00:00Z",
    )
    out = tmp_path / "r.html"
    done = run_cli("report", str(base), str(third), "--baseline", str(cand), "-o", str(out))
    assert done.returncode == 0, done.stderr
    page = html.unescape(out.read_text())
    assert f"synthetic/{third.name} against synthetic/{cand.name}" in page
    done = run_cli("report", str(base), "--baseline", str(tmp_path / "nowhere"), "-o", str(out))
    assert done.returncode == 2 and "--baseline" in done.stderr and "Traceback" not in done.stderr


def test_runs_of_one_commit_whose_peaks_are_3x_apart_are_flagged(tmp_path):
    from harness.report.changes import run_flags
    from tests.synthetic import probe

    records = [make_record()]
    a = make_run(tmp_path, records, started_at="2026-01-01T00:00:00Z", peak=probe(20.0, {"fp32": 1.0}))
    b = make_run(tmp_path, records, started_at="2026-01-02T00:00:00Z", peak=probe(20.0, {"fp32": 3.0}))
    c = make_run(tmp_path, records, started_at="2026-01-03T00:00:00Z", peak=probe(20.0, {"fp32": 1.1}))
    (flag,) = run_flags(read_runs([a, b]))
    assert "same commit (abc123)" in flag and "fp32 matmul peaks are 3.0× apart" in flag
    assert run_flags(read_runs([a, c])) == []  # 10% apart: not flagged
    assert "difference(s) between runs" in render_of(data_of(a, b))


def test_speedup_heatmaps_share_one_scale_with_a_colour_bar_and_few_columns_stay_narrow(matrix_run):
    ok = ok_frame(matrix_run)
    for fig in (figs.amp_speedup(ok, "inference"), figs.channels_last_speedup(ok, "inference")):
        (heat,) = fig.data
        assert (heat.zmin, heat.zmax) == (-2.0, 2.0) and heat.showscale
        assert list(heat.colorbar.ticktext) == ["0.25×", "0.5×", "1×", "2×", "4×"]
    one = ok[(ok["batch_size"] == 8) & (ok["fmt"] == "NCHW")]
    fig = figs.amp_speedup(one, "inference")
    assert len(fig.data[0].x) == 1 and fig.layout.width is not None and fig.layout.width < 500


def test_the_efficiency_note_knows_a_gpu_run_from_a_cpu_run(tmp_path):
    from harness.report.sections import no_telemetry

    cpu = make_run(tmp_path / "cpu", [make_record()])
    gpu = make_run(tmp_path / "gpu", [make_record(device="cuda")])
    published = ROOT / "examples" / "published-timm" / "timm-infer-amp-nchw" / "rtx5090-pt291-cu130"
    assert "CPU run" in no_telemetry(ok_frame(cpu))
    assert "GPU runs recorded no NVML readings" in no_telemetry(ok_frame(gpu))
    assert "published figures" in no_telemetry(ok_frame(published)) and "CPU" not in no_telemetry(ok_frame(published))


def test_imported_runs_show_their_source_and_date(tmp_path):
    published = ROOT / "examples" / "published-timm" / "timm-infer-amp-nchw"
    page, data = build_report([published / "rtx3090-pt240-cu124", published / "rtx5090-pt291-cu130"])
    assert "start time unknown" not in page and "imported from timm benchmark.py 2026-11-23" in page
    assert "2026-11-23T15:17:33Z (imported)" in page and "(benchmark-infer-amp-nchw-pt291-cu130-5090.csv)" in page
    assert data.many_devices and 'style="--dev: ' in page


def test_a_real_step_in_a_nightly_history_is_ringed_and_opens_the_trends_chart(tmp_path):
    from harness.report import trends

    nights = [100, 101, 99, 100, 130, 131, 129, 130]  # resnet50 fp32 slows by 30% from the fifth night
    runs = [
        make_run(
            tmp_path,
            [make_record(step_ms=ms, seed=i), make_record("resnet18", step_ms=20.0, seed=i + 50)],
            started_at=f"2026-01-0{i + 1}T00:00:00Z",
        )
        for i, ms in enumerate(nights)
    ]
    ((title, rows),) = trends.trend_groups(data_of(*runs).frame)
    fig = trends.trend_figure(rows, title)
    rings = fig.data[-1]
    assert rings.name == "detected step" and rings.meta["pk"]["case"] == ["resnet50/inference/bs32/fp32/r224"]
    assert rings.x[0].startswith("2026-01-05") and "step -23" in rings.hovertext[0]
    assert trends.chooser(fig)[1] == "resnet50/inference/bs32/fp32/r224"


def test_a_busy_run_makes_the_verdict_say_the_comparison_is_inconclusive(tmp_path):
    from tests.synthetic import health, probe

    records = [make_record(m, "inference", 32, p, step_ms=ms, seed=i + 20) for i, (m, p, ms) in enumerate(CASES)]
    quiet, busy = probe(20.0, {"fp32": 1.0, "bf16": 2.0}), probe(6.0, {"fp32": 0.3, "bf16": 0.6})
    first = make_run(tmp_path / "b", records, started_at="2026-01-01T00:00:00Z", health=health(quiet, quiet))
    second = make_run(tmp_path / "b", records, started_at="2026-01-02T00:00:00Z", health=health(busy, busy))
    page = html.unescape(render_of(data_of(first, second)))
    assert "The comparison is inconclusive at run level" in page and "candidate looks busy" in page


def test_the_accuracy_chart_of_several_devices_colours_each_device(tmp_path):
    from harness.report.data import device_colours

    published = ROOT / "examples" / "published-timm" / "timm-infer-amp-nchw"
    runs = [published / "rtx3090-pt240-cu124", published / "rtx5090-pt291-cu130"]
    data = prepare(read_runs(runs), [])
    colours = device_colours(data.devices)
    fig = acc.accuracy_figure(data.frame[data.frame["status"] == "ok"], "inference", colours)
    drawn = {t.marker.color for t in fig.data if t.mode == "markers" and (t.meta or {}).get("fk")}
    assert drawn == set(colours.values()) and len(drawn) == 2
    legend = {t.name: t.line.color for t in fig.data if t.mode == "lines" and not t.meta}
    assert {legend[html.escape(d)] for d in data.devices} == drawn
