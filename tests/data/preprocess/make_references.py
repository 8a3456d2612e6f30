"""Make the reference data of tests/unit/test_accuracy_preprocess.py: test images and torchvision's crops of them.

The harness cannot import torchvision beside its CPU build of torch, so the references are made once, in a
separate throw-away environment, and stored here as PNGs and one JSON file:

    python3.11 -m venv /tmp/tv-venv
    /tmp/tv-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 pillow==13.0.0   # about 5.5 GB
    /tmp/tv-venv/bin/python tests/data/preprocess/make_references.py
    rm -rf /tmp/tv-venv

Pillow's version should be the one the harness is tested with: torchvision's PIL path resizes with Pillow, so
the crops are Pillow's output. What it writes, beside this script:

- ``<name>.png`` (``.tif`` for CMYK): the input images, drawn with a fixed seed (gradients, sharp-edged shapes,
  a patch of noise), in odd sizes and aspect ratios and in the modes an evaluation folder may hold.
- ``<name>.crop.png``: the uint8 crop torchvision's ``ImageClassification`` preset makes of the input, as its
  ``ImageFolder`` loader reads it (Pillow ``convert("RGB")``), before ``convert_image_dtype`` and ``normalize``.
- ``references.json``: per input its recipe (resize, crop, and the weights entry whose preset it is), the sha256
  of the preset's float32 output (the normalised tensor, little-endian bytes), and the versions used; and the
  resize and crop sizes of every ResNet-family weights entry of torchvision, for checking the harness catalog.

Running it again rewrites everything and should change nothing (git diff stays empty).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image, ImageDraw
from torchvision.datasets.folder import pil_loader
from torchvision.models import get_model_weights
from torchvision.transforms._presets import ImageClassification

HERE = Path(__file__).resolve().parent
SEED = 20240613
#: torchvision's ResNet family, whose weights entries the harness catalog holds.
FAMILY = ("resnet", "resnext", "wide_resnet")

# name, (width, height), mode, weights entry ("model.TAG", whose own preset is used) or (resize, crop).
# The sizes make each path of the recipe run: shrinking (antialiased) and enlarging, landscape and portrait,
# an input smaller than the crop, one already of the resized size (no resize), crop offsets that are x.5
# (Python's round, halves to even), and a strong shrink of a long strip with a small recipe.
CASES = (
    ("landscape", (397, 283), "RGB", "resnet50.IMAGENET1K_V1"),
    ("portrait", (271, 405), "RGB", "resnet50.IMAGENET1K_V2"),
    ("tiny", (45, 37), "RGB", "resnet18.IMAGENET1K_V1"),
    ("no_resize", (300, 256), "RGB", "resnet101.IMAGENET1K_V1"),
    ("grey", (233, 300), "L", "resnext101_64x4d.IMAGENET1K_V1"),
    ("palette", (131, 97), "P", (48, 40)),
    ("rgba", (160, 160), "RGBA", "wide_resnet50_2.IMAGENET1K_V2"),
    ("cmyk", (53, 41), "CMYK", (40, 32)),
    ("strip", (1203, 157), "RGB", (48, 40)),
)


def draw(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """An RGB test image: per-channel gradients, a dozen sharp-edged shapes and one patch of uniform noise."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack(
        [255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1), 127.5 + 127.5 * np.sin((xx + 2 * yy) / 9.0)], axis=-1
    )
    img = Image.fromarray(np.clip(np.rint(base), 0, 255).astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(img)
    for _ in range(12):  # each at most a third of the image across, so none covers the centre crop
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        rx, ry = int(rng.integers(1, w // 6 + 2)), int(rng.integers(1, h // 6 + 2))
        x0, y0, x1, y1 = cx - rx, cy - ry, cx + rx, cy + ry
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (pen.ellipse if rng.random() < 0.5 else pen.rectangle)((x0, y0, x1, y1), fill=colour)
    side = max(2, min(w, h) // 5)
    x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    noise = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    img.paste(Image.fromarray(noise, "RGB"), (x0, y0))
    return img


def in_mode(img: Image.Image, mode: str) -> Image.Image:
    """The RGB drawing in ``mode``; RGBA gets an alpha ramp, which ``convert("RGB")`` drops."""
    if mode == "RGBA":
        out = img.convert("RGBA")
        out.putalpha(Image.linear_gradient("L").resize(img.size))
        return out
    if mode == "P":
        return img.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return img.convert(mode)


def preset_for(spec) -> tuple[ImageClassification, str | None]:
    """The weights entry's own preset, or a preset with the given (resize, crop) and its other defaults."""
    if isinstance(spec, str):
        model, tag = spec.split(".")
        return get_model_weights(model)[tag].transforms(), spec
    resize, crop = spec
    return ImageClassification(crop_size=crop, resize_size=resize), None


def main() -> None:
    rng = np.random.default_rng(SEED)
    cases = []
    for name, size, mode, spec in CASES:
        img = in_mode(draw(size, rng), mode)
        path = HERE / f"{name}{'.tif' if mode == 'CMYK' else '.png'}"
        if mode == "CMYK":
            img.save(path, compression="tiff_deflate")
        else:
            img.save(path, optimize=True)
        preset, weights = preset_for(spec)
        loaded = pil_loader(str(path))  # what torchvision's ImageFolder hands the preset
        # The preset's own steps up to the crop, then the whole preset for the normalised tensor.
        resized = F.resize(loaded, preset.resize_size, interpolation=preset.interpolation, antialias=preset.antialias)
        crop = F.pil_to_tensor(F.center_crop(resized, preset.crop_size))
        out = preset(loaded)
        expected = F.normalize(F.convert_image_dtype(crop, torch.float), preset.mean, preset.std)
        assert torch.equal(out, expected), name
        Image.fromarray(crop.permute(1, 2, 0).numpy(), "RGB").save(HERE / f"{name}.crop.png", optimize=True)
        cases.append(
            {
                "name": name,
                "input": path.name,
                "mode": mode,
                "size": list(size),
                "weights": weights,
                "resize": preset.resize_size[0],
                "crop": preset.crop_size[0],
                "crop_png": f"{name}.crop.png",
                "normalised_sha256": hashlib.sha256(out.contiguous().numpy().astype("<f4").tobytes()).hexdigest(),
            }
        )
    recipes = {}
    for model in sorted(m for m in torchvision.models.list_models(module=torchvision.models) if m.startswith(FAMILY)):
        for weights in get_model_weights(model):
            preset = weights.transforms()
            recipes[f"{model}.{weights.name}"] = {"resize": preset.resize_size[0], "crop": preset.crop_size[0]}
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": PIL.__version__}
    doc = {"generated_with": versions, "seed": SEED, "cases": cases, "weights_recipes": recipes}
    (HERE / "references.json").write_text(json.dumps(doc, indent=1) + "\n")
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.suffix in (".png", ".tif", ".json"))
    print(f"wrote {len(cases)} inputs and crops, {len(recipes)} weights recipes, {total / 1024:.0f} KiB in {HERE}")


if __name__ == "__main__":
    main()
