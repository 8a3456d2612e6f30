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
    parser.add_argument("--no-report", action="store_true", help="do not write report.html at the end")
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
    from harness.launch.inline import print_summary, run_dir_line, run_inline
    from harness.launch.session import new_plan, resume_plan, run_lock, select_cases
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
        from harness.suite import Suite

        refuse_live_workers(Path(args.resume))  # a distributed run whose launcher died may still be measuring
        if Path(args.resume).is_dir():
            stack.enter_context(run_lock(Path(args.resume)))  # an inline run that is still measuring
        plan = resume_plan(Path(args.resume))
        settings = Suite.from_resolved(plan.manifest["suite"])  # the suite as it was when the run began
        if plan.manifest.get("launch"):  # a run its launcher started through torchrun: relaunch the same world
            from harness.launch.elastic import launch_distributed

            return launch_distributed(args, settings, plan=plan)
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
        if _distributed(args, suite):
            from harness.launch.elastic import launch_distributed

            return launch_distributed(args, suite)
        plan = new_plan(suite, Path(args.out), args.filter)
        settings = suite
    if not args.resume:
        stack.enter_context(run_lock(plan.run_dir))
    with stack:
        status, records = run_inline(
            plan,
            settings,
            profile_patterns=args.profile,
            report=not args.no_report,
            show_progress=not args.no_progress,
        )
    print_summary(records)
    print(run_dir_line(plan.run_dir))
    if status == "interrupted":
        return 130
    if status == "failed":
        return 1
    # Failures are data, but a run that measured nothing at all should not look like a green nightly.
    return 0 if any(r.get("status") == "ok" for r in records) or not records else 1


def _distributed(args, suite) -> bool:
    launch = getattr(suite, "launch", None)
    nproc = args.nproc_per_node or (getattr(launch, "nproc_per_node", 1) if launch else 1)
    if str(nproc).strip().lower() == "auto":
        from harness.launch.elastic import resolve_nproc

        nproc = resolve_nproc(nproc, suite.cases())
    nnodes = args.nnodes or getattr(launch, "nnodes", None)
    return (
        str(nproc) not in ("1", "None")
        or str(nnodes or 1) not in ("1", "1:1")
        or getattr(launch, "strategy", "sweep") == "ddp"
    )
