"""The page: read the runs, build the sections, and render one self-contained HTML file.

Self-contained means it works offline and fetches nothing: plotly.js is inlined once, every chart is JSON drawn
by ``Plotly.newPlot``, the CSS and the small script are inline, and no element loads a URL. Every string from the
records or manifests goes through the template's autoescaping; the embedded JSON has ``<``, ``>`` and ``&``
escaped so it cannot close its ``<script>`` element.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import StoreError
from harness.report.data import FILTER_KEYS, ReportData, prepare
from harness.store.loader import Run
from harness.store.rundir import file_mode
from harness.store.skips import Skip

#: Significant digits kept for every float in the embedded chart data (the charts show four).
DIGITS = 6


def read_inputs(paths: Iterable[str | Path]) -> tuple[list[Run], list[Skip]]:
    """Read every run under ``paths`` through ``harness.store.read_store``. A missing path is an error; a folder
    that holds no run, a run whose manifest cannot be read and a folder of records without a manifest are skipped
    (and returned, with the reason) when other runs were read, and an error when nothing at all could be read.
    The skips inside each run are in its ``Run.skips``."""
    from harness.store.loader import read_store

    runs: list[Run] = []
    skips: list[Skip] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise StoreError(f"{path} does not exist; pass run folders, records .jsonl files or a results folder")
        try:
            with warnings.catch_warnings():
                # What the loader skips is listed on the page and by the command, not printed as Python warnings.
                warnings.simplefilter("ignore")
                store = read_store([path])
        except StoreError as exc:
            skips.append(Skip(str(path), "not a run", f"not read: {exc}"))
            continue
        skips.extend(store.skips)
        for run in store.runs:
            key = run.path.resolve()
            if key not in seen:
                seen.add(key)
                runs.append(run)
    if not runs:
        detail = "; ".join(str(s) for s in skips) if skips else "no paths given"
        raise StoreError(f"nothing to report: {detail}")
    runs.sort(key=lambda r: (str(r.manifest.get("started_at") or ""), str(r.path)))
    return runs, skips


def compact(value: Any) -> Any:
    """``value`` ready for compact JSON: floats rounded to ``DIGITS`` significant digits, NaN and infinities as
    null, numpy scalars as Python numbers, tuples as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value == 0:
            return 0.0
        return round(value, DIGITS - 1 - math.floor(math.log10(abs(value))))
    if isinstance(value, dict):
        return {str(k): compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [compact(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return compact(value.item())
    if hasattr(value, "tolist"):  # numpy array
        return compact(value.tolist())
    return str(value)


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>``, ``&`` and the JS line separators escaped."""
    text = json.dumps(compact(value), separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _asset(name: str) -> str:
    return resources.files("harness.report").joinpath("templates", name).read_text(encoding="utf-8")


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    # Inlined inside <script>: a literal "</script" in the bundle would end the element early.
    return get_plotlyjs().replace("</script", "<\\/script")


def _title(runs: list[Run]) -> str:
    names = []
    for run in runs:
        suite = run.manifest.get("suite")
        name = suite.get("name") if isinstance(suite, dict) else suite
        if name and str(name) not in names:
            names.append(str(name))
    if not names:
        return "harness report"
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"harness report: {shown}"


def _subtitle(runs: list[Run]) -> str:
    """Runs, their dates (start times; the import time of imported runs that record no start) and devices."""
    starts = sorted(str(r.manifest["started_at"]) for r in runs if r.manifest.get("started_at"))
    imported = sorted(
        str(r.manifest["imported_at"])
        for r in runs
        if not r.manifest.get("started_at") and r.manifest.get("imported_at")
    )
    parts = []
    if starts:
        parts.append(starts[0] if len(starts) == 1 else f"{starts[0]} to {starts[-1]}")
    if imported:
        sources = sorted({str(r.manifest.get("source")) for r in runs if r.manifest.get("imported_at")} - {"None"})
        what = f"imported from {', '.join(sources)}" if sources else "imported"
        parts.append(
            f"{what} {imported[0][:10]}" + (f" to {imported[-1][:10]}" if imported[-1][:10] != imported[0][:10] else "")
        )
    if not parts:
        parts.append("no run recorded its start time")
    devices = sorted({str((r.manifest.get("environment") or {}).get("device_name")) for r in runs} - {"None"})
    return f"{len(runs)} run(s), {'; '.join(parts)}" + (f", on {', '.join(devices)}" if devices else "")


def render(data: ReportData, *, plotly_src: str | None = None) -> str:
    """The whole HTML page for ``data``.

    plotly.js is inlined unless ``plotly_src`` names a copy to load instead (a path relative to the page, as a
    static site of many pages shares one copy); either way nothing is fetched from the network."""
    import jinja2

    from harness import __version__
    from harness.report.sections import build_sections

    sections = build_sections(data)
    plots = {}

    def collect(blocks: list[Any]) -> None:
        for b in blocks:
            if b.block == "plot":
                plots[b.id] = b.figure
            elif b.block == "group":
                collect(b.blocks)

    for s in sections:
        collect(s.blocks)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False)
    template = env.from_string(_asset("page.html.j2"))
    return template.render(
        title=_title(data.runs),
        subtitle=_subtitle(data.runs),
        version=__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        sections=sections,
        filter_keys=FILTER_KEYS,
        filter_values=data.filter_values(),
        n_runs=len(data.runs),
        n_records=len(data.frame),
        css=_asset("report.css"),
        js=_asset("report.js"),
        plotly_js="" if plotly_src else _plotly_js(),
        plotly_src=plotly_src,
        data_json=script_json({"plots": plots}),
    )


def build_report(
    paths: Iterable[str | Path], *, baseline: str | Path | None = None, base_dir: str | Path | None = None
) -> tuple[str, ReportData]:
    """Read the runs under ``paths`` (and the ``baseline`` run, when named) and return (the HTML page, the data it
    was built from). ``base_dir`` is the folder the page goes to (links to trace files are relative to it)."""
    paths = list(paths)
    if baseline is not None:
        paths.append(baseline)
    runs, skips = read_inputs(paths)
    data = prepare(runs, skips, baseline=baseline, base_dir=base_dir)
    return render(data), data


def write_html(page: str, out_path: str | Path) -> Path:
    """Write ``page`` to ``out_path`` through a temporary file and a rename, so a reader never sees half a page."""
    out = Path(out_path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.chmod(tmp, file_mode())  # readable like any other file the run writes, for a web server or a colleague
        os.replace(tmp, out)
    except OSError as exc:
        raise StoreError(
            f"cannot write the report to {out}: {exc.strerror or exc}; choose another path with -o FILE"
        ) from None
    return out


def write_report(run_dirs: Iterable[str | Path], out_path: str | Path, *, baseline: str | Path | None = None) -> Path:
    """Write the report of the runs under ``run_dirs`` (run folders, records files or results folders) to
    ``out_path`` as one self-contained HTML file; returns the path written. ``baseline`` names the run the changes
    section compares against (default: the oldest run of each suite and environment)."""
    page, _ = build_report(run_dirs, baseline=baseline, base_dir=Path(out_path).parent)
    return write_html(page, out_path)
