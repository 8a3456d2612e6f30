"""A HardwareComparison as a terminal table, markdown, or JSON: geometric means first, then case by case."""

from __future__ import annotations

import json
from typing import Any

from harness.regress.hardware import HardwareComparison
from harness.regress.render import MARKDOWN_ROWS, finite, prune, run_links, value
from harness.store.record import Status


def _ratio(v: Any) -> str:
    return "-" if v is None or v != v else f"{v:.2f}x"


def _has(frame: Any, column: str) -> bool:
    return column in frame.columns and frame[column].notna().any()


def summary_rows(h: HardwareComparison) -> tuple[list[str], list[list[str]]]:
    """Geometric-mean speedup per run, mode and precision (``all`` first)."""
    header = ["run", "mode", "precision", "cases", "geomean speedup", "min", "max"]
    rows = [
        [
            str(r["run"]),
            str(r["mode"]),
            str(r["precision"]),
            str(r["cases"]),
            _ratio(r["geomean_speedup"]),
            _ratio(r["min_speedup"]),
            _ratio(r["max_speedup"]),
        ]
        for r in h.summary.to_dict("records")
        if r["run_index"] > 0
    ]
    return header, rows


def pair_rows(h: HardwareComparison) -> tuple[list[str], list[list[str]]]:
    """Every pair of runs' geometric-mean throughput ratio (after over before) over the cases both have."""
    header = ["runs", "cases", "geomean ratio", "min", "max"]
    rows = [
        [f"[{p['a']}] -> [{p['b']}]", str(p["cases"]), _ratio(p["geomean"]), _ratio(p["min"]), _ratio(p["max"])]
        for p in h.pairs
    ]
    return header, rows


def row_links(h: HardwareComparison, relative_to: Any = None) -> list[dict[str, str]]:
    """Per row of ``h.frame``, in order: the case's links in its run folder (``report``, ``traces``; see
    ``harness.regress.render.run_links``), empty where the run has neither."""
    out = []
    for run_dir, case_id in zip(h.frame["run_dir"], h.frame["case_id"], strict=True):
        ok = isinstance(case_id, str) and case_id and isinstance(run_dir, str)
        out.append(run_links(run_dir, case_id, relative_to) if ok else {})
    return out


def case_rows(h: HardwareComparison, linked: bool = False) -> tuple[list[str], list[list[str]]]:
    """One row per case: throughput and speedup per run, then images per joule and MFU per run when present.
    With ``linked`` (markdown), a throughput links to the case in its run's report where there is one."""
    frame = h.frame
    header = ["case"]
    for i in range(len(h.labels)):
        header += [f"img/s [{i}]"] + ([f"speedup [{i}]"] if i else [])
    extras = [(c, name) for c, name in (("img_per_j", "img/J"), ("mfu", "MFU")) if _has(frame, c)]
    for _, name in extras:
        header += [f"{name} [{i}]" for i in range(len(h.labels))]
    by_case: dict[str, dict[int, dict[str, Any]]] = {}
    links = row_links(h) if linked else [{}] * len(frame)
    for row, link in zip(frame.to_dict("records"), links, strict=True):
        by_case.setdefault(row["case"], {})[row["run_index"]] = {**row, "_report": link.get("report")}
    rows = []
    for case, runs in by_case.items():
        line = [case]
        for i in range(len(h.labels)):
            r = runs.get(i)
            if r is None:
                cells = ["absent"]
            elif r["status"] != Status.OK:
                cells = [str(r["status"])]
            else:
                shown = value(r["throughput_img_s"])
                cells = [f"[{shown}](<{r['_report']}>)" if r["_report"] else shown]
            line += cells + ([_ratio(r["speedup"]) if r else "-"] if i else [])
        for column, _ in extras:
            for i in range(len(h.labels)):
                v = runs.get(i, {}).get(column)
                line.append("-" if v is None or v != v else (f"{v:.1%}" if column == "mfu" else value(v)))
        rows.append(line)
    return header, rows


def print_hardware(h: HardwareComparison, console: Any = None) -> None:
    """Print the runs, the matching rule, the geometric means and the per-case table with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for i, (label, path) in enumerate(zip(h.labels, h.run_dirs, strict=True)):
        console.print(f"[bold][{i}][/] {label}  [dim]{path}[/]" + ("  (reference)" if i == 0 else ""))
    console.print(h.rule, style="dim")
    tables = [("Geometric mean speedup over [0]", summary_rows(h))]
    if len(h.labels) > 2:
        tables.append(("Every pair of runs: geometric-mean throughput ratio", pair_rows(h)))
    for title, (header, rows) in (*tables, ("Cases", case_rows(h))):
        table = Table(title=title, title_justify="left", title_style="bold")
        for col in header:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for note in h.notes:
        console.print(f"note: {note}", style="yellow")


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows[:MARKDOWN_ROWS]]
    if len(rows) > MARKDOWN_ROWS:
        lines.append(f"\n... and {len(rows) - MARKDOWN_ROWS} more cases (use --format json for all)")
    return "\n".join(lines)


def hardware_markdown(h: HardwareComparison) -> str:
    """The comparison as GitHub-flavoured markdown."""
    out = ["### harness compare --hardware", ""]
    out += [f"- [{i}] {label} (`{path}`)" for i, (label, path) in enumerate(zip(h.labels, h.run_dirs, strict=True))]
    out += ["", h.rule.capitalize() + ".", "", "#### Geometric mean speedup over [0]", ""]
    out += [_md_table(*summary_rows(h)), ""]
    if len(h.labels) > 2:
        out += ["#### Every pair of runs: geometric-mean throughput ratio", "", _md_table(*pair_rows(h)), ""]
    out += ["#### Cases", "", _md_table(*case_rows(h, linked=True)), ""]
    if h.notes:
        out += ["**Notes**", ""] + [f"- {note}" for note in h.notes] + [""]
    return "\n".join(out).rstrip() + "\n"


def hardware_json(h: HardwareComparison) -> str:
    """Every case row, summary row and pair of runs as indented JSON: ``runs`` (label, run_dir), ``rule``,
    ``notes``, ``summary``, ``pairs`` (a, b, cases, geomean, min, max) and ``cases`` (the columns of
    ``HardwareComparison.frame``, and ``links``: ``report`` and ``traces`` of the case in its run folder where
    they exist); a value that would be null or empty is left out (``prune``)."""
    data = h.to_dict()
    for row, links in zip(data["cases"], row_links(h), strict=True):
        row["links"] = links
    return json.dumps(prune(finite(data)), indent=2, allow_nan=False, default=str)
