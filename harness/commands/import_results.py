"""``harness import timm CSV...``: published benchmark files as run folders, for reports and hardware comparisons."""

from __future__ import annotations

import argparse

NAME = "import"
HELP = "import published results (timm benchmark.py CSV files) as run folders"
DESCRIPTION = (
    "Import published throughput figures as run folders under OUT/<suite>/<device>-pt<torch>-<cu|cpu>[-dynamo]/. "
    "File names like benchmark-infer-amp-nchw-pt291-cu128-4090.csv give the mode, precision, memory format, torch "
    "and CUDA versions, device and compile; the options override them (and are needed for other names). Imported "
    "runs carry source 'timm benchmark.py' and no samples: they compare as ratios, without a statistical test."
)
PRECISION_CHOICES = ("amp", "amp_fp16", "amp_bf16", "fp32", "tf32")


def add_arguments(parser) -> None:
    parser.add_argument("format", choices=["timm"], help="the tool that wrote the files (timm: benchmark.py CSVs)")
    parser.add_argument("files", nargs="+", metavar="CSV", help="CSV files, or folders holding them")
    parser.add_argument("--out", default="results/published", help="output folder (default: results/published)")
    parser.add_argument("--force", action="store_true", help="replace earlier imports of the same files")
    parser.add_argument("--device", metavar="NAME", help="device, instead of the file name's (e.g. rtx4090)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, help="precision (amp = amp_fp16 autocast)")
    parser.add_argument("--mode", choices=["infer", "inference", "train"], help="inference or train")
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None, help="memory format (nhwc = yes)"
    )
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=None, help="compiled with torch.compile (dynamo)"
    )
    parser.add_argument("--torch", metavar="VER", help="torch version, e.g. 2.9.1")
    parser.add_argument("--cuda", metavar="VER", help="CUDA version, e.g. 12.8, or 'cpu'")
    parser.add_argument("--origin", metavar="TEXT", help="where the files were published (kept in each manifest)")


def _files(paths: list[str]) -> list:
    from pathlib import Path

    from harness.errors import HarnessError

    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.csv"))
            if not found:
                raise HarnessError(f"{p} holds no .csv files")
            out.extend(found)
        elif not p.exists():
            raise HarnessError(f"{p}: no such file")
        else:
            out.append(p)
    return out


def run(args) -> int:
    from pathlib import Path

    from harness.errors import HarnessError
    from harness.importers import MATCH_RULE, Overrides, import_file
    from harness.importers.write import check_targets, write_run

    overrides = Overrides(
        mode=args.mode,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        torch=args.torch,
        cuda=args.cuda,
        device=args.device,
    )
    imports, errors = [], []
    for path in _files(args.files):
        try:
            imports.append(import_file(path, overrides, args.origin))
        except HarnessError as exc:
            errors.append(str(exc))
    if errors:
        raise HarnessError(
            "nothing imported: " + errors[0] if len(errors) == 1 else "nothing imported:\n" + "\n".join(errors)
        )
    chosen = [r for r in imports if not r.skipped and r.records]
    if not chosen:
        reasons = [f"{r.source.name}: {r.skipped or _why_empty(r)}" for r in imports]
        raise HarnessError("nothing imported:\n" + "\n".join(reasons))
    out = Path(args.out)
    targets = check_targets(chosen, out, args.force)
    for run_, target in zip(chosen, targets, strict=True):
        write_run(run_, target)
    _print_summary(imports, out)
    print(f"matching against harness runs: {MATCH_RULE}")
    print(
        "these are published figures (source: timm benchmark.py): one mean per configuration and no samples, so "
        "they compare as ratios without a statistical test"
    )
    return 0


def _why_empty(run) -> str:
    other = sum(run.other_models.values())
    return (
        f"no importable rows ({run.rows} rows: {other} of models outside the zoo, {len(run.bad_rows)} with bad "
        f"values{': ' + run.bad_rows[0] if run.bad_rows else ''})"
    )


def _print_summary(imports: list, out) -> None:
    written = [r for r in imports if not r.skipped and r.records]
    total = sum(len(r.records) for r in written)
    print(f"imported {len(written)} of {len(imports)} files into {out} ({total} records)")
    for r in imports:
        if r.skipped or not r.records:
            print(f"  {r.source.name}: not imported: {r.skipped or _why_empty(r)}")
            continue
        extra = []
        if r.other_models:
            extra.append(f"{sum(r.other_models.values())} rows of other models ignored")
        if r.bad_rows:
            extra.append(f"{len(r.bad_rows)} rows skipped (bad values)")
        if r.duplicates:
            extra.append(f"{len(r.duplicates)} repeated rows skipped")
        if r.setup.from_options:
            extra.append(f"from options: {', '.join(r.setup.from_options)}")
        tail = f" ({'; '.join(extra)})" if extra else ""
        print(f"  {r.source.name} -> {r.relpath}: {len(r.records)} records{tail}")
        for line in r.bad_rows[:5] + r.duplicates[:3]:
            print(f"      {line}")
        for note in r.notes[:5]:
            print(f"      note: {note}")
        if len(r.notes) > 5:
            print(f"      ... {len(r.notes) - 5} more notes in the manifest")
    others = sum(sum(r.other_models.values()) for r in imports)
    bad = sum(len(r.bad_rows) for r in imports)
    print(f"rows of models outside the zoo ignored: {others}; rows skipped for bad values: {bad}")
