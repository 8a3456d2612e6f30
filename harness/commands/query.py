"""``harness query RESULTS "SQL"``: SQL (DuckDB) over every record of a results store, printed as a table, CSV or
JSON. The view ``records`` holds each record with its run's manifest flattened (``harness.store.query``)."""

from __future__ import annotations

HELP = "run SQL (DuckDB) over every record of a results folder: the view 'records'"
DESCRIPTION = (
    "Run one SQL statement (DuckDB) over a results folder. The view 'records' holds every valid record, one row "
    "each, with its run's manifest flattened: run_dir, run_started_at, run_suite, fingerprint, env_device_name, "
    "env_torch, env_driver, ... (docs/query.md lists the columns and example questions). Needs the optional "
    "extra: pip install 'harness[query]'."
)


def add_arguments(parser) -> None:
    parser.add_argument("root", metavar="RESULTS", help="results folder (or one run folder)")
    parser.add_argument(
        "sql", metavar="SQL", help='one SQL statement, e.g. "SELECT model, count(*) FROM records GROUP BY model"'
    )
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table", help="how to print the result")


def run(args) -> int:
    import warnings

    from harness.errors import HarnessError
    from harness.store.query import connect
    from harness.store.skips import exit_code, print_skips

    skips = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with connect(args.root, skips) as con:
            import duckdb

            try:
                result = con.execute(args.sql)
                names = [d[0] for d in result.description] if result.description else []
                rows = result.fetchall() if names else []
            except duckdb.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise HarnessError(f"the SQL failed: {first}") from None
    _print(args.format, names, rows)
    print_skips("query", skips)
    return exit_code(skips)


def _cell(value):
    """A value as JSON can hold it (timestamps and decimals as text)."""
    import datetime
    import decimal

    if isinstance(value, (datetime.datetime, datetime.date, datetime.time, datetime.timedelta)):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    return value


def _text(value) -> str:
    import json

    value = _cell(value)
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _print(fmt: str, names: list[str], rows: list[tuple]) -> None:
    import sys

    if not names:
        return
    if fmt == "json":
        import json

        print(json.dumps([{n: _cell(v) for n, v in zip(names, row, strict=True)} for row in rows], indent=1))
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_text(v) for v in row] for row in rows)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*names, caption=f"{len(rows)} row(s)")
        for row in rows:
            table.add_row(*(_text(v) for v in row))
        Console(width=max(120, min(400, 16 * len(names)))).print(table)
