"""``harness export RUN... -o FILE``: records of one or more runs as CSV or Parquet."""

from __future__ import annotations

HELP = "export the records of runs to CSV or Parquet"


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders, records .jsonl files, or results folders")
    parser.add_argument("-o", "--out", required=True, help="output file (.csv or .parquet)")
    parser.add_argument("--format", choices=["csv", "parquet"], help="format (default: from the file's suffix)")


def run(args) -> int:
    import warnings

    from harness.errors import StoreError
    from harness.store.skips import exit_code, print_skips

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return _through_pandas(args)
    from harness.store.export import export_parts, gather

    with warnings.catch_warnings():
        # What the loader skips is printed once, below, the way every command prints it.
        warnings.simplefilter("ignore", UserWarning)
        parts, skips, indexes = gather(args.runs)
    if not parts:
        raise StoreError("nothing to export: " + "; ".join(str(s) for s in skips))
    rows = export_parts(parts, args.out, args.format)
    for index in indexes:
        index.save()
    print(f"wrote {rows} records to {args.out}")
    print_skips("export", skips)
    return exit_code(skips)


def _through_pandas(args) -> int:
    """Without pyarrow (CSV only): every record read into one DataFrame."""
    import warnings

    from harness.errors import StoreError
    from harness.store.export import export
    from harness.store.loader import read_store, runs_to_frame
    from harness.store.skips import exit_code, print_skips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        store = read_store(args.runs)
    if not store.runs:
        raise StoreError("nothing to export: " + "; ".join(str(s) for s in store.skips))
    frame = runs_to_frame(store.runs)
    path = export(frame, args.out, args.format)
    print(f"wrote {len(frame)} records to {path}")
    skips = store.all_skips
    print_skips("export", skips)
    return exit_code(skips)
