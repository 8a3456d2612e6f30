"""A Comparison as a terminal table (rich), as markdown for a CI comment, and as JSON for ``regressions.json``.

Every output says what a change had to pass (threshold and test), which test decided each flagged metric and its
p or intervals, why a case or the whole comparison is inconclusive (which run looks busy, which side was noisy),
and what was left out; the unchanged cases are counted, not listed, so a nightly of hundreds of cases prints the
few lines that need a person. Each flagged case is one row, its throughput and step time side by side, and links to
the case in the run's report (``<run>/report.html#<case anchor>``) when the run folder has a report, and to its
traces when the run profiled it (``case_links``).

``regressions.json`` (``to_json``) holds no empty value: a key whose value would be null, an empty list or an empty
object is left out (``prune``), except ``recovered_run`` of a step, whose null says the case has not come back.
Its keys:

- ``baseline_runs``, ``candidate_run``: the run folders (or run ids) compared.
- ``thresholds``: ``relative``, ``p``, ``min_samples``, ``history_k``, ``interval`` (the widest relative throughput
  interval still judged) and ``per_metric`` (only when a metric has its own threshold).
- ``failed`` (what ``--fail-on regression`` exits 1 on), ``compared_nothing``.
- ``counts``: every bucket with its number of cases, zeros included.
- ``notes``: what was left out or could not be compared (only when there are some).
- ``buckets``: only the buckets that hold cases; each case has ``key``, ``bucket``, ``case`` (model, mode, batch
  size, ...), ``baseline_status`` and ``candidate_status`` (where the case is on that side), ``message`` (a
  failure's), ``metrics`` (each with ``metric``, ``unit``, ``higher_is_better``, ``baseline``, ``candidate``,
  ``change``, ``threshold``, ``verdict``, ``test``, and as the test gives them ``p``, ``baseline_interval``,
  ``candidate_interval``, ``n_baseline``, ``n_candidate``, ``baseline_runs``, ``note``), ``notes``, ``noise`` (why
  an inconclusive case's timed metrics were not judged) and ``links``: ``report`` (the case in the candidate's
  report; the baseline's for a missing case), ``baseline_report`` (the case in the last baseline run's report) and
  ``traces`` (the case's profiler traces), each only when it exists.
- ``steps``: with a history, per case whose throughput moved in a step: ``run``, ``change``, ``before``,
  ``after``, ``recovered_run``, ``metric`` and the step's position.
- ``run_inconclusive``: only when a run looks busy: ``role``, ``run``, ``against``, ``source``, ``reason``,
  ``probes``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.regress.compare import BUCKETS, CaseResult, Comparison, MetricChange

#: Links of a case by kind (``report``, ``baseline_report``, ``traces``), per case key.
Links = Mapping[str, Mapping[str, str]]
#: The metrics each flagged case shows in columns of their own; the others it shows when they changed.
TIMED_COLUMNS = ("throughput_img_s", "step_ms_median")

LABELS = {
    "regressed": "regressed",
    "newly_failing": "newly failing",
    "improved": "improved",
    "inconclusive": "inconclusive",
    "fixed": "fixed",
    "still_failing": "still failing",
    "missing": "missing (baseline only)",
    "new": "new (candidate only)",
    "unchanged": "unchanged",
}
#: Rows per table in the markdown summary; GitHub refuses comments over 65,536 characters.
MARKDOWN_ROWS = 60
#: Rows per table in the terminal; the rest are in regressions.json.
TERMINAL_ROWS = 100
#: Busy-run lines shown (one per baseline run the candidate was held against); the rest are in regressions.json.
BUSY_LINES = 5


def value(v: float | None, unit: str = "") -> str:
    """A metric value with four significant digits and its unit."""
    if v is None or not math.isfinite(v):
        return "-"
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return f"{text} {unit}".strip()


def decided_by(m: MetricChange) -> str:
    """Which test decided, with its p or intervals, in a few words."""
    if m.test == "mann-whitney":
        return f"U test p={m.p:.1e} (n={m.n_baseline}/{m.n_candidate})"
    if m.test == "bootstrap-intervals" and m.baseline_interval and m.candidate_interval:
        (a, b), (c, d) = m.baseline_interval, m.candidate_interval
        return f"95% intervals {a:.4g}-{b:.4g} vs {c:.4g}-{d:.4g}"
    return m.note or "threshold only"


def rule(c: Comparison) -> str:
    """What a change had to pass, in one sentence."""
    th = c.thresholds
    extra = ", ".join(f"{k} {v:.0%}" for k, v in th.per_metric.items())
    return (
        f"A change counts when it exceeds {th.relative:.0%}{f' ({extra})' if extra else ''} and the per-step samples "
        f"differ by a Mann-Whitney U test at p < {th.p:g} (bootstrap 95% intervals that do not overlap when a side "
        f"has fewer than {th.min_samples} samples); metrics without samples are judged on the threshold alone. "
        f"A case is inconclusive when either side was noisy (contention or stalled steps, as its record says) or "
        f"its throughput's 95% interval is wider than {th.max_interval():.0%}: its timed metrics are not judged."
    )


def baseline_text(c: Comparison, quote: str = "") -> str:
    """The baseline in words: its run, or the first and last runs of its history."""
    first, last = f"{quote}{c.baseline_runs[0]}{quote}", f"{quote}{c.baseline_runs[-1]}{quote}"
    return first if len(c.baseline_runs) == 1 else f"a history of {len(c.baseline_runs)} runs, {first} ... {last}"


def inconclusive_text(c: Comparison) -> str:
    """What is inconclusive, in a few words (empty when nothing is): the cases, and which run(s) look busy."""
    parts = []
    if c.buckets["inconclusive"]:
        n = len(c.buckets["inconclusive"])
        parts.append(f"{n} case{'s' if n != 1 else ''} inconclusive")
    roles = list(dict.fromkeys(b.role for b in c.busy))
    if roles:
        parts.append(" and ".join(roles) + (" look" if len(roles) > 1 else " looks") + " busy")
    return ", ".join(parts)


def headline(c: Comparison) -> str:
    """REGRESSION with what failed, NOTHING COMPARED, INCONCLUSIVE with what and why, or no regression; what is
    inconclusive is added after a regression too."""
    counts = c.counts()
    if c.compared_nothing:
        return "NOTHING COMPARED: no case is in both the baseline and the candidate"
    unsure = inconclusive_text(c)
    if c.failed:
        parts = [f"{counts[b]} {LABELS[b]}" for b in ("regressed", "newly_failing") if counts[b]]
        return "REGRESSION: " + ", ".join(parts) + (f"; INCONCLUSIVE: {unsure}" if unsure else "")
    if unsure:
        return f"INCONCLUSIVE: {unsure}; no regression among the cases that could be judged"
    return "no regression"


def busy_lines(c: Comparison) -> list[str]:
    """One line per run that looks busy: the run, what its probes read against the other's, and the rule."""
    out = []
    for b in c.busy[:BUSY_LINES]:
        allowed = max(g.allowed for g in b.gaps)
        probes = "start and end probes" if b.source == "health" else "peak probe"
        out.append(
            f"run inconclusive: {b.reason} ({b.role} {b.run}, against {b.against}; {probes}, beyond the {allowed:.0%} "
            "that their own spread and 10% between runs allow)" + (f"; {b.hint}" if b.hint else "")
        )
    if len(c.busy) > BUSY_LINES:
        out.append(f"run inconclusive: ... and {len(c.busy) - BUSY_LINES} more in regressions.json")
    return out


def count_line(c: Comparison) -> str:
    counts = c.counts()
    return ", ".join(f"{counts[b]} {LABELS[b]}" for b in BUCKETS if counts[b] or b in ("regressed", "unchanged"))


def case_id(key: str) -> str:
    """The case id of a comparison key (a DDP case's key names its rank after the id)."""
    return key.split(" [rank ", 1)[0]


def run_links(run: str | Path, key: str, relative_to: str | Path | None = None) -> dict[str, str]:
    """The links of case ``key`` (a case id, or a comparison key) in run folder ``run``: ``report`` (its row in the
    run's report) and ``traces`` (its profiler traces folder), each only where it exists; paths relative to
    ``relative_to`` when given."""
    from harness.store.rundir import RunFolder

    folder = RunFolder(run)
    out = {}

    def shown(path: Path) -> str:
        return os.path.relpath(path, relative_to) if relative_to is not None else str(path)

    if folder.report_path.is_file():
        # Only with a report to link to: the report package loads plotly and jinja2.
        from harness.report.anchors import case_anchor

        out["report"] = f"{shown(folder.report_path)}#{case_anchor(case_id(key))}"
    traces = folder.profile_dir(case_id(key))
    if traces.is_dir() and any(traces.iterdir()):
        out["traces"] = shown(traces)
    return out


def case_links(c: Comparison, relative_to: str | Path | None = None) -> dict[str, dict[str, str]]:
    """Per case key (of the cases the outputs list: every bucket but unchanged), its links: ``report`` (the case's
    row in the candidate's report, or the last baseline run's for a missing case), ``baseline_report`` (in the
    last baseline run's report) and ``traces`` (the case's profiler traces folder), each only when that file or
    folder exists. Runs given as records rather than folders have none. Paths are relative to ``relative_to``
    when given (a file written there links from where it lies), else as the runs were named."""
    base = Path(relative_to) if relative_to is not None else None
    candidate, baseline = c.candidate_run, c.baseline_runs[-1] if c.baseline_runs else None
    out: dict[str, dict[str, str]] = {}
    if not Path(candidate).is_dir() and not (baseline and Path(baseline).is_dir()):
        return out
    for bucket in BUCKETS:
        if bucket == "unchanged":
            continue
        for case in c.buckets[bucket]:
            mine = run_links(candidate, case.key, base) if bucket != "missing" else {}
            theirs = run_links(baseline, case.key, base) if baseline else {}
            links = dict(mine)
            if bucket == "missing":
                links = dict(theirs)
            elif "report" in theirs:
                links["baseline_report"] = theirs["report"]
            if links:
                out[case.key] = links
    return out


def _links_for(c: Comparison, links: Links | None) -> Links:
    return case_links(c) if links is None else links


def metric_text(m: MetricChange | None, bucket: str = "", unit: bool = False) -> str:
    """``4,013 -> 3,600 -10.3%``, and the verdict when it is neither unchanged nor the case's ``bucket`` (which
    the table's title says); ``-`` when not compared."""
    if m is None:
        return "-"
    shown = f"{value(m.baseline, m.unit if unit else '')} -> {value(m.candidate, m.unit if unit else '')}"
    shown += f" {m.change:+.1%}"
    return shown + (f" {m.verdict}" if m.verdict not in ("unchanged", bucket) else "")


def others_text(case: CaseResult) -> str:
    """The case's other metrics that did not stay unchanged (memory, energy), one after another."""
    return "; ".join(
        f"{m.metric} {metric_text(m, case.bucket, unit=True)}"
        for m in case.metrics
        if m.metric not in TIMED_COLUMNS and m.verdict != "unchanged"
    )


def decided_text(case: CaseResult) -> str:
    """What decided the case's changed metrics (each test once), and how many baseline runs the values are
    medians of."""
    changed = case.changed()
    said = list(dict.fromkeys(decided_by(m) for m in changed))
    runs = max((m.baseline_runs for m in case.metrics), default=1)
    if runs > 1:
        said.append(f"baseline: median of {runs} runs")
    return "; ".join(said)


#: The columns of the tables of flagged cases (one row per case); the last is "decided by" or "why inconclusive".
CASE_HEADER = ["case", "throughput (img/s)", "step time (ms)", "other metrics"]
#: The columns of the inconclusive cases' table.
NOISE_HEADER = [*CASE_HEADER, "why inconclusive"]


def case_rows(cases: list[CaseResult], why: bool = False) -> list[list[str]]:
    """One row per case: case, throughput and step time (baseline -> candidate, change, verdict), the other
    metrics that changed, and what decided (or, with ``why``, why the case is inconclusive)."""
    return [
        [
            case.key,
            metric_text(case.metric("throughput_img_s"), case.bucket),
            metric_text(case.metric("step_ms_median"), case.bucket),
            others_text(case),
            "; ".join(case.noise) if why else decided_text(case),
        ]
        for case in cases
    ]


def metric_rows(cases: list[CaseResult]) -> list[list[str]]:
    """One row per case (``case_rows``) with what decided."""
    return case_rows(cases)


def noise_rows(cases: list[CaseResult]) -> list[list[str]]:
    """One row per inconclusive case (``case_rows``) with why it is inconclusive."""
    return case_rows(cases, why=True)


def status_rows(cases: list[CaseResult]) -> list[list[str]]:
    return [[c.key, str(c.baseline_status), str(c.candidate_status), (c.message or "")[:160]] for c in cases]


def step_rows(c: Comparison) -> list[list[str]]:
    rows = []
    for key, steps in c.steps.items():
        for s in steps:
            back = f"yes, at {Path(s['recovered_run']).name}" if s["recovered_run"] else "no"
            change = f"{s['change']:+.1%} ({s['before']:.4g} -> {s['after']:.4g} img/s)"
            rows.append([key, Path(s["run"]).name, change, back])
    return rows


def _listing(cases: list[CaseResult], limit: int) -> str:
    keys = [c.key for c in cases]
    return ", ".join(keys[:limit]) + (f" ... and {len(keys) - limit} more" if len(keys) > limit else "")


def terminal_case(key: str, links: Links) -> str:
    """The case cell of a terminal table: the key, then the paths of its report anchor and traces folder (each
    line a path alone, which says what it is: ``.../report.html#case-...``, ``.../profiles/...``)."""
    mine = links.get(key) or {}
    lines = [key] + [mine[name] for name in ("report", "traces") if name in mine]
    return "\n".join(lines)


def markdown_case(key: str, links: Links) -> str:
    """The case cell of a markdown table: the key linked to the case in the report, and a link to its traces."""
    mine = links.get(key) or {}
    shown = f"[{key}](<{mine['report']}>)" if "report" in mine else key
    return shown + (f" ([traces](<{mine['traces']}>))" if "traces" in mine else "")


def _with_cases(rows: list[list[str]], show) -> list[list[str]]:
    return [[show(row[0]), *row[1:]] for row in rows]


STATUS_HEADER = ["case", "baseline", "candidate", "message"]


def flagged_tables(c: Comparison) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """The tables of flagged cases, one row per case, in output order: (bucket, style, header, rows)."""
    return [
        ("regressed", "bold red", [*CASE_HEADER, "decided by"], metric_rows(c.regressed)),
        ("newly_failing", "bold red", STATUS_HEADER, status_rows(c.newly_failing)),
        ("improved", "bold green", [*CASE_HEADER, "decided by"], metric_rows(c.improved)),
        ("inconclusive", "bold yellow", NOISE_HEADER, noise_rows(c.buckets["inconclusive"])),
        ("fixed", "green", STATUS_HEADER, status_rows(c.fixed)),
        ("still_failing", "yellow", STATUS_HEADER, status_rows(c.still_failing)),
    ]


def print_table(c: Comparison, console: Any = None, links: Links | None = None) -> None:
    """Print the comparison to the terminal with rich: counts, the tables that need attention (one row per case,
    with the path of its report anchor and traces; ``links`` defaults to ``case_links(c)``), steps, notes."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    links = _links_for(c, links)
    console.print(f"[bold]candidate[/] {escape(c.candidate_run)}")
    console.print(f"[bold]baseline[/]  {escape(baseline_text(c))}")
    console.print(rule(c), style="dim")

    def table(title: str, header: list[str], rows: list[list[str]], style: str) -> None:
        if not rows:
            return
        # A column no row fills ("other metrics" when only the timed ones changed) is left out.
        kept = [i for i, h in enumerate(header) if i == 0 or h != "other metrics" or any(r[i] for r in rows)]
        header, rows = [header[i] for i in kept], [[r[i] for i in kept] for r in rows]
        # With links, the case column takes a larger share of the width: its report path folds less.
        linked = any("\n" in str(r[0]) for r in rows)
        t = Table(title=title, title_style=style, title_justify="left", show_lines=linked, expand=linked)
        for i, h in enumerate(header):
            t.add_column(h, overflow="fold", ratio=(3 if i == 0 else 1) if linked else None)
        for row in rows[:TERMINAL_ROWS]:
            t.add_row(*(escape(str(cell)) for cell in row))
        console.print(t)
        if len(rows) > TERMINAL_ROWS:
            console.print(f"... and {len(rows) - TERMINAL_ROWS} more rows in regressions.json", style="dim")

    for bucket, style, header, rows in flagged_tables(c):
        table(LABELS[bucket].capitalize(), header, _with_cases(rows, lambda k: terminal_case(k, links)), style)
    table("Steps in the history (throughput)", ["case", "moved at", "change", "came back"], step_rows(c), "bold")
    for bucket in ("missing", "new"):
        if c.buckets[bucket]:
            console.print(
                f"[bold]{LABELS[bucket]}[/] ({len(c.buckets[bucket])}): {escape(_listing(c.buckets[bucket], 20))}"
            )
    for note in c.notes:
        console.print(f"note: {escape(note)}", style="yellow")
    for line in busy_lines(c):
        console.print(escape(line), style="bold yellow")
    console.print(count_line(c))
    style = "bold red" if c.failed else "bold yellow" if c.inconclusive_anywhere else "bold green"
    console.print(escape(headline(c)), style=style)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    shown = rows[:MARKDOWN_ROWS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in shown]
    if len(rows) > len(shown):
        lines.append(f"\n... and {len(rows) - len(shown)} more rows in regressions.json")
    return "\n".join(lines)


def markdown(c: Comparison, links: Links | None = None) -> str:
    """The summary for a CI comment (GitHub-flavoured markdown): headline, counts, flagged cases (one row per case,
    linked to the case in the report and to its traces; ``links`` defaults to ``case_links(c)``), notes."""
    links = _links_for(c, links)
    out = [f"### harness compare: {headline(c)}", ""]
    out += [f"Candidate `{c.candidate_run}` against {baseline_text(c, '`')}."]
    out += ["", rule(c), "", count_line(c) + ".", ""]
    if c.busy:
        out += (
            ["#### Inconclusive at run level", ""]
            + [f"- {line.removeprefix('run inconclusive: ')}" for line in busy_lines(c)]
            + [""]
        )
    for bucket, _, header, rows in flagged_tables(c):
        if not rows:
            continue
        title = f"{LABELS[bucket].capitalize()} ({len(c.buckets[bucket])})"
        table = _md_table(header, _with_cases(rows, lambda k: markdown_case(k, links)))
        if bucket in ("regressed", "newly_failing"):
            out += [f"#### {title}", "", table, ""]
        else:
            out += [f"<details><summary>{title}</summary>", "", table, "", "</details>", ""]
    if c.steps:
        rows = step_rows(c)
        out += ["<details><summary>Steps in the history (throughput)</summary>", ""]
        out += [_md_table(["case", "moved at", "change", "came back"], rows), "", "</details>", ""]
    for bucket in ("missing", "new"):
        if c.buckets[bucket]:
            out += [
                f"**{LABELS[bucket].capitalize()}** ({len(c.buckets[bucket])}): {_listing(c.buckets[bucket], 30)}",
                "",
            ]
    if c.notes:
        out += ["**Notes**", ""] + [f"- {note}" for note in c.notes[:MARKDOWN_ROWS]] + [""]
    return "\n".join(out).rstrip() + "\n"


#: Keys whose null is an answer, kept by ``prune``: a step's ``recovered_run`` (null: not come back).
MEANINGFUL_NULLS = frozenset({"recovered_run"})


def prune(obj: Any) -> Any:
    """``obj`` without the dict entries whose value is None, an empty list or an empty dict (after pruning their
    own contents), except the keys in ``MEANINGFUL_NULLS``; list items are kept as they are pruned."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            v = prune(v)
            if (v is None and k not in MEANINGFUL_NULLS) or (isinstance(v, (dict, list)) and not v):
                continue
            out[k] = v
        return out
    if isinstance(obj, (list, tuple)):
        return [prune(v) for v in obj]
    return obj


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None, so the JSON is valid for every reader."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, depth: int = 3, indent: str = "  ", _level: int = 0) -> str:
    """JSON indented down to ``depth`` levels, each deeper value on one line: ``regressions.json`` stays readable
    (one case per line) and is written by the C encoder, which ``indent=`` would bypass (5x slower)."""
    if _level >= depth or not isinstance(obj, (dict, list)) or not obj:
        return json.dumps(obj, allow_nan=False, default=str)
    pad, inner = indent * _level, indent * (_level + 1)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, depth, indent, _level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{dumps(v, depth, indent, _level + 1)}" for v in obj]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def to_json(c: Comparison, links: Links | None = None) -> str:
    """``regressions.json``: the whole comparison, every case and metric (one case per line), each flagged case
    with its ``links`` (default ``case_links(c)``), and no empty value (``prune``; the keys are in the module
    docstring)."""
    links = _links_for(c, links)
    data = c.to_dict()
    for cases in data["buckets"].values():
        for case in cases:
            if case["key"] in links:
                case["links"] = dict(links[case["key"]])
    data = prune(data)
    try:
        return dumps(data) + "\n"
    except ValueError:  # a NaN or infinity slipped into a value: write null rather than invalid JSON
        return dumps(prune(finite(data))) + "\n"
