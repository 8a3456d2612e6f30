"""``harness eval MODEL --weights W --data DIR``: acc@1/acc@5 of local weights beside the stated values."""

from __future__ import annotations

import json

HELP = "measure acc@1/acc@5 of local weights on a local ImageNet-style folder, beside the stated values"
DESCRIPTION = (
    "Evaluate local weights on an ImageNet-style folder (one sub-folder per class, sorted names = class index, "
    "or --labels FILE), with the published preprocessing of the weights entry, and print acc@1/acc@5 with 95% "
    "Wilson intervals next to the stated values. Checks that the weights you benchmark are the published ones and "
    "that a precision or memory-format change did not cost accuracy. Works offline."
)


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model name, e.g. resnet50")
    parser.add_argument(
        "--weights", required=True, help="V1 or V2 (looked up in $TORCH_HOME/hub/checkpoints) or a checkpoint path"
    )
    parser.add_argument("--data", required=True, help="folder of class folders (e.g. ImageNet's val/), or see --labels")
    parser.add_argument(
        "--labels", help="file of 'relative/path.jpg class_index' lines (tab or spaces), paths relative to --data"
    )
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "amp_fp16", "amp_bf16"])
    parser.add_argument("--channels-last", action="store_true", help="run the model and inputs in channels_last")
    parser.add_argument("--limit", type=int, help="evaluate a random subset of N images (drawn with --seed)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    parser.add_argument("--workers", type=int, help="data-loading processes (default: cores - 1, at most 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit subset (default 0)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _signed(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:+.3f}{unit}"


def _stated(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render(r: dict) -> str:
    """The result of ``evaluate`` as a short human-readable report."""
    tag = r["weights_tag"] or "(unpublished checkpoint)"
    layout = "channels_last" if r["channels_last"] else "contiguous"
    lines = [
        f"{r['model']} {tag} ({r['weights_path']})",
        f"recipe: resize {r['recipe']['resize']}, crop {r['recipe']['crop']}, from {r['recipe_from']}",
        f"data: {r['data']} ({r['labels_file'] or 'class folders'}), {r['total_images']} images found",
    ]
    if r["subset"]:
        lines.append(
            f"subset: {r['selected']} images drawn at random (--limit {r['limit']}, seed {r['seed']}); "
            "the intervals are those of the subset"
        )
    lines.append(
        f"{r['precision']}, {layout}, {r['device']}, batch {r['batch_size']}: "
        f"{r['images']} images evaluated in {r['duration_s']:.1f} s"
    )
    lines.append("")
    lines.append(f"{'':8}{'measured':>10}  {'95% interval':<18}{'stated':>8}  {'difference':>12}")
    for k in ("1", "5"):
        lo, hi = r[f"acc{k}_ci95"]
        inside = r[f"acc{k}_stated_in_ci95"]
        verdict = (
            "" if inside is None else ("  stated value inside the interval" if inside else "  stated value OUTSIDE")
        )
        lines.append(
            f"acc@{k:<4}{r[f'acc{k}']:>10.3f}  [{lo:6.2f}, {hi:6.2f}]  {_stated(r[f'stated_acc{k}']):>8}  "
            f"{_signed(r[f'acc{k}_delta'], ' pp'):>12}{verdict}"
        )
    if r["topk"] < 5:
        lines.append(f"(the model has {r['topk']} classes, so acc@5 counts the top {r['topk']})")
    if r["weights_tag"] is None:
        lines.append("no stated accuracy: the checkpoint is not a published entry of the catalog")
    if r["skipped"]:
        lines.append("")
        lines.append(f"skipped {r['skipped']} unreadable files (not counted in the accuracy):")
        lines.extend(f"  {s['path']}: {s['reason']}" for s in r["skipped_files"])
        if r["skipped"] > len(r["skipped_files"]):
            lines.append(f"  ... and {r['skipped'] - len(r['skipped_files'])} more")
    return "\n".join(lines)


def run(args) -> int:
    from harness.accuracy import evaluate

    result = evaluate(
        args.model,
        args.weights,
        args.data,
        precision=args.precision,
        channels_last=args.channels_last,
        limit=args.limit,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        seed=args.seed,
        labels_file=args.labels,
        progress=not args.json,
    )
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0
