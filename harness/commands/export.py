"""``harness export RUN... -o FILE``: records of one or more runs as CSV or Parquet."""

from __future__ import annotations

HELP = "export the records of runs to CSV or Parquet"


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders, records .jsonl files, or results folders")
    parser.add_argument("-o", "--out", required=True, help="output file (.csv or .parquet)")
    parser.add_argument("--format", choices=["csv", "parquet"], help="format (default: from the file's suffix)")


def run(args) -> int:
    from harness.store import load
    from harness.store.export import export

    frame = load(args.runs)
    path = export(frame, args.out, args.format)
    print(f"wrote {len(frame)} records to {path}")
    return 0
