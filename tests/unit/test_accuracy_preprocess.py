"""The published evaluation recipe: short side to the resize size, centred crop, ImageNet normalisation.

The recipe is held against torchvision itself: ``tests/data/preprocess/`` holds test images and the crops
torchvision's ``ImageClassification`` preset made of them (``make_references.py`` there says how), and the
harness must reproduce each crop byte for byte and the preset's normalised tensor float for float.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from harness.accuracy.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Recipe,
    crop_box,
    crop_uint8,
    normalise,
    pil_to_tensor,
    preprocess,
    resize_short_side,
    resized_size,
)
from harness.zoo.catalog import CATALOG

REFERENCES = Path(__file__).resolve().parents[1] / "data" / "preprocess"
REFERENCE = json.loads((REFERENCES / "references.json").read_text())

# (width, height) as image viewers and PIL state them.
SIZES = [(500, 375), (375, 500), (300, 300), (1000, 200)]
RESIZES = [232, 256]


def _expected_resized(width: int, height: int, size: int) -> tuple[int, int]:
    """(height, width) after the resize, worked out here from the rule: short side = size, long truncated."""
    if width <= height:
        return math.floor(size * height / width), size
    return size, math.floor(size * width / height)


def test_resized_size_known_values():
    # Worked by hand: 375 -> 256 and 500 * 256 / 375 = 341.33 -> 341; 200 -> 232 and 1000 * 232 / 200 = 1160.
    assert resized_size(375, 500, 256) == (256, 341)
    assert resized_size(500, 375, 232) == (309, 232)
    assert resized_size(200, 1000, 232) == (232, 1160)
    assert resized_size(300, 300, 256) == (256, 256)


def test_crop_box_rounds_like_python_round():
    # Python rounds halves to even: (341 - 224) / 2 = 58.5 -> 58, (311 - 224) / 2 = 43.5 -> 44 (not floor),
    # (309 - 224) / 2 = 42.5 -> 42 (not half-up); (1160 - 224) / 2 = 468 exactly.
    assert crop_box(256, 341, 224) == (16, 58)
    assert crop_box(311, 224, 224) == (44, 0)
    assert crop_box(232, 1160, 224) == (4, 468)
    assert crop_box(309, 232, 224) == (42, 4)


@pytest.mark.parametrize("resize", RESIZES)
@pytest.mark.parametrize("width,height", SIZES)
def test_output_and_intermediate_sizes(width, height, resize):
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
    resized = pil_to_tensor(resize_short_side(image, resize)).float()
    assert tuple(resized.shape[-2:]) == _expected_resized(width, height, resize)
    assert min(resized.shape[-2:]) == resize
    # Values stay on 8-bit levels, as Pillow's resize of an RGB image returns them.
    assert torch.equal(resized, resized.round()) and resized.min() >= 0 and resized.max() <= 255
    out = preprocess(image, Recipe(resize, 224))
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32


@pytest.mark.parametrize("resize", RESIZES)
@pytest.mark.parametrize("width,height", SIZES)
def test_crop_keeps_the_centre(width, height, resize):
    """Paint white exactly the original-image region the recipe should keep, shrunk by a margin, black elsewhere.

    If the crop sits where the recipe puts it, the output is black in a band of the margin's width on all four
    sides and white inside; a crop shifted by more than a pixel makes one band wider than the other.
    """
    crop, margin = 224, 12  # margin in resized pixels
    new_h, new_w = _expected_resized(width, height, resize)
    top, left = round((new_h - crop) / 2.0), round((new_w - crop) / 2.0)
    scale_y, scale_x = height / new_h, width / new_w
    y0, y1 = round((top + margin) * scale_y), round((top + crop - margin) * scale_y)
    x0, x1 = round((left + margin) * scale_x), round((left + crop - margin) * scale_x)
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    image[:, y0:y1, x0:x1] = 255
    out = preprocess(image, Recipe(resize, crop))
    levels = out[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]  # back to [0, 1]
    white = levels > 0.5
    rows = white.any(dim=1).nonzero().flatten()
    cols = white.any(dim=0).nonzero().flatten()
    first_row, last_row, first_col, last_col = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    for band in (first_row, crop - 1 - last_row, first_col, crop - 1 - last_col):
        assert abs(band - margin) <= 1, (first_row, last_row, first_col, last_col)
    assert bool(white[margin + 2 : crop - margin - 2, margin + 2 : crop - margin - 2].all())


@pytest.mark.parametrize("resize", RESIZES)
@pytest.mark.parametrize("width,height", SIZES)
def test_constant_colour_gives_the_exact_normalised_constant(width, height, resize):
    rgb = (200, 100, 50)
    image = torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1).expand(3, height, width).contiguous()
    out = preprocess(image, Recipe(resize, 224))
    for channel in range(3):
        expected = (rgb[channel] / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert float((out[channel] - expected).abs().max()) <= 1e-6


def test_downscaling_is_antialiased():
    """A one-pixel checkerboard shrunk 600 -> 256 must average to mid-grey; point sampling would alias it."""
    yy, xx = torch.meshgrid(torch.arange(600), torch.arange(600), indexing="ij")
    board = ((yy + xx) % 2 * 255).to(torch.uint8).expand(3, 600, 600).contiguous()
    resized = pil_to_tensor(resize_short_side(board, 256)).float()
    inner = resized[:, 4:-4, 4:-4]  # the borders see a one-sided filter
    assert abs(float(inner.mean()) - 127.5) < 2 and float(inner.std()) < 8


def test_pil_modes_become_rgb():
    grey = Image.new("L", (40, 30), 128)
    rgba = Image.new("RGBA", (40, 30), (10, 20, 30, 0))
    cmyk = Image.new("CMYK", (40, 30), (0, 0, 0, 0))
    for img in (grey, rgba, cmyk):
        t = pil_to_tensor(img)
        assert t.shape == (3, 30, 40) and t.dtype == torch.uint8
    assert pil_to_tensor(grey).eq(128).all()
    assert pil_to_tensor(rgba)[:, 0, 0].tolist() == [10, 20, 30]


def test_recipe_refuses_a_crop_larger_than_the_resize():
    with pytest.raises(ValueError, match="crop"):
        Recipe(200, 224)


def _float_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().astype("<f4").tobytes()).hexdigest()


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda c: c["name"])
def test_matches_torchvision_crop_byte_for_byte(case):
    """The uint8 crop equals torchvision's PIL-path crop of the same file, every byte."""
    recipe = Recipe(case["resize"], case["crop"])
    with Image.open(REFERENCES / case["input"]) as img:
        assert img.mode == case["mode"] and list(img.size) == case["size"]
        crop = crop_uint8(img, recipe)
    with Image.open(REFERENCES / case["crop_png"]) as ref_img:
        reference = pil_to_tensor(ref_img)
    assert crop.dtype == torch.uint8 and crop.shape == reference.shape == (3, recipe.crop, recipe.crop)
    differing = int((crop != reference).sum())
    worst = int((crop.int() - reference.int()).abs().max())
    assert differing == 0, f"{differing} of {crop.numel()} values differ from torchvision's, by up to {worst} levels"


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda c: c["name"])
def test_matches_torchvision_normalised_tensor_exactly(case):
    """The model's input equals, float for float, what torchvision's preset returned (its sha256 is stored)."""
    recipe = Recipe(case["resize"], case["crop"])
    with Image.open(REFERENCES / case["input"]) as img:
        out = preprocess(img, recipe)
    with Image.open(REFERENCES / case["crop_png"]) as ref_img:
        # torchvision's convert_image_dtype and normalize, written out, for a readable failure message.
        ref = pil_to_tensor(ref_img).to(torch.float32) / 255
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    expected = (ref - mean) / std
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert torch.equal(out, expected), f"largest difference {float((out - expected).abs().max())}"
    assert _float_sha256(out) == case["normalised_sha256"]


def test_a_tensor_input_gives_what_its_image_gives():
    """A (3, H, W) uint8 tensor is the same RGB image as far as the recipe goes."""
    case = REFERENCE["cases"][0]
    with Image.open(REFERENCES / case["input"]) as img:
        from_image = preprocess(img, Recipe(case["resize"], case["crop"]))
        tensor = pil_to_tensor(img)
    assert torch.equal(preprocess(tensor, Recipe(case["resize"], case["crop"])), from_image)
    assert torch.equal(normalise(tensor.float()), normalise(tensor))


def test_references_cover_every_path_of_the_recipe():
    """The stored cases shrink, enlarge, skip the resize, round a .5 crop offset, and read non-RGB modes."""
    shrink = enlarge = same = half = 0
    for case in REFERENCE["cases"]:
        width, height = case["size"]
        new_h, new_w = resized_size(height, width, case["resize"])
        shrink += new_h < height
        enlarge += new_h > height
        same += (new_h, new_w) == (height, width)
        half += any((side - case["crop"]) % 2 == 1 for side in (new_h, new_w))
    assert shrink and enlarge and same and half
    assert {"L", "P", "RGBA", "CMYK"} <= {case["mode"] for case in REFERENCE["cases"]}


def test_catalog_recipes_are_torchvisions():
    """Every weights entry's resize and crop sizes are those of torchvision's preset for it, and none is missing."""
    ours = {
        f"{name}.{w.tag}": {"resize": w.resize_size, "crop": w.crop_size}
        for name, entry in CATALOG.items()
        for w in entry.weights
    }
    assert ours == REFERENCE["weights_recipes"]


def test_reference_data_stays_small():
    total = sum(p.stat().st_size for p in REFERENCES.iterdir())
    assert total < 1_000_000, f"tests/data/preprocess holds {total} bytes"
