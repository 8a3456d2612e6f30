"""``harness site RESULTS -o DIR``: the static, offline home page of a results folder (see ``harness.site``)."""

from __future__ import annotations

HELP = "build or update a static, offline site of a results folder: index of verdicts, trend pages, run reports"
DESCRIPTION = (
    "Build (or bring up to date) a static folder that works offline: index.html with the latest verdict of each "
    "suite and device and the open regressions, one trend page per suite and device, and the report of every run. "
    "A second build only adds, rebuilds or removes what changed in RESULTS."
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "results", metavar="RESULTS", help="the results folder that 'harness run --out DIR' writes run folders to"
    )
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="the site folder to write or update")


def run(args) -> int:
    from harness.site import build_site
    from harness.store.skips import exit_code, print_skips

    done = build_site(args.results, args.out)
    print(f"wrote {done.summary()}")
    print_skips("site", done.skips)
    return exit_code(done.skips)
