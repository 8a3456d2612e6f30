"""``harness compare``: flag regressions of a run against a baseline or its history, or compare hardware.

``harness compare BASELINE... CANDIDATE`` and ``harness compare --history N --root DIR CANDIDATE`` print a table
(or ``--format json|markdown``), write ``regressions.json`` and ``summary.md`` to ``--out`` (default: the
candidate's run folder) and exit 1 under ``--fail-on regression`` when a case regressed or newly failed, and under
``--fail-on inconclusive`` also when a case or the whole comparison is inconclusive (a noisy case, a run that looks
busy). Input the loader skipped (lines, or runs under ``--root`` whose manifest cannot be read) is listed in the
notes and on stderr, and makes the exit code ``harness.store.skips.EXIT_SKIPPED`` when no other code applies.
Every output lists a flagged case once, its throughput and step time side by side, with links to the case in the
run's ``report.html`` and to its traces where the run folder has them (``harness.regress.render``, whose docstring
lists the keys of ``regressions.json``). ``harness compare --hardware RUN_A RUN_B ...`` puts runs from different
machines side by side.
"""

from __future__ import annotations

HELP = "compare a run against a baseline or its history and flag regressions; or compare hardware (--hardware)"


def add_arguments(parser) -> None:
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="baseline run folder(s), then the candidate run folder last ('latest': the newest run under --root); "
        "with --hardware, the runs to put side by side (the first is the reference)",
    )
    parser.add_argument("--history", type=int, metavar="N", help="baseline: the last N matching runs under --root")
    parser.add_argument("--root", default="results", help="results folder searched by --history (default: results)")
    parser.add_argument("--format", choices=["table", "json", "markdown"], default="table", help="what to print")
    parser.add_argument(
        "--threshold", type=float, help="relative change that counts (default: the suite's regression.threshold, 0.05)"
    )
    parser.add_argument(
        "--metric-threshold",
        action="append",
        default=[],
        metavar="METRIC=FRACTION",
        help="a threshold for one metric, e.g. rss_peak_mib=0.10 (repeatable)",
    )
    parser.add_argument("--p", type=float, default=0.001, help="significance level of the U test (default: 0.001)")
    parser.add_argument(
        "--fail-on",
        choices=["regression", "inconclusive", "never"],
        default="never",
        help="exit 1 when a case regressed or newly failed (regression), or also when a case or the whole "
        "comparison is inconclusive (inconclusive); default: never",
    )
    parser.add_argument(
        "--max-interval",
        type=float,
        metavar="FRACTION",
        help="widest relative 95%% interval of a case's throughput that still allows a verdict on its timed "
        "metrics; wider is inconclusive (default: twice the threshold)",
    )
    parser.add_argument("--out", metavar="DIR", help="where to write regressions.json and summary.md")
    parser.add_argument(
        "--allow-mismatch", action="store_true", help="compare across suites or environment fingerprints"
    )
    parser.add_argument("--hardware", action="store_true", help="compare runs of different machines side by side")
    parser.add_argument("--html", metavar="FILE", help="with --hardware: also write an HTML report")


def _console():
    import sys

    from rich.console import Console

    # Logs of a nightly job are not terminals; 80 columns would fold every table.
    return Console() if sys.stdout.isatty() else Console(width=160, soft_wrap=False)


def _show(fmt: str, result, as_json, as_markdown, print_table) -> None:
    """Print ``result`` in the ``--format`` asked for: JSON, markdown, or a table on the console."""
    if fmt == "json":
        print(as_json(result))
    elif fmt == "markdown":
        print(as_markdown(result), end="")
    else:
        print_table(result, _console())


def _metric_thresholds(items: list[str]) -> dict[str, float]:
    from harness.errors import HarnessError

    out = {}
    for item in items:
        name, sep, fraction = item.partition("=")
        try:
            out[name.strip()] = float(fraction)
        except ValueError:
            sep = ""
        if not sep:
            raise HarnessError(f"--metric-threshold {item!r}: write METRIC=FRACTION, e.g. rss_peak_mib=0.10")
    return out


def _write(folder, files: dict[str, str]) -> list[str]:
    from pathlib import Path

    from harness.errors import StoreError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    except OSError as exc:
        raise StoreError(
            f"cannot write to {folder} ({exc.strerror or exc}); choose another folder with --out DIR"
        ) from None
    return [str(folder / name) for name in files]


def _hardware(args) -> int:
    import sys

    from harness.errors import HarnessError
    from harness.regress import hardware_compare, pairing_for
    from harness.regress.render_hardware import hardware_json, hardware_markdown, print_hardware
    from harness.store.loader import read_store
    from harness.store.skips import exit_code, print_skips

    runs, skips = [], []
    for path in args.runs:
        store = read_store([path])
        if not store.runs:
            raise HarnessError(f"{path} cannot be read: " + "; ".join(str(s) for s in store.skips))
        runs += store.runs
        skips += store.all_skips
    # Measured runs held against imported (published) ones pair cases without batch size (NEAREST_BATCH).
    result = hardware_compare(runs, pairing_for(runs))
    _show(args.format, result, hardware_json, hardware_markdown, print_hardware)
    if args.out:
        written = _write(args.out, {"hardware.json": hardware_json(result), "hardware.md": hardware_markdown(result)})
        print("wrote " + ", ".join(written), file=sys.stderr)
    if args.html:
        from harness.report import write_hardware_report  # plotly and jinja2: only for the page

        write_hardware_report(result, args.html)
        print(f"wrote {args.html}", file=sys.stderr)
    print_skips("compare", skips)
    return exit_code(skips)


def run(args) -> int:
    import warnings

    # The loader warns about skipped lines; the comparison lists them in its notes, so say it once, there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _compare(args)


def _compare(args) -> int:
    import sys

    from harness.errors import HarnessError
    from harness.regress import Thresholds, compare
    from harness.regress.baseline import (
        check_compatible,
        history_size,
        latest_run,
        read_baselines,
        read_candidate,
        regression_settings,
        select_history,
        suite_baseline_path,
    )
    from harness.regress.render import case_links, markdown, print_table, to_json
    from harness.store.skips import exit_code, print_skips

    if args.hardware:
        return _hardware(args)
    if args.html:
        raise HarnessError("--html goes with --hardware; for a run's report use 'harness report RUN -o FILE'")
    *baseline_paths, candidate_path = args.runs
    skips = []  # run folders the loader skipped; those skipped inside a run are in its Run.skips
    if candidate_path == "latest":
        candidate_path = latest_run(args.root, skips)
    candidate = read_candidate(candidate_path, skips)
    settings = regression_settings(candidate.manifest)
    threshold = args.threshold if args.threshold is not None else settings.get("threshold", 0.05)
    if baseline_paths and args.history is not None:
        raise HarnessError("give baseline run folders or --history N, not both")
    history = args.history
    if not baseline_paths and history is None:
        history = history_size(settings.get("baseline"))
        if not history and settings.get("baseline"):
            baseline_paths = [suite_baseline_path(settings["baseline"], candidate.manifest)]
    if not baseline_paths and history is None:
        raise HarnessError(
            "nothing to compare against: name a baseline run folder before the candidate, or use --history N "
            "(the candidate's suite sets no regression.baseline)"
        )
    if history is not None:
        baselines, notes = select_history(candidate, args.root, history, args.allow_mismatch, skips)
    else:
        baselines, notes = read_baselines(baseline_paths, candidate, skips)
    notes[:0] = [str(s) for s in skips]
    notes += check_compatible(baselines, candidate, args.allow_mismatch)
    thresholds = Thresholds(
        relative=threshold, p=args.p, per_metric=_metric_thresholds(args.metric_threshold), interval=args.max_interval
    )
    comparison = compare(baselines, candidate, thresholds)
    comparison.notes[:0] = notes
    folder = args.out or candidate.path
    # Links to each case in the runs' reports and traces: as the runs were named, and from summary.md's folder.
    links = case_links(comparison)
    written = _write(
        folder,
        {
            "regressions.json": to_json(comparison, links),
            "summary.md": markdown(comparison, case_links(comparison, relative_to=folder)),
        },
    )
    _show(
        args.format,
        comparison,
        lambda c: to_json(c, links),
        lambda c: markdown(c, links),
        lambda c, console: print_table(c, console, links),
    )
    print("wrote " + ", ".join(written), file=sys.stderr)
    skips += [s for run in (*baselines, candidate) for s in run.skips]
    print_skips("compare", skips)
    return exit_code(skips, 1 if comparison.fails(args.fail_on) else 0)
