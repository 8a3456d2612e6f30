"""``harness run SUITE``: measure a suite's cases and write a run folder (and its report)."""

from __future__ import annotations

HELP = "run a suite: measure every case and write a run folder with records, manifest and report"


def add_arguments(parser) -> None:
    parser.add_argument("suite", nargs="?", help="suite YAML file (not needed with --resume)")
    parser.add_argument("--out", default="results", help="results folder (default: results)")
    parser.add_argument("--filter", action="append", metavar="GLOB", help="only cases whose id matches (repeatable)")
    parser.add_argument(
        "--resume", metavar="RUN_DIR", help="finish an interrupted run without repeating finished cases"
    )
    parser.add_argument("--dry-run", action="store_true", help="list the cases that would run, run nothing")
    parser.add_argument("--profile", action="append", metavar="GLOB", help="also profile the cases whose id matches")
    parser.add_argument("--no-report", action="store_true", help="do not write the run's HTML report at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument(
        "--nproc-per-node", metavar="N", help="workers on this node (an int, or 'auto'); launches torchrun"
    )
    parser.add_argument("--nnodes", metavar="N", help="number of nodes (torchrun's --nnodes, e.g. 2 or 1:4)")
    parser.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="rendezvous endpoint for multi-node runs")
    parser.add_argument("--max-restarts", type=int, default=None, help="restarts of a failed worker group")
    parser.add_argument(
        "--rdzv-timeout", type=int, default=None, metavar="S", help="seconds to wait for all nodes (default 900)"
    )
    from harness.commands.validate import add_max_cases

    add_max_cases(parser)


def run(args) -> int:
    import contextlib
    from pathlib import Path

    from harness.errors import HarnessError
    from harness.launch.session import LaunchSettings, RunSession, select_cases
    from harness.suite import load_suite

    stack = contextlib.ExitStack()
    if args.resume:
        extra = [
            flag
            for flag, given in (("SUITE", args.suite), ("--filter", args.filter), ("--dry-run", args.dry_run))
            if given
        ]
        if extra:
            raise HarnessError(
                f"--resume finishes a run with the suite and cases it began with; drop {', '.join(extra)} "
                "(or start a new run without --resume)"
            )
        from harness.launch.elastic import refuse_live_workers
        from harness.store.rundir import RunFolder
        from harness.suite import Suite

        refuse_live_workers(Path(args.resume))  # a distributed run whose launcher died may still be measuring
        if Path(args.resume).is_dir():
            stack.enter_context(RunFolder(args.resume).lock())  # an inline run that is still measuring
        session = RunSession.resume(Path(args.resume))
        suite = Suite.from_resolved(session.manifest.suite)  # the suite as it was when the run began
        if session.manifest.launch is not None:  # a run its launcher started through torchrun: relaunch it
            from harness.launch.elastic import launch_distributed

            return report(launch_distributed(args, suite, session=session))
        settings = LaunchSettings.resolve(args, suite, session.cases, session.manifest)
    else:
        if not args.suite:
            raise HarnessError("name a suite file (harness run suites/smoke.yaml), or --resume RUN_DIR")
        suite = load_suite(Path(args.suite), max_cases=args.max_cases)
        if args.dry_run:
            cases = select_cases(suite.cases(), args.filter)
            for case in cases:
                print(case.id)
            print(f"{len(cases)} cases (dry run: nothing measured)")
            return 0
        settings = LaunchSettings.resolve(args, suite, suite.cases())
        if settings.distributed:
            from harness.launch.elastic import launch_distributed

            return report(launch_distributed(args, suite))
        session = RunSession.open(suite, Path(args.out), args.filter)
        stack.enter_context(session.folder.lock())
    from harness.launch.inline import run_inline
    from harness.launch.session import RunOutcome

    with stack:
        status, records = run_inline(session, settings)
    from harness.store.record import Status

    # Failures are data, but a run that measured nothing at all should not look like a green nightly.
    measured = any(r.get("status") == Status.OK for r in records) or not records
    code = {"interrupted": 130, "failed": 1}.get(status, 0 if measured else 1)
    return report(RunOutcome(status, records, session.run_dir, code))


def report(outcome) -> int:
    """Print how a run ended (its summary, the DDP scaling table when it has one, what went wrong) and, last, the
    run folder; returns the exit code."""
    import sys

    if outcome.records is not None:
        print_summary(outcome.records)
        if outcome.scaling:
            print_scaling(outcome.records)
    for line in outcome.messages:
        print(line, file=sys.stderr)
    if outcome.run_dir is not None:
        print(run_dir_line(outcome.run_dir))
    return outcome.code


def _console(file):
    import sys

    from rich.console import Console

    console = Console(file=file or sys.stdout)
    if not console.is_terminal:
        console = Console(file=file or sys.stdout, width=200)
    return console


def print_summary(records: list[dict], file=None) -> None:
    """A table of the run's records: case, status, throughput (from the median step, the record's
    ``throughput_img_s``) with its interval, step time, memory; in the note, a noisy case's first reason (measured
    under contention, or stalls among its steps) and why a case did not run."""
    from rich.table import Table

    from harness.store.record import Record, Status

    table = Table(title="results")
    table.add_column("case", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in ("img/s", "95% CI", "median ms", "p90 ms", "GMACs dev", "mem MiB"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("note", overflow="fold", max_width=60)
    for r in map(Record.from_dict, records):
        if r.ok:
            ci = r.throughput_ci95 or [None, None]
            mem = r.peak_allocated_mib or r.rss_peak_mib
            table.add_row(
                r.case_id,
                Status.OK.value,
                f"{r.throughput_img_s:.1f}",
                f"{ci[0]:.1f}-{ci[1]:.1f}" if ci[0] is not None else "-",
                f"{r.step_ms_median:.2f}",
                f"{r.step_ms_p90:.2f}",
                f"{r.ops_deviation:+.2%}" if r.ops_deviation is not None else "-",
                f"{mem:.0f}" if mem else "-",
                _note(r),
            )
        else:
            colour = "yellow" if r.status == Status.SKIPPED else "red"
            table.add_row(r.case_id or "?", f"[{colour}]{r.status}", *["-"] * 6, r.message or "")
    _console(file).print(table)


def _note(r) -> str:
    """The note of a measured case: ``noisy: <first reason>`` when it is marked noisy, then its message."""
    from rich.markup import escape

    parts = []
    if r.noisy:
        first = (r.noise or ["reason not recorded"])[0]
        more = f" (+{len(r.noise) - 1} more)" if len(r.noise or []) > 1 else ""
        parts.append(f"[yellow]noisy[/]: {escape(first)}{more}")
    if r.message:
        parts.append(escape(r.message))
    return "; ".join(parts)


def print_scaling(records: list[dict], file=None) -> None:
    """A table of the DDP units: ranks, per-rank and global throughput (img/s) and scaling efficiency."""
    from harness.store.record import Record

    units: dict[tuple[str, int], list[Record]] = {}
    for r in map(Record.from_dict, records):
        if r.global_throughput_img_s is not None or int(r.world_size or 1) > 1:
            units.setdefault((r.case_id, int(r.world_size or 1)), []).append(r)
    if not units:
        return
    from rich.table import Table

    table = Table(title="ddp scaling")
    table.add_column("case", no_wrap=True)
    for col in ("ranks", "img/s per rank", "global img/s", "efficiency"):
        table.add_column(col, justify="right", no_wrap=True)
    for (case_id, k), rows in sorted(units.items()):
        ok = [r.throughput_img_s for r in rows if r.ok]
        head = rows[0]
        table.add_row(
            case_id,
            str(k),
            f"{sum(ok) / len(ok):.1f}" if ok else "-",
            f"{head.global_throughput_img_s:.1f}" if head.global_throughput_img_s else "-",
            f"{head.scaling_efficiency:.1%}" if head.scaling_efficiency else "-",
        )
    _console(file).print(table)


def run_dir_line(run_dir) -> str:
    """The last line ``harness run`` prints, for scripts to pick up."""
    return f"run folder: {run_dir}"
