"""Accuracy pass speed: is ``harness eval`` bound by decoding and preprocessing, or by the model?

Generates 96 JPEGs of 500x375 (ImageNet's most common size) in a temporary folder, then measures in one run:
Pillow decode alone (the baseline), decode plus the published preprocessing in this process, the same through
the DataLoader with the default worker count, and the model's forward pass at 224x224. Prints images/s and the
ratios. Run: PYTHONPATH=. /work/venv/bin/python benchmarks/bench_eval.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_IMAGES = 96


def make_images(folder: Path) -> list[tuple[str, int]]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500]
    items = []
    for i in range(N_IMAGES):
        base = np.stack([(xx * (i + 1)) % 256, (yy * 3) % 256, (xx + yy) % 256], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        items.append((str(path), i % 10))
    return items


def rate(fn, n: int) -> float:
    """Images per second of ``fn`` over ``n`` images (best of two passes, the first warming caches)."""
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader

    from harness.accuracy.dataset import ImageDataset, collate
    from harness.accuracy.evaluate import default_workers
    from harness.accuracy.preprocess import Recipe
    from harness.zoo import build_model

    with tempfile.TemporaryDirectory() as tmp:
        items = make_images(Path(tmp))

        def decode():
            for path, _ in items:
                with Image.open(path) as img:
                    img.convert("RGB")

        decode_s = rate(decode, len(items))
        results = {}
        for resize in (232, 256):
            ds = ImageDataset(items, Recipe(resize, 224))
            results[resize] = rate(lambda ds=ds: [ds[i] for i in range(len(ds))], len(items))
        workers = default_workers()
        loader = DataLoader(
            ImageDataset(items, Recipe(256, 224)), batch_size=32, num_workers=workers, collate_fn=collate
        )
        loader_s = rate(lambda: list(loader), len(items))

    print(f"torch threads {torch.get_num_threads()}, loader workers {workers}, {N_IMAGES} JPEGs of 500x375")
    print(f"decode only (baseline)          {decode_s:8.1f} img/s")
    for resize, r in results.items():
        print(f"decode + recipe {resize}/224, 1 proc  {r:8.1f} img/s  ({r / decode_s:.2f}x of decode alone)")
    print(f"DataLoader, {workers} workers, recipe 256   {loader_s:8.1f} img/s")
    x = torch.randn(32, 3, 224, 224)
    for name in ("resnet18", "resnet50"):
        model = build_model(name).eval()
        with torch.inference_mode():
            model(x[:4])
            model_s = rate(lambda model=model: model(x), len(x))
        print(f"{name} forward fp32, batch 32   {model_s:8.1f} img/s  (loader / model = {loader_s / model_s:.2f})")


if __name__ == "__main__":
    main()
