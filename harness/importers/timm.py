"""Importing the CSV files of timm's ``benchmark.py`` as runs: one file becomes one run folder of records.

What each record holds, and what it cannot hold:

- the case (model, mode, batch size, resolution, precision, memory format, compile) from the file's name and
  columns; the case id follows the harness's rule, ``model/mode/bs{N}/precision[/cl][/r{res}][/compile]``;
- ``throughput_img_s`` = ``<mode>_samples_per_sec`` (images over the whole timed loop, the only figure published:
  ``throughput_total_img_s`` holds it too) and ``step_ms_mean`` = ``<mode>_step_time``, the *mean* step time in
  ms; ``step_ms_median`` is null (no samples to take it from), and the message of every record says so;
- no samples: ``samples_ms``, the percentiles and ``throughput_ci95`` are null, so no statistical test can be made
  against these figures, only ratios;
- ``macs_per_img`` = the published GMACs x 1e9 (counted by timm's profiler, not by the harness),
  ``flops_per_img`` = 2 x that (the harness's 2 FLOPs per MAC), ``stated_gmacs`` = the catalog's ``_ops`` carried
  exactly to the resolution (by the architecture's own count, ``ModelEntry.stated_gmacs``), ``ops_deviation``
  between the two, ``achieved_tflops`` from the published throughput;
- the published ``param_count`` (millions) is checked against the catalog and a mismatch is noted in the message.

Rows of models outside the zoo are ignored and counted; rows whose numbers do not parse are skipped and counted.
A file whose precision is a model cast (``bf16``, ``fp16``: weights cast, no autocast) imports nothing, because
no harness precision measures that; the reason is printed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.importers.names import CAST_PRECISIONS, FileSetup, Overrides, parse_file_name
from harness.store.record import SCHEMA_VERSION, Record
from harness.suite.case import Case
from harness.zoo.catalog import CATALOG, MIN_RESOLUTION, MODEL_NAMES

SOURCE = "timm benchmark.py"
STATS = ("samples_per_sec", "step_time", "batch_size", "img_size", "gmacs", "macts")
REQUIRED = ("samples_per_sec", "step_time", "batch_size")
KNOWN_COLUMNS = ("model", "param_count") + tuple(f"{m}_{s}" for m in ("infer", "train") for s in STATS)
STEP_NOTE = "published mean step time; no samples"
#: Relative disagreements worth a note: published GMACs against the catalog, throughput against batch/step time.
#: timm's profiler counts a little more than the harness's counter (+0.02% to +0.8% in its published files), so
#: 5% passes that and still catches a mislabelled resolution (160 vs 176 px: 21%).
GMACS_TOLERANCE = 0.05
STEP_TOLERANCE = 0.10


@dataclass
class ImportedRun:
    """One imported file: where it goes, its manifest and records, and what was left out and why."""

    source: Path
    setup: FileSetup
    records: list[dict[str, Any]]
    manifest: dict[str, Any]
    rows: int = 0
    other_models: Counter = field(default_factory=Counter)
    bad_rows: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def relpath(self) -> str:
        """``<suite>/<folder>``, the run's place under the output folder."""
        return f"{self.setup.suite}/{self.setup.folder}"


def zoo_name(name: str) -> str | None:
    """The zoo's name for a timm model name: exact, or with a ``.tag`` or a ``tv_`` prefix removed; else None."""
    name = name.strip()
    base = name.split(".", 1)[0]
    for candidate in (name, base, base.removeprefix("tv_")):
        if candidate in CATALOG:
            return candidate
    return None


def case_id(model: str, mode: str, batch_size: int, precision: str, channels_last: bool, resolution: int, compiled):
    """The harness's case id (``harness.suite.case``): ``model/mode/bs{N}/precision[/cl][/r{res}][/compile]``;
    an unknown compile (None) adds no ``/compile``."""
    case = Case(
        model=model,
        mode=mode,
        batch_size=batch_size,
        resolution=resolution,
        precision=precision,
        channels_last=channels_last,
        compile=bool(compiled),
    )
    return case.id


def read_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (stripped) and the non-blank rows with their line numbers; errors for empty or non-text files."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise HarnessError(f"{path} is a folder; pass CSV files (or a folder of them)") from None
    except UnicodeDecodeError:
        raise HarnessError(f"{path} is not a text CSV file (it is not UTF-8)") from None
    if not text.strip():
        raise HarnessError(f"{path} is empty; expected a header line and rows from timm's benchmark.py")
    try:
        rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), 1) if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise _not_a_benchmark_csv(path, text, f"it does not parse as CSV ({exc})") from None
    header = [c.strip() for c in rows[0][1]]
    if "model" not in header:
        raise _not_a_benchmark_csv(path, text, "its header row has no 'model' column")
    return header, rows[1:]


def _not_a_benchmark_csv(path: Path, text: str, why: str) -> HarnessError:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    shown = first if len(first) <= 60 else first[:57] + "..."
    kind = " (it looks like JSON)" if first.startswith(("{", "[")) else ""
    return HarnessError(
        f"{path} does not look like a timm benchmark CSV: {why}{kind}; its first line is {shown!r}. Expected a CSV "
        "whose header row has columns model, infer_samples_per_sec|train_samples_per_sec, "
        "infer_step_time|train_step_time, infer_batch_size|train_batch_size (and optionally param_count, *_img_size, "
        "*_gmacs, *_macts)"
    )


def _some(names: list[str], limit: int = 10) -> str:
    """At most ``limit`` names, then how many more there are."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(map(repr, names[:limit])) + more


def check_columns(path: Path, header: list[str]) -> tuple[str, ...]:
    """Reject unknown or repeated columns; return the modes (``infer``/``train``) whose columns are present."""
    unknown = [c for c in header if c not in KNOWN_COLUMNS]
    if unknown:
        raise HarnessError(f"{path}: unknown column(s) {_some(unknown)}; known columns: {', '.join(KNOWN_COLUMNS)}")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise HarnessError(f"{path}: column(s) {', '.join(repeated)} appear more than once in the header")
    return tuple(m for m in ("infer", "train") if any(c.startswith(f"{m}_") for c in header))


def _number(row: dict[str, str], column: str, required: bool) -> float | None:
    raw = (row.get(column) or "").strip()
    if not raw:
        if required:
            raise ValueError(f"{column} is empty")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{column} {raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{column} {raw!r} is not a positive number")
    return value


def _integer(row: dict[str, str], column: str) -> int:
    value = _number(row, column, required=True)
    if value != int(value):
        raise ValueError(f"{column} {row[column].strip()!r} is not a whole number")
    return int(value)


def import_file(path: Path, overrides: Overrides | None = None, origin: str | None = None) -> ImportedRun:
    """Read one timm benchmark CSV into an ImportedRun (nothing is written); HarnessError for a bad file.

    ``origin`` is free text kept in the manifest to say where the file was published (a repository and commit).
    """
    path = Path(path)
    overrides = overrides or Overrides()
    header, rows = read_table(path)
    modes = check_columns(path, header)
    setup = parse_file_name(path, overrides, modes)
    prefix = "infer" if setup.mode == "inference" else "train"
    missing = [f"{prefix}_{s}" for s in REQUIRED if f"{prefix}_{s}" not in header]
    if missing:
        present = ", ".join(modes) or "none"
        raise HarnessError(
            f"{path}: the {setup.mode} columns {', '.join(missing)} are missing (columns present for: {present}); "
            "if the file holds the other mode, pass --mode"
        )
    run = ImportedRun(path, setup, records=[], manifest={}, rows=len(rows))
    if not rows:
        raise HarnessError(f"{path} has a header but no rows")
    if setup.cast:
        run.skipped = (
            f"precision {setup.cast!r} is the model cast to {CAST_PRECISIONS[setup.cast]} (no autocast); no harness "
            f"precision measures that (amp_bf16/amp_fp16 are autocast), so its {len(rows)} rows are not imported"
        )
        return run
    seen: set[str] = set()
    for line, values in rows:
        if len(values) != len(header):
            run.bad_rows.append(f"line {line}: {len(values)} fields where the header has {len(header)}")
            continue
        row = dict(zip(header, (v.strip() for v in values), strict=True))
        model = zoo_name(row["model"])
        if model is None:
            run.other_models[row["model"]] += 1
            continue
        try:
            record = _record(row, prefix, model, setup, run)
        except ValueError as exc:
            run.bad_rows.append(f"line {line} ({row['model']}): {exc}")
            continue
        if record["case_id"] in seen:
            run.duplicates.append(f"line {line}: {record['case_id']} repeats an earlier row (the first is kept)")
            continue
        seen.add(record["case_id"])
        run.records.append(record)
    order = {name: i for i, name in enumerate(MODEL_NAMES)}
    run.records.sort(key=lambda r: (order[r["model"]], r["resolution"], r["batch_size"]))
    run.manifest = _manifest(run, overrides, header)
    if origin:
        run.manifest["origin"] = origin
    return run


def _record(row: dict[str, str], prefix: str, model: str, setup: FileSetup, run: ImportedRun) -> dict[str, Any]:
    throughput = _number(row, f"{prefix}_samples_per_sec", required=True)
    step_ms = _number(row, f"{prefix}_step_time", required=True)
    batch = _integer(row, f"{prefix}_batch_size")
    resolution = _integer(row, f"{prefix}_img_size") if f"{prefix}_img_size" in row else 224
    if resolution < MIN_RESOLUTION:
        raise ValueError(f"{prefix}_img_size {resolution} is below the smallest input the family accepts")
    gmacs = _number(row, f"{prefix}_gmacs", required=False)
    params_m = _number(row, "param_count", required=False)
    entry = CATALOG[model]
    notes = [STEP_NOTE]
    if params_m is not None and abs(params_m - entry.num_params / 1e6) > 0.005 + 1e-9:
        note = f"published param_count {params_m:g} M differs from the catalog's {entry.num_params / 1e6:.3f} M"
        notes.append(note)
        run.notes.append(f"{model}: {note}")
    implied = batch / (step_ms / 1000)
    if abs(throughput / implied - 1) > STEP_TOLERANCE:
        note = f"throughput differs by {throughput / implied - 1:+.0%} from batch size / step time"
        notes.append(note)
        run.notes.append(f"{model} bs{batch} r{resolution}: {note}")
    stated = entry.stated_gmacs(resolution)
    rec = Record(
        case_id=case_id(model, setup.mode, batch, setup.precision, setup.channels_last, resolution, setup.compile),
        model=model,
        mode=setup.mode,
        batch_size=batch,
        resolution=resolution,
        precision=setup.precision,
        channels_last=setup.channels_last,
        compile=setup.compile,
        device=setup.device_type,
        device_name=setup.device_name,
        tags=["published", "timm"],
        throughput_img_s=throughput,
        throughput_total_img_s=throughput,
        step_ms_mean=step_ms,
        stated_gmacs=round(stated, 6),
    )
    if gmacs is not None:
        rec.macs_per_img = float(round(gmacs * 1e9))  # 4.11 * 1e9 is 4110000000.0000005 in binary
        rec.flops_per_img = 2 * rec.macs_per_img
        rec.ops_deviation = round(gmacs / stated - 1, 6)
        rec.achieved_tflops = round(rec.flops_per_img * throughput / 1e12, 6)
        if abs(rec.ops_deviation) > GMACS_TOLERANCE:
            note = f"published {gmacs:g} GMACs differ by {rec.ops_deviation:+.1%} from the catalog's {stated:.3f}"
            notes.append(note)
            run.notes.append(f"{model} r{resolution}: {note}")
    rec.message = "; ".join(notes)
    out = rec.to_dict()
    out["_param_count_m"] = params_m
    return out


def _manifest(run: ImportedRun, overrides: Overrides, header: list[str]) -> dict[str, Any]:
    from harness import __version__
    from harness.store.rundir import status_counts, utc_now

    setup = run.setup
    run_id = f"{setup.suite}-{setup.folder}"
    params = {}
    for rec in run.records:
        rec["run_id"], rec["suite"] = run_id, setup.suite
        value = rec.pop("_param_count_m")
        if value is not None:
            params.setdefault(rec["model"], value)
    axes = ("model", "batch_size", "resolution")
    matrix = {a: sorted({r[a] for r in run.records}, key=_axis_key(a)) for a in axes}
    environment = {
        "device_type": setup.device_type,
        "device_name": setup.device_name,
        "device_slug": setup.device_slug,
        "torch": setup.torch,
        "cuda": setup.cuda,
        "cudnn": None,
        "driver": None,
        "cpu_model": setup.device_name if setup.device_type == "cpu" else None,
        "num_threads": None,
        "host": None,
        "git_revision": None,
    }
    digest = hashlib.sha256(run.source.read_bytes()).hexdigest()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "suite": {
            "name": setup.suite,
            "matrix": {
                **matrix,
                "mode": [setup.mode],
                "precision": [setup.precision],
                "channels_last": [setup.channels_last],
                "compile": [setup.compile],
            },
        },
        "environment": environment,
        "started_at": None,
        "finished_at": None,
        "status": "complete",
        "counts": status_counts(run.records),
        "records": len(run.records),
        "peak": None,
        "source": SOURCE,
        "source_file": run.source.name,
        "source_sha256": digest,
        "imported_at": utc_now(),
        "importer": {
            "harness": __version__,
            "columns": header,
            "timm_precision": setup.timm_precision,
            "overrides": overrides.given(),
            "rows": run.rows,
            "imported": len(run.records),
            "other_models": dict(run.other_models),
            "bad_rows": run.bad_rows,
            "duplicates": run.duplicates,
            "notes": run.notes,
            "param_count_m": params,
        },
        "notes": [
            "published figures, not measured by the harness: one mean per configuration and no samples, so "
            "samples_ms, step percentiles and throughput_ci95 are null and comparisons are ratios without a test",
            "step_ms_mean holds the published mean step time (ms per batch); step_ms_median is null",
            "macs_per_img is timm's published count; stated_gmacs is the catalog's _ops scaled to the resolution",
        ],
    }


def _axis_key(axis: str):
    if axis == "model":
        return MODEL_NAMES.index
    return lambda v: v
