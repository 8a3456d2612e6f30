"""``harness schema``: the JSON Schema of the suite format, for editors and CI checks."""

from __future__ import annotations

HELP = "print the JSON Schema of suite files (for editor completion and validation)"
DESCRIPTION = (
    "Print the JSON Schema (draft 2020-12) of the suite YAML format, with a description of every key. Point an "
    "editor at it, e.g. with a first line '# yaml-language-server: $schema=suite.schema.json' in a suite file."
)


def add_arguments(parser) -> None:
    parser.add_argument("--out", metavar="FILE", help="write the schema to FILE instead of printing it")


def run(args) -> int:
    import json
    from pathlib import Path

    from harness.errors import HarnessError
    from harness.suite.schema import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if not args.out:
        print(text, end="")
        return 0
    out = Path(args.out)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"cannot write the schema to {out}: {exc.strerror}; choose a writable path") from None
    print(f"wrote {out}")
    return 0
