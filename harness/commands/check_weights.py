"""``harness check-weights MODEL WEIGHTS``: verify a local checkpoint's hash and that it loads strictly."""

from __future__ import annotations

HELP = "check that a local checkpoint (a path, or a tag such as V2) has the right hash and loads into MODEL"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model name, e.g. resnet50")
    parser.add_argument("weights", help="a checkpoint path, or a weights tag (V1, V2) looked up in $TORCH_HOME")


def run(args) -> int:
    from harness.zoo import build_model, get_entry
    from harness.zoo.weights import resolve_weights, sha256_file

    get_entry(args.model)
    path, prefix = resolve_weights(args.model, args.weights)
    build_model(args.model, weights=args.weights)  # checks the prefix, when there is one, before unpickling
    checked = "sha256 prefix in its name verified" if prefix else "no hash in its name: integrity not verified"
    print(f"{path}: sha256 {sha256_file(path)[:16]}..., loads strictly into {args.model} ({checked})")
    return 0
