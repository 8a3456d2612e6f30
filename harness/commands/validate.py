"""``harness validate SUITE...``: check suite files without running anything."""

from __future__ import annotations

import sys

HELP = "check suite files (keys, types, choices, matrix) and count their cases; runs nothing"
DESCRIPTION = (
    "Validate each suite file and expand its matrix. Prints 'ok: FILE (N cases)' or every problem with its file, "
    "line and key. Above 10,000 cases it warns; above 100,000 (the matrix's combinations before exclude, plus "
    "include entries) it refuses, unless --max-cases lifts the cap. Exit code 0 when all files are valid, 2 "
    "otherwise."
)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (for --max-cases)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of cases, got {text[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_max_cases(parser) -> None:
    """The ``--max-cases N`` option, shared by ``harness validate`` and ``harness run``."""
    from harness.suite.bounds import MAX_CASES

    parser.add_argument(
        "--max-cases",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"refuse a suite of more than N cases (default {MAX_CASES}; counted from the matrix before exclude, "
        "plus include entries); raise it to run a larger suite",
    )


def add_arguments(parser) -> None:
    parser.add_argument("suites", nargs="+", metavar="SUITE", help="suite YAML files, e.g. suites/smoke.yaml")
    parser.add_argument("--list", action="store_true", help="also print each case id (* marks profiled cases)")
    add_max_cases(parser)


def run(args) -> int:
    from harness.suite import SuiteError, load_suite

    failed = 0
    for path in args.suites:
        try:
            suite = load_suite(path, max_cases=args.max_cases)
        except SuiteError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        cases = suite.cases()
        print(f"ok: {path} ({len(cases)} case{'s' if len(cases) != 1 else ''})")
        for warning in suite.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if args.list:
            for case in cases:
                print(f"  {case.id}{'  *' if case.profile else ''}")
    if failed and len(args.suites) > 1:
        print(f"{failed} of {len(args.suites)} suite files have problems", file=sys.stderr)
    return 2 if failed else 0
