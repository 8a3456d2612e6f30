"""Entry point of one rank: ``torchrun --nproc-per-node N -m harness.worker SUITE [--out DIR]``.

For users who launch the workers themselves (torchrun, Slurm's srun, a Kubernetes job): each process started
this way is one rank of the run, reads its place from torchrun's environment variables, and behaves exactly
like a worker started by ``harness run SUITE --nproc-per-node N``. Rank 0 opens the run folder under ``--out``
(or joins ``--run-dir``, or reopens ``--resume``), shows the progress of the whole run, merges the records at
the end, and prints the summary and, last, ``run folder: PATH``.
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness.worker",
        description="One rank of a distributed harness run; start it with torchrun (one process per device).",
    )
    parser.add_argument("suite", nargs="?", help="suite YAML file (not needed with --run-dir or --resume)")
    parser.add_argument("--out", default="results", help="results folder rank 0 opens the run under")
    parser.add_argument("--run-dir", metavar="DIR", help="join a run folder someone else opened (harness run does)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run with the same world size")
    parser.add_argument("--filter", action="append", metavar="GLOB", help="only cases whose id matches (repeatable)")
    parser.add_argument("--profile", action="append", metavar="GLOB", help="also profile the cases whose id matches")
    parser.add_argument("--no-report", action="store_true", help="do not write the run's HTML report at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on rank 0")
    # Set by `harness run`, which prints the summary itself once the agent returns.
    parser.add_argument("--launched-by-harness", action="store_true", help=argparse.SUPPRESS)
    return parser


def _main(argv: list[str] | None = None) -> int:
    from harness.errors import run_reporting

    args = build_parser().parse_args(argv)
    return run_reporting(f"harness.worker (rank {os.environ.get('RANK', '0')})", _rank, args)


def _rank(args) -> int:
    from harness.launch.distributed import run_rank

    result = run_rank(args)
    if result.run_dir is not None and not args.launched_by_harness:
        from harness.commands.run import report
        from harness.launch.session import RunOutcome

        # rank 0 of a run it opened itself (a bare torchrun): the summary is this process's to print
        return report(RunOutcome("", result.records, result.run_dir, result.code, scaling=True))
    return result.code


def main(argv: list[str] | None = None) -> int:
    """Run one rank; torch's error recorder writes a failure's traceback where the elastic agent reports it."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(_main)(argv)


if __name__ == "__main__":
    code = main()
    # Leave without the interpreter's teardown: the process group's and the samplers' native threads can race it
    # (a worker that finished its share was seen to abort at exit with "terminate called without an active
    # exception"), and everything this rank had to write is written and fsynced by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
