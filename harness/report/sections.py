"""The page's sections in page order, and the measurement sections: throughput, speedups, memory, ops and
efficiency. The summary, failures and skipped input are in ``harness.report.summary``; accuracy, trends and
profile in ``harness.report.analysis``.

Each section function takes the ``Builder`` (``harness.report.builder``) and returns a ``Section`` of blocks; a
section without data says so in a note rather than failing. This module alone knows the page order, so the section
modules import only the builder, never each other.
"""

from __future__ import annotations

from typing import Any

from harness.report import analysis, changes, resolution, summary
from harness.report import efficiency as eff
from harness.report import figures as figs
from harness.report.anchors import case_anchor
from harness.report.blocks import (
    NOISY_MARK,
    Cell,
    Note,
    Row,
    Section,
    Table,
    fmt_number,
    keys_of,
    noisy_cell,
    num,
    pct,
    text,
)
from harness.report.builder import Builder
from harness.report.data import ReportData, column, run_label
from harness.store.record import TELEMETRY_FIELDS

#: The telemetry fields of the efficiency table, in its column order: every numeric one but the device memory.
TELEMETRY_COLUMNS = tuple(f for f in TELEMETRY_FIELDS if f not in ("memory_used_mib", "throttle_reasons"))


def build_sections(data: ReportData) -> list[Section]:
    """Every section of the page for ``data``, in page order."""
    b = Builder(data)
    b.changes, b.change_notes = changes.comparisons(data)
    return [
        summary.summary(b),
        changes.changes_section(b, b.changes, b.change_notes),
        throughput(b),
        speedups(b),
        memory(b),
        ops(b),
        efficiency(b),
        analysis.accuracy(b),
        analysis.trends(b),
        analysis.profile(b),
        summary.failures(b),
        summary.skipped(b),
    ]


def throughput(b: Builder) -> Section:
    """Throughput bars and lines per mode (with intervals, or a note when there are none) and the table of cases."""
    s = Section("throughput", "Throughput")
    ok = b.ok
    if ok.empty:
        s.add(Note("No successful cases to show.", "nodata"))
        return s
    has_ci = ok["throughput_ci95"].map(lambda c: isinstance(c, list) and len(c) == 2)
    imported = (ok["source"] != "harness") | ~ok["has_samples"].astype(bool)
    if (imported & ~has_ci).any():
        s.add(Note(f"{int((imported & ~has_ci).sum())} case(s): no intervals (published figures, no samples).", "warn"))
    mean_only = [_step_cell(r).text.endswith("(mean)") for _, r in ok.iterrows()]
    if any(mean_only):
        s.add(Note(f"{sum(mean_only)} case(s): the step time shown is the published mean (no median without samples)."))
    s.add(
        Note(
            "Throughput: images per second of the median step (batch size × 1000 / median step ms), the figure the"
            " run's summary table and harness compare show; one stalled step barely moves it."
        )
    )
    noisy = int(ok["noisy"].sum())
    if noisy:
        s.add(
            Note(
                f"{noisy} case(s) measured under noise ({NOISY_MARK}: other processes on the machine, CPU steal,"
                " or stalled steps, as the record says); their numbers are less certain, and harness compare calls"
                " them inconclusive.",
                "warn",
            )
        )
    if has_ci.any():
        s.add(Note("Error bars: bootstrap 95% interval of the throughput from the timed samples."))
    for mode in b.modes:
        s.add(b.plot(figs.throughput_bars(ok, mode)))
        s.add(b.plot(figs.throughput_lines(ok, mode)))
        s.add(b.plot(resolution.throughput_vs_resolution(ok, mode)))
        s.add(b.plot(resolution.pixel_scaling(ok, mode)))
    if len(b.data.runs) > 1 or b.data.many_devices:
        s.add(
            Note(
                "The table holds the latest record of each case on each device; the run column names the run it"
                " comes from (Trends and Changes show the others)."
            )
        )
    rows = []
    anchored = newest_rows(ok)
    for index, r in figs.case_order(ok).iterrows():
        ci = r["throughput_ci95"]
        ci_text = (
            f"{fmt_number(ci[0])} to {fmt_number(ci[1])}"
            if isinstance(ci, list) and len(ci) == 2 and None not in ci
            else ""
        )
        rows.append(
            Row(
                [
                    Cell(r["case"], r["case"], "id"),
                    Cell(r["device_key"], r["device_key"], "nowrap"),
                    Cell(r["run"], r["run"], "id"),
                    Cell(r["model"]),
                    Cell(r["mode"]),
                    num(r["batch_size"]),
                    Cell(r["precision"]),
                    Cell(r["fmt"]),
                    noisy_cell(num(r["tput"]), r),
                    Cell(ci_text or ("no samples" if not r["has_samples"] else "")),
                    _step_cell(r),
                    num(r.get("step_ms_p90")),
                    num(r.get("iters")),
                    Cell(
                        f"{NOISY_MARK} {r['noise_text']}" if r["noisy"] else "",
                        int(r["noisy"]),
                        "warn prose" if r["noisy"] else "",
                    ),
                ],
                keys_of(r),
                id=case_anchor(r["case_id"]) if index in anchored else "",
                colour=b.row_colour(r),
            )
        )
    s.add(
        Table(
            [
                "case",
                "device",
                "run",
                "model",
                "mode",
                "batch",
                "precision",
                "format",
                "img/s",
                "95% CI",
                "median ms",
                "p90 ms",
                "steps",
                "noise",
            ],
            rows,
            numeric=(5, 8, 10, 11, 12),
        )
    )
    return s


def newest_rows(rows: Any) -> set[Any]:
    """The index of the row of each case id from the newest run (the row that carries the case's anchor)."""
    if rows.empty:
        return set()
    keyed = rows.assign(_t=column(rows, "run_started_at").fillna("").astype(str), _i=range(len(rows)))
    return set(keyed.sort_values(["_t", "_i"], kind="stable").drop_duplicates("case_id", keep="last").index)


def _step_cell(r: Any) -> Cell:
    """The median step time (ms); the mean, marked as such, for a record that has only a mean (published)."""
    cell = num(r.get("step_ms_median"))
    if cell.sort is None:
        mean = num(r.get("step_ms_mean"))
        if mean.sort is not None:
            return Cell(f"{mean.text} (mean)", mean.sort)
    return cell


def speedups(b: Builder) -> Section:
    """Heatmaps of AMP over fp32 and channels_last over NCHW, per mode (and precision)."""
    s = Section("speedups", "Speedups")
    ok = b.ok
    s.add(
        Note(
            "Cells: throughput ratio of matching cases (above 1 is faster). Blue is a gain, red a loss; the colour"
            f" is on a log scale fixed from {1 / figs.SPEEDUP_RANGE:g}× to {figs.SPEEDUP_RANGE:g}× (beyond, it"
            f" saturates), the same on every page. {NOISY_MARK} marks a ratio with a case measured under"
            " noise on either side; its hover says why."
        )
    )
    count = 0
    for mode in b.modes:
        for fig in (figs.amp_speedup(ok, mode), figs.channels_last_speedup(ok, mode)):
            p = b.plot(fig)
            count += p is not None
            s.add(p)
    if not count:
        s.blocks = [
            Note(
                "No matching pairs: a speedup needs the same case at fp32 and amp_fp16/amp_bf16, or in NCHW and"
                " channels_last.",
                "nodata",
            )
        ]
    return s


def memory(b: Builder) -> Section:
    """Peak memory against batch size per mode."""
    s = Section("memory", "Memory")
    rows = b.ok[b.ok["mem_mib"].notna()] if not b.ok.empty else b.ok
    if rows.empty:
        s.add(Note("No memory measurements.", "nodata"))
        return s
    s.add(Note("Peak allocated memory on CUDA (after a reset per case); peak resident set of the process on CPU."))
    for mode in b.modes:
        s.add(b.plot(figs.memory_lines(rows, mode)))
    return s


def ops(b: Builder) -> Section:
    """Measured against stated GMACs, the deviation table, achieved TFLOP/s and MFU."""
    s = Section("ops", "Ops")
    table = eff.ops_table_rows(b.ok)
    if table.empty:
        s.add(Note("No operation counts in these records.", "nodata"))
    else:
        s.add(
            Note(
                "Measured: forward multiply-accumulates per image counted by FlopCounterMode (FLOPs / 2)."
                " Stated: the published 224-px _ops, carried to the resolution by the architecture's exact count."
            )
        )
        s.add(b.plot(eff.ops_figure(b.ok)))
        rows = []
        for _, r in table.iterrows():
            dev = pct(r["deviation"])
            if dev.sort is not None and abs(dev.sort) > 0.02:
                dev.cls = "warn"
            rows.append(
                Row(
                    [Cell(r["model"]), num(r["resolution"]), num(r["gmacs"]), num(r["stated"]), dev],
                    {"model": r["model"]},
                )
            )
        s.add(Table(["model", "resolution", "measured GMACs", "stated GMACs", "deviation"], rows, numeric=(1, 2, 3, 4)))
    peaks = _peaks(b.data)
    if peaks:
        s.add(Note("Measured peak (matmul and conv microbenchmarks, for MFU): " + "; ".join(peaks)))
    drawn = 0
    for mode in b.modes:
        pair = [eff.tflops_bars(b.ok, mode), eff.mfu_bars(b.ok, mode)]
        both = all(fig is not None for fig in pair)
        for fig in pair:
            p = b.plot(fig, half=both)
            drawn += p is not None
            s.add(p)
    if drawn and not b.ok["mfu"].notna().any():
        s.add(Note("No MFU: the run recorded no measured peak for these precisions.", "nodata"))
    return s


def efficiency(b: Builder) -> Section:
    """Images per joule, power and clocks per case, and the telemetry table with throttle reasons."""
    s = Section("efficiency", "Efficiency")
    ok = b.ok
    tel = [c for c in ok.columns if c.startswith("telemetry.")] if not ok.empty else []
    has = ok[ok[tel].notna().any(axis=1)] if tel else ok.iloc[0:0]
    if has.empty:
        s.add(Note(no_telemetry(ok), "nodata"))
        return s
    for mode in b.modes:
        s.add(b.plot(eff.img_per_joule_bars(has, mode)))
        s.add(b.plot(eff.power_bars(has, mode), half=True))
        s.add(b.plot(eff.clock_bars(has, mode), half=True))
    rows = []
    for _, r in figs.case_order(has).iterrows():
        reasons = r.get("telemetry.throttle_reasons")
        reason_text = ", ".join(map(str, reasons)) if isinstance(reasons, (list, tuple)) else text(reasons)
        cell = Cell(reason_text or "none", reason_text, "warn" if reason_text else "")
        cells = [num(r.get(f"telemetry.{c}")) for c in TELEMETRY_COLUMNS]
        device = Cell(r["device_key"], r["device_key"], "nowrap")
        run = Cell(r["run"], r["run"], "id")
        row = [Cell(r["case"], r["case"], "id"), device, run, *cells, cell]
        rows.append(Row(row, keys_of(r), colour=b.row_colour(r)))
    s.add(
        Table(
            [
                "case",
                "device",
                "run",
                "power avg W",
                "power max W",
                "energy J",
                "img/J",
                "SM MHz",
                "mem MHz",
                "temp °C",
                "util %",
                "throttle reasons",
            ],
            rows,
            caption="Telemetry over each case's timed window (its latest record on each device); throttle reasons"
            " are flagged",
            numeric=tuple(range(3, 11)),
        )
    )
    return s


def no_telemetry(ok: Any) -> str:
    """Why the efficiency section is empty, for the records at hand: published figures carry none, a GPU run
    recorded no NVML readings, a CPU run has no NVML to read."""
    if ok.empty:
        return "No successful cases, so no telemetry to show."
    imported = (column(ok, "source").fillna("harness") != "harness").all()
    gpu = (column(ok, "device").astype(str) == "cuda") | (column(ok, "env.device_type").astype(str) == "cuda")
    if imported:
        return "No telemetry: published figures (imported runs) carry no power, energy or clock readings."
    if gpu.any():
        return (
            "No telemetry: these GPU runs recorded no NVML readings (pynvml missing or NVML unavailable to the"
            " run), so no power, energy or clocks."
        )
    return "No telemetry: a CPU run has no NVML to read, so no power, energy or clocks."


def _peaks(data: ReportData) -> list[str]:
    out = []
    for run in data.runs:
        peak, label = run.manifest.get("peak"), run_label(run.path)
        if not isinstance(peak, dict):
            continue
        for group, what in (("matmul_tflops", ""), ("conv_tflops", "conv ")):
            flops = peak.get(group)
            if isinstance(flops, dict):
                parts = ", ".join(f"{k} {v:.4g} TFLOP/s" for k, v in flops.items() if isinstance(v, (int, float)))
                if parts:
                    out.append(f"{label}: {what}{parts}")
        if isinstance(peak.get("copy_gbps"), (int, float)):
            out.append(f"{label}: copy {peak['copy_gbps']:.4g} GB/s")
        health = run.manifest.get("health")
        spread = health.get("spread") if isinstance(health, dict) else None
        moved = [v for v in spread.values() if isinstance(v, (int, float))] if isinstance(spread, dict) else []
        if moved:
            out.append(f"{label}: start and end probes differ by up to {max(moved):.0%}")
    return out
