"""A Comparison as a terminal table (rich), as markdown for a CI comment, and as JSON for ``regressions.json``.

Every output says what a change had to pass (threshold and test), which test decided each flagged metric and its
p or intervals, why a case or the whole comparison is inconclusive (which run looks busy, which side was noisy),
and what was left out; the unchanged cases are counted, not listed, so a nightly of hundreds of cases prints the
few lines that need a person.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.regress.compare import BUCKETS, CaseResult, Comparison, MetricChange

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


#: The columns of the inconclusive cases' table.
NOISE_HEADER = ["case", "baseline img/s", "candidate img/s", "change", "why inconclusive"]


def metric_rows(cases: list[CaseResult]) -> list[list[str]]:
    """One row per changed metric: case, metric, baseline, candidate, change, what decided."""
    rows = []
    for case in cases:
        for m in case.changed():
            runs = f" (median of {m.baseline_runs} runs)" if m.baseline_runs > 1 else ""
            rows.append(
                [
                    case.key,
                    m.metric,
                    value(m.baseline, m.unit) + runs,
                    value(m.candidate, m.unit),
                    f"{m.change:+.1%}",
                    decided_by(m),
                ]
            )
    return rows


def noise_rows(cases: list[CaseResult]) -> list[list[str]]:
    """One row per inconclusive case: case, throughput on both sides and its change, and why."""
    rows = []
    for case in cases:
        m = case.metric("throughput_img_s")
        numbers = [value(m.baseline, m.unit), value(m.candidate, m.unit), f"{m.change:+.1%}"] if m else ["-"] * 3
        rows.append([case.key, *numbers, "; ".join(case.noise)])
    return rows


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


def print_table(c: Comparison, console: Any = None) -> None:
    """Print the comparison to the terminal with rich: counts, the tables that need attention, steps, notes."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(f"[bold]candidate[/] {c.candidate_run}")
    console.print(f"[bold]baseline[/]  {baseline_text(c)}")
    console.print(rule(c), style="dim")

    def table(title: str, header: list[str], rows: list[list[str]], style: str) -> None:
        if not rows:
            return
        t = Table(title=title, title_style=style, title_justify="left", show_lines=False)
        for h in header:
            t.add_column(h, overflow="fold")
        for row in rows[:TERMINAL_ROWS]:
            t.add_row(*row)
        console.print(t)
        if len(rows) > TERMINAL_ROWS:
            console.print(f"... and {len(rows) - TERMINAL_ROWS} more rows in regressions.json", style="dim")

    metric_header = ["case", "metric", "baseline", "candidate", "change", "decided by"]
    status_header = ["case", "baseline", "candidate", "message"]
    table("Regressed", metric_header, metric_rows(c.regressed), "bold red")
    table("Newly failing", status_header, status_rows(c.newly_failing), "bold red")
    table("Improved", metric_header, metric_rows(c.improved), "bold green")
    table("Inconclusive", NOISE_HEADER, noise_rows(c.buckets["inconclusive"]), "bold yellow")
    table("Fixed", status_header, status_rows(c.fixed), "green")
    table("Still failing", status_header, status_rows(c.still_failing), "yellow")
    table("Steps in the history (throughput)", ["case", "moved at", "change", "came back"], step_rows(c), "bold")
    for bucket in ("missing", "new"):
        if c.buckets[bucket]:
            console.print(f"[bold]{LABELS[bucket]}[/] ({len(c.buckets[bucket])}): {_listing(c.buckets[bucket], 20)}")
    for note in c.notes:
        console.print(f"note: {note}", style="yellow")
    for line in busy_lines(c):
        console.print(line, style="bold yellow")
    console.print(count_line(c))
    style = "bold red" if c.failed else "bold yellow" if c.inconclusive_anywhere else "bold green"
    console.print(headline(c), style=style)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    shown = rows[:MARKDOWN_ROWS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in shown]
    if len(rows) > len(shown):
        lines.append(f"\n... and {len(rows) - len(shown)} more rows in regressions.json")
    return "\n".join(lines)


def markdown(c: Comparison) -> str:
    """The summary for a CI comment (GitHub-flavoured markdown): headline, counts, flagged cases, notes."""
    out = [f"### harness compare: {headline(c)}", ""]
    out += [f"Candidate `{c.candidate_run}` against {baseline_text(c, '`')}."]
    out += ["", rule(c), "", count_line(c) + ".", ""]
    if c.busy:
        out += (
            ["#### Inconclusive at run level", ""]
            + [f"- {line.removeprefix('run inconclusive: ')}" for line in busy_lines(c)]
            + [""]
        )
    metric_header = ["case", "metric", "baseline", "candidate", "change", "decided by"]
    status_header = ["case", "baseline", "candidate", "message"]
    for bucket, header, rows in (
        ("regressed", metric_header, metric_rows(c.regressed)),
        ("newly_failing", status_header, status_rows(c.newly_failing)),
    ):
        if rows:
            out += [f"#### {LABELS[bucket].capitalize()} ({len(c.buckets[bucket])})", "", _md_table(header, rows), ""]
    folded = [
        ("inconclusive", NOISE_HEADER, noise_rows(c.buckets["inconclusive"])),
        ("improved", metric_header, metric_rows(c.improved)),
        ("fixed", status_header, status_rows(c.fixed)),
        ("still_failing", status_header, status_rows(c.still_failing)),
    ]
    for bucket, header, rows in folded:
        if rows:
            title = f"{LABELS[bucket].capitalize()} ({len(c.buckets[bucket])})"
            out += [f"<details><summary>{title}</summary>", "", _md_table(header, rows), "", "</details>", ""]
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


def to_json(c: Comparison) -> str:
    """``regressions.json``: the whole comparison, every case and metric (one case per line)."""
    data = c.to_dict()
    try:
        return dumps(data) + "\n"
    except ValueError:  # a NaN or infinity slipped into a value: write null rather than invalid JSON
        return dumps(finite(data)) + "\n"
