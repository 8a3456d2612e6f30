"""The HTML page of a hardware comparison (``harness compare --hardware RUN... --html FILE``).

It is the run report's page (same template, CSS, script, filter, sortable tables, plotly.js inlined once, nothing
fetched) with the comparison's own sections: at a glance (first screen: a warning naming the versions when the runs
differ in torch or CUDA as well as in device, and every pair of runs' geometric-mean throughput ratio, which the
page's own script, ``templates/hardware.js``, recomputes from the throughput table's visible rows when the filter
changes), the runs compared and the matching rule, speedup bars per case group, geometric means over the reference,
absolute throughput bars and a table with every pair's ratio per case, images per joule and MFU, and cases that not
every run has. Numbers come from ``harness.regress.hardware_compare`` unchanged (its rows, summary, pairs, labels,
notes and the runs' manifests); the page only lays them out.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import HarnessError, StoreError
from harness.regress.hardware import SOFTWARE_WARNING, imported_note, software_change
from harness.report import hardware_figures as hf
from harness.report.blocks import Cell, Note, Row, Section, Table, num, pct, text
from harness.report.builder import Charts
from harness.report.data import FILTER_KEYS, MODE_ORDER, PRECISION_ORDER, model_order, ordered, run_label
from harness.report.figures import case_order
from harness.report.page import _asset, _plotly_js, script_json, write_html
from harness.store.record import Status


def short_names(labels: list[str], devices: list[str]) -> list[str]:
    """Run labels for legends and column headers: without the leading words every device name shares (a vendor
    and product line, say) but keeping the last of them, so "NVIDIA GeForce RTX 3090 (torch 2.4.0)" beside an
    "NVIDIA GeForce RTX 4090" becomes "RTX 3090 (torch 2.4.0)". Runs of one device keep their labels whole."""
    distinct = [d.split(" ") for d in dict.fromkeys(devices)]
    shared = 0
    while len(distinct) > 1 and all(len(w) > shared + 1 for w in distinct) and len({w[shared] for w in distinct}) == 1:
        shared += 1
    prefix = " ".join(distinct[0][: shared - 1]) + " " if shared > 1 else ""
    return [label[len(prefix) :] if prefix and label.startswith(prefix) else label for label in labels]


def read_manifests(run_dirs: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The manifest of each compared run folder (an empty one, and a note, where it cannot be read)."""
    from harness.store.rundir import read_manifest

    manifests, notes = [], []
    for run_dir in run_dirs:
        try:
            manifests.append(read_manifest(Path(run_dir)))
        except StoreError as exc:
            manifests.append({})
            notes.append(f"{run_dir}: no manifest read ({exc}); versions and dates unknown")
    return manifests, notes


class HardwarePage(Charts):
    """Builds the sections of one comparison page, numbering the charts as it goes. The runs' manifests are the
    comparison's own (``manifests`` overrides them; they are read from the run folders only when neither has
    them)."""

    def __init__(
        self,
        h: Any,
        manifests: list[dict[str, Any]] | None = None,
        notes: list[str] | None = None,
        out_dir: str | Path | None = None,
    ):
        if not hasattr(h, "frame") or not hasattr(h, "labels"):
            raise HarnessError(f"write_hardware_report takes a HardwareComparison, not a {type(h).__name__}")
        super().__init__()
        self.h = h
        if manifests is None and len(getattr(h, "manifests", None) or []) == len(h.run_dirs):
            manifests = list(h.manifests)
        if manifests is None:
            manifests, notes = read_manifests(list(h.run_dirs))
        self.manifests = manifests
        self.notes = [*(notes or []), *h.notes]
        self.frame = hf.comparison_frame(h.frame)
        self.names = short_names(list(h.labels), self.devices())
        self.ok = self.frame[self.frame["status"] == Status.OK] if not self.frame.empty else self.frame
        self.out_dir = out_dir
        #: Per row of the throughput table, per run: the link to the case in that run's report (or None).
        self.report_links: list[list[str | None]] = []

    def devices(self) -> list[str]:
        """Each run's device name (from its manifest, else its records), in run order."""
        out = []
        for i, m in enumerate(self.manifests):
            name = (m.get("environment") or {}).get("device_name")
            if not name and not self.frame.empty:
                mine = self.frame.loc[self.frame["run_index"] == i, "device_name"].dropna()
                name = mine.iloc[0] if len(mine) else None
            out.append(str(name or self.h.labels[i]))
        return out

    def title(self) -> str:
        """ "Hardware comparison: A vs B vs C"; the runs' full labels when a device appears twice."""
        devices = self.devices()
        shown = devices if len(set(devices)) == len(devices) else list(self.h.labels)
        head = " vs ".join(shown[:4]) + (f" and {len(shown) - 4} more" if len(shown) > 4 else "")
        return f"Hardware comparison: {head}"

    def sections(self) -> list[Section]:
        """Every section, in page order."""
        return [
            self.glance(),
            self.runs(),
            self.speedups(),
            self.geomeans(),
            self.throughput(),
            self.efficiency(),
            self.partial(),
        ]

    # -- (0) at a glance: the software warning and every pair's geometric mean -------------------------------
    def pair_name(self, a: int, b: int) -> str:
        return f"{self.names[a]} → {self.names[b]}"

    def glance(self) -> Section:
        """First screen: whether hardware and software are mixed, then every pair of runs' geometric-mean ratio
        over the cases the filter shows (the page script recomputes it from the throughput table's visible rows)."""
        s = Section("glance", "At a glance")
        for note in self.notes:
            if note.startswith(SOFTWARE_WARNING):
                s.add(Note(note, "warn"))
        pairs = self.h.pairs
        if not any(p["cases"] for p in pairs):
            s.add(Note("No case succeeded on two runs: no ratio to show.", "nodata"))
            return s
        rows = []
        for p in pairs:
            a, b = p["a"], p["b"]
            changed = software_change(self.manifests[a], self.manifests[b]) if self.manifests else ""
            rows.append(
                Row(
                    [
                        Cell(self.pair_name(a, b)),
                        num(p["cases"]),
                        Cell(hf.ratio_text(p["geomean"]), p["geomean"], "nowrap geomean"),
                        Cell(hf.ratio_text(p["min"]), p["min"], "nowrap"),
                        Cell(hf.ratio_text(p["max"]), p["max"], "nowrap"),
                        Cell(changed or "same", cls="warn" if changed else ""),
                    ]
                )
            )
        s.add(
            Table(
                ["runs (before → after)", "cases", "geometric mean", "min", "max", "software change"],
                rows,
                caption="Throughput ratio of every pair of runs over the cases the filter shows (after / before;"
                " a 2× gain and a 2× loss cancel)",
                numeric=(1, 2, 3, 4),
            )
        )
        return s

    # -- (1) the runs ------------------------------------------------------------------------------------------
    def source(self, i: int) -> str:
        """What run ``i`` is: a harness measurement, or imported published figures (and whether it has samples)."""
        src = self.manifests[i].get("source")
        if not src or src == "harness":
            return "harness measurement"
        mine = self.frame[self.frame["run_index"] == i] if not self.frame.empty else self.frame
        sampled = not mine.empty and (mine["n_samples"] > 0).any()
        return f"published figures ({src})" + ("" if sampled else ", no samples")

    def runs(self) -> Section:
        s = Section("runs", "Runs compared")
        rows = []
        devices = self.devices()
        for i, run_dir in enumerate(self.h.run_dirs):
            m = self.manifests[i]
            env = m.get("environment") or {}
            mine = self.frame[self.frame["run_index"] == i] if not self.frame.empty else self.frame
            ok = int((mine["status"] == Status.OK).sum()) if not mine.empty else 0
            with_speedup = int(mine["speedup"].notna().sum()) if not mine.empty else 0
            date = m.get("started_at") or (f"imported {m['imported_at']}" if m.get("imported_at") else "unknown")
            cuda = env.get("cuda") or ("none (CPU)" if env.get("device_type") == "cpu" else "")
            cells = [
                num(i),
                Cell(devices[i]),
                Cell(text(env.get("torch")), cls="nowrap"),
                Cell(text(cuda), cls="nowrap"),
                Cell(self.source(i), cls="warn" if self.source(i) != "harness measurement" else ""),
                Cell(text(date), cls="nowrap"),
                num(len(mine)),
                num(ok),
                Cell("reference", None) if i == 0 else num(with_speedup),
                Cell(run_label(run_dir)),
            ]
            rows.append(Row(cells))
        header = ["#", "device", "torch", "CUDA", "source", "date (UTC)", "cases", "ok", "with a speedup", "run"]
        s.add(
            Table(header, rows, caption="Run 0 is the reference: every speedup is relative to it", numeric=(0, 6, 7, 8))
        )
        s.add(Note(f"Matching rule: {self.h.rule}."))
        origins: dict[str, list[str]] = {}
        for i, m in enumerate(self.manifests):
            if m.get("source") and m.get("source") != "harness":
                where = text(m.get("origin")) or "an unstated origin"
                origins.setdefault(f"{text(m['source'])}, from {where}", []).append(
                    f"[{i}] {text(m.get('source_file'))}"
                )
        for where, files in origins.items():
            s.add(Note(f"Imported ({where}): " + "; ".join(files) + "."))
        if any(self.source(i).endswith("no samples") for i in range(len(self.manifests))):
            s.add(Note("Published figures hold one number per case: their speedups are plain ratios, no interval."))
        # The comparison's note on each imported run says what the source column already says.
        said = {imported_note(label, m.get("source")) for label, m in zip(self.h.labels, self.manifests, strict=True)}
        for note in self.notes:
            if note not in said and not note.startswith(SOFTWARE_WARNING):
                s.add(Note(note, "warn"))
        return s

    # -- (2) speedup per model ---------------------------------------------------------------------------------
    def speedups(self) -> Section:
        s = Section("speedup", "Speedup per model")
        rows = self.ok[self.ok["speedup"].notna()] if not self.ok.empty else self.ok
        if rows.empty:
            s.add(Note("No case measured on the reference and on another run: no speedup to show.", "nodata"))
            return s
        s.add(
            Note(
                f"Bars: a run's throughput over the reference's ({self.names[0]}) for the same case; above 1.0 is"
                " faster. One chart per mode, precision, memory format and resolution."
            )
        )
        rows = case_order(rows)
        for (mode, precision, fmt, res), sub in hf.speedup_groups(rows):
            sub = sub.assign(x=hf.case_axis(sub, hf.GROUP_FIELDS))
            title = f"Speedup over {self.names[0]}: {mode} · {precision} · {fmt} · {_int(res)}px"
            s.add(self.plot(hf.speedup_bars(sub, self.names, title)))
        return s

    # -- (3) geometric means -----------------------------------------------------------------------------------
    def geomeans(self) -> Section:
        s = Section("geomean", "Geometric-mean speedup")
        summary = self.h.summary
        rows = summary[(summary["run_index"] > 0) & summary["geomean_speedup"].notna()] if len(summary) else summary
        if rows.empty:
            s.add(Note("No speedups, so no geometric mean.", "nodata"))
            return s
        modes = {m: i for i, m in enumerate(("all", *MODE_ORDER))}
        precisions = {p: i for i, p in enumerate(("all", *PRECISION_ORDER))}
        rows = rows.assign(
            _m=[modes.get(m, len(modes)) for m in rows["mode"]],
            _p=[precisions.get(p, len(precisions)) for p in rows["precision"]],
        ).sort_values(["run_index", "_m", "mode", "_p", "precision"], kind="stable")
        s.add(
            Note(
                "Geometric mean of the per-case speedups over the reference, per mode and precision, over every case"
                " (the model filter leaves it as it is; the table at the top follows it): a 2× gain and a 2× loss"
                " cancel."
            )
        )
        few = len(rows) <= 8  # a few bars read better at half width than as wide slabs
        s.add(self.plot(hf.geomean_bars(rows, self.names, width=hf.HALF if few else 1100), half=few))
        table = []
        for r in rows.to_dict("records"):
            keys = {k: r[k] for k in ("mode", "precision") if r[k] != "all"}
            ratios = [Cell(hf.ratio_text(r[k]), r[k]) for k in ("geomean_speedup", "min_speedup", "max_speedup")]
            table.append(
                Row(
                    [Cell(self.names[r["run_index"]]), Cell(r["mode"]), Cell(r["precision"]), num(r["cases"])] + ratios,
                    keys,
                )
            )
        header = ["run", "mode", "precision", "cases", "geomean speedup", "min", "max"]
        s.add(Table(header, table, numeric=(3, 4, 5, 6)))
        return s

    # -- (4) absolute throughput -------------------------------------------------------------------------------
    def by_case(self) -> list[tuple[pd.Series, dict[int, dict[str, Any]]]]:
        """Each case once (in case order, its first row standing for it) with its rows by run index."""
        if self.frame.empty:
            return []
        first = case_order(self.frame.drop_duplicates("case"))
        runs: dict[str, dict[int, dict[str, Any]]] = {}
        for r in self.frame.to_dict("records"):
            runs.setdefault(r["case"], {})[int(r["run_index"])] = r
        return [(r, runs[r["case"]]) for _, r in first.iterrows()]

    def report_link(self, row: dict[str, Any] | None) -> str | None:
        """The link to the case of ``row`` in its run's report (relative to the page's folder when known), or
        None when the run folder has no report."""
        if row is None or not isinstance(row.get("case_id"), str) or not isinstance(row.get("run_dir"), str):
            return None
        from urllib.parse import quote

        from harness.regress.render import run_links

        link = run_links(row["run_dir"], row["case_id"], self.out_dir).get("report")
        if link is None:
            return None
        path, _, anchor = link.partition("#")
        return f"{quote(path)}#{anchor}"

    def script_data(self) -> dict[str, Any]:
        """What the page script needs: the number of runs, the pairs in table order, and the report links of the
        throughput table's rows (only when a run has a report)."""
        data: dict[str, Any] = {"runs": len(self.names), "pairs": self.pairs()}
        if any(link for row in self.report_links for link in row):
            data["links"] = self.report_links
        return data

    def pairs(self) -> list[tuple[int, int]]:
        """Every pair of run indexes (a, b), a < b, in the order of the ratio columns."""
        n = len(self.names)
        return [(a, b) for a in range(n) for b in range(a + 1, n)]

    def throughput(self) -> Section:
        s = Section("throughput", "Throughput")
        self.report_links = []
        cases = self.by_case()
        if not cases:
            s.add(Note("These runs hold no cases.", "nodata"))
            return s
        if not self.ok.empty:
            s.add(Note("Bars: images per second of every run, side by side (global throughput for DDP)."))
            for mode, precision in hf.mode_precision_groups(self.ok):
                rows = self.ok[(self.ok["mode"] == mode) & (self.ok["precision"] == precision)]
                rows = case_order(rows)
                rows = rows.assign(x=hf.case_axis(rows, ("mode", "precision")))
                s.add(self.plot(hf.throughput_bars(rows, self.names, f"Throughput, {mode} · {precision}")))
        n = len(self.names)
        pairs = self.pairs()
        header = ["case"] + [f"img/s {name}" for name in self.names]
        header += [f"× {self.names[a]} → {self.names[b]}" for a, b in pairs]
        rows = []
        for first, runs in cases:
            cells = [Cell(first["case"], cls="nowrap")]
            tput: dict[int, float] = {}
            for i in range(n):
                r = runs.get(i)
                if r is None:
                    cells.append(Cell("absent", None, "muted"))
                elif r["status"] != Status.OK:
                    cells.append(Cell(str(r["status"]), None, "bad"))
                else:
                    cells.append(num(r["throughput_img_s"]))
                    v = r["throughput_img_s"]
                    if v is not None and v == v and v > 0:
                        tput[i] = float(v)
            self.report_links.append([self.report_link(runs.get(i)) for i in range(n)])
            for a, b in pairs:
                v = tput[b] / tput[a] if a in tput and b in tput else None
                cells.append(Cell(hf.ratio_text(v) if v is not None else "", v, "nowrap"))
            rows.append(Row(cells, _keys(first)))
        s.add(
            Table(
                header,
                rows,
                caption="Throughput (images / s; global for DDP) per case and run, and the ratio of every pair of runs"
                + ("; a throughput links to the case in its run's report" if any(map(any, self.report_links)) else ""),
                numeric=tuple(range(1, len(header))),
            )
        )
        return s

    # -- (5) images per joule and MFU ------------------------------------------------------------------------
    def efficiency(self) -> Section:
        s = Section("efficiency", "Images per joule and MFU")
        has = {c: not self.ok.empty and self.ok[c].notna().any() for c in ("img_per_j", "mfu")}
        if not any(has.values()):
            s.add(
                Note(
                    "No telemetry: no run recorded energy (images per joule, from NVML) or MFU (needs a measured peak)"
                    " for these cases.",
                    "nodata",
                )
            )
            return s
        for column, what in (("img_per_j", "images per joule (no NVML telemetry)"), ("mfu", "MFU (no measured peak)")):
            missing = [self.names[i] for i in range(len(self.names)) if not self._has(i, column)]
            if has[column] and missing:
                s.add(Note(f"No {what}: {', '.join(missing)}.", "nodata"))
            elif not has[column]:
                s.add(Note(f"No {what} on any run.", "nodata"))
        modes = ordered(self.ok["mode"], MODE_ORDER)
        for mode in modes:
            rows = case_order(self.ok[self.ok["mode"] == mode])
            rows = rows.assign(x=hf.case_axis(rows, ("mode",)))
            pair = [
                hf.metric_bars(rows, self.names, "img_per_j", f"Images per joule, {mode}", "images / J", "img/J")
                if has["img_per_j"]
                else None,
                hf.metric_bars(rows, self.names, "mfu", f"MFU, {mode}", "MFU (%)", "%", scale=100)
                if has["mfu"]
                else None,
            ]
            both = all(f is not None for f in pair)
            for fig in pair:
                s.add(self.plot(fig, half=both))
        # Only the runs that have a metric get its columns: an empty column per run without telemetry says nothing.
        energy = [i for i in range(len(self.names)) if self._has(i, "img_per_j")]
        mfu = [i for i in range(len(self.names)) if self._has(i, "mfu")]
        header = ["case"] + [f"img/J {self.names[i]}" for i in energy] + [f"MFU {self.names[i]}" for i in mfu]
        rows_out = []
        for first, runs in self.by_case():
            cells = [Cell(first["case"], cls="nowrap")]
            cells += [num((runs.get(i) or {}).get("img_per_j")) for i in energy]
            cells += [pct((runs.get(i) or {}).get("mfu"), signed=False) for i in mfu]
            if any(c.sort is not None for c in cells[1:]):
                rows_out.append(Row(cells, _keys(first)))
        s.add(Table(header, rows_out, numeric=tuple(range(1, len(header)))))
        return s

    def _has(self, index: int, column: str) -> bool:
        mine = self.ok[self.ok["run_index"] == index] if not self.ok.empty else self.ok
        return not mine.empty and mine[column].notna().any()

    # -- (6) cases on only some runs -------------------------------------------------------------------------
    def partial(self) -> Section:
        s = Section("partial", "Cases on only some runs")
        n = len(self.names)
        rows, failed = [], []
        for first, runs in self.by_case():
            if len(runs) < n:
                on = [self.names[i] for i in sorted(runs)]
                off = [self.names[i] for i in range(n) if i not in runs]
                rows.append(
                    Row([Cell(first["case"], cls="nowrap"), Cell(", ".join(on)), Cell(", ".join(off))], _keys(first))
                )
            for i, r in sorted(runs.items()):
                if r["status"] != Status.OK:
                    failed.append(
                        Row([Cell(first["case"], cls="nowrap"), Cell(self.names[i]), Cell(str(r["status"]), cls="bad")])
                    )
        if rows:
            s.add(
                Note(f"{len(rows)} case(s) are not on every run; a case not on the reference has no speedup.", "warn")
            )
            s.add(Table(["case", "on", "not on"], rows))
        else:
            s.add(Note("Every case is on every run.", "info"))
        if failed:
            s.add(
                Table(["case", "run", "status"], failed, caption="Cases that did not succeed on a run: no throughput")
            )
        return s


def _keys(row: Any) -> dict[str, str]:
    return {k: text(row.get(k)) for k in FILTER_KEYS}


def _int(value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def build_hardware_page(
    h: Any, manifests: list[dict[str, Any]] | None = None, out_dir: str | Path | None = None
) -> str:
    """The whole HTML page of the hardware comparison ``h`` (a ``HardwareComparison``). ``manifests`` are the
    runs' manifests in run order; by default they are read from ``h.run_dirs``. A throughput links to the case in
    its run's report where the run folder has one, relative to ``out_dir`` (the page's folder) when given."""
    import jinja2

    from harness import __version__

    page = HardwarePage(h, manifests, out_dir=out_dir)
    sections = page.sections()
    plots = {b.id: b.figure for s in sections for b in s.blocks if b.block == "plot"}
    frame = page.frame
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_asset("page.html.j2")).render(
        title=page.title(),
        subtitle=f"{len(h.labels)} runs; speedups are relative to run 0, {h.labels[0]}",
        version=__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        sections=sections,
        filter_keys=FILTER_KEYS,
        filter_values={
            "model": model_order(frame["model"]) if not frame.empty else [],
            "mode": ordered(frame["mode"], MODE_ORDER) if not frame.empty else [],
            "precision": ordered(frame["precision"], PRECISION_ORDER) if not frame.empty else [],
        },
        n_runs=len(h.labels),
        n_records=len(frame),
        css=_asset("report.css"),
        js=_asset("report.js") + "\n" + _asset("hardware.js"),
        plotly_js=_plotly_js(),
        plotly_src=None,
        data_json=script_json({"plots": plots, "hardware": page.script_data()}),
    )


def write_hardware_report(h: Any, out_path: str | Path) -> Path:
    """Write the page of the hardware comparison ``h`` (from ``harness.regress.hardware_compare``) to
    ``out_path`` as one self-contained HTML file (plotly.js inlined, nothing fetched); returns the path written."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = build_hardware_page(h, out_dir=Path(out_path).resolve().parent)
    try:
        return write_html(page, out_path)
    except StoreError as exc:
        raise StoreError(str(exc).replace("-o FILE", "--html FILE")) from None
