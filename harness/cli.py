"""Command line: parse and dispatch only.

Each subcommand lives in ``harness/commands/<name>.py`` and exposes ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. Command modules import nothing heavy at module level, so ``harness --help`` stays fast;
torch, pandas and plotly are imported inside ``run``. A ``HarnessError`` becomes one message on stderr and exit
code 2; Ctrl-C becomes exit code 130 after the command has saved what it measured.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from harness import __version__


def _command_modules() -> dict:
    import harness.commands as pkg

    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
    return {name.replace("_", "-"): importlib.import_module(f"harness.commands.{name}") for name in names}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Benchmark and profile the ResNet family: run suites, compare runs, write reports.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules().items():
        name = getattr(module, "NAME", name)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Warnings from the harness (a truncated records line, a newer schema) are messages for the user, not for a
    # developer: print them without the source location.
    print(f"harness: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings

    from harness.errors import run_reporting

    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return run_reporting(f"harness {args.command}", args._run, args)


if __name__ == "__main__":
    sys.exit(main())
