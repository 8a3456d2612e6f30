"""``harness report RUN... [-o FILE]``: one self-contained HTML report of one or more runs."""

from __future__ import annotations

HELP = "write a self-contained HTML report (plotly, works offline) of one or more runs"


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders, records .jsonl files, or results folders holding runs")
    parser.add_argument(
        "-o",
        "--out",
        help="the HTML file to write (default: the run folder's report for a single run folder, else ./report.html)",
    )
    parser.add_argument(
        "--baseline",
        metavar="RUN",
        help="the run folder the changes section compares against (default: the oldest run of each suite and "
        "environment among RUN...)",
    )


def run(args) -> int:
    from pathlib import Path

    from harness.errors import StoreError
    from harness.report.data import prepare
    from harness.report.page import read_inputs, render, write_html
    from harness.store.rundir import RunFolder
    from harness.store.skips import exit_code, print_skips

    if args.baseline and not RunFolder(args.baseline).is_run():
        raise StoreError(f"--baseline {args.baseline}: not a run folder (no manifest.json); name one run folder")
    runs, skips = read_inputs([*args.runs, *([args.baseline] if args.baseline else [])])
    if args.out:
        out = Path(args.out)
    elif len(args.runs) == 1 and RunFolder(args.runs[0]).is_run():
        out = RunFolder(args.runs[0]).report_path
    else:
        out = Path(RunFolder.REPORT)
    data = prepare(runs, skips, baseline=args.baseline, base_dir=out.parent)
    write_html(render(data), out)
    print(f"wrote {out} ({len(runs)} run(s), {len(data.frame)} record(s), {out.stat().st_size / 2**20:.1f} MiB)")
    print_skips("report", data.skips)
    return exit_code(data.skips)
