"""``harness models``: the catalog as a table. Builds no model and imports no torch."""

from __future__ import annotations

import json

HELP = "list the models, their stated metadata and whether local weights are present"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the catalog as JSON instead of a table")


def rows() -> list[dict]:
    """One row per model: stated params, GMACs, acc@1 per weights entry, file sizes and local presence."""
    from harness.zoo.catalog import CATALOG
    from harness.zoo.weights import checkpoint_dir

    folder = checkpoint_dir()
    out = []
    for m in CATALOG.values():
        out.append(
            {
                "model": m.name,
                "params_m": round(m.num_params / 1e6, 2),
                "gmacs": m.gmacs,
                "weights": [
                    {
                        "tag": w.tag,
                        "acc1": w.acc1,
                        "acc5": w.acc5,
                        "file_size_mb": w.file_size_mb,
                        "crop": w.crop_size,
                        "resize": w.resize_size,
                        "file_name": w.file_name,
                        "local": (folder / w.file_name).is_file(),
                    }
                    for w in m.weights
                ],
            }
        )
    return out


def _acc(entry: dict | None) -> str:
    return f"{entry['acc1']:.3f}" if entry else "-"


def run(args) -> int:
    from harness.zoo.weights import checkpoint_dir

    data = rows()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    header = f"{'model':<18} {'params (M)':>10} {'GMACs':>7}  {'acc@1 V1':>8} {'acc@1 V2':>8} {'size MB':>13}  local"
    print(header)
    print("-" * len(header))
    for r in data:
        by_tag = {w["tag"]: w for w in r["weights"]}
        v1, v2 = by_tag.get("IMAGENET1K_V1"), by_tag.get("IMAGENET1K_V2")
        size = "/".join(f"{w['file_size_mb']:.1f}" for w in r["weights"])
        local = ", ".join(w["tag"].removeprefix("IMAGENET1K_") for w in r["weights"] if w["local"]) or "-"
        print(
            f"{r['model']:<18} {r['params_m']:>10.2f} {r['gmacs']:>7.3f}  "
            f"{_acc(v1):>8} {_acc(v2):>8} {size:>13}  {local}"
        )
    print(f"\nlocal weights are looked for in {checkpoint_dir()}")
    return 0
