"""The published evaluation preprocessing of the ImageNet weights, done with Pillow as torchvision's PIL path does.

Each weights entry states a resize size (256 for the V1 weights, 232 for V2) and a crop size (224). The stated
acc@1/acc@5 were measured with torchvision's ``ImageClassification`` preset on images that its ``ImageFolder``
loader had converted to RGB with Pillow. That recipe, step by step, and what this module does at each:

1. ``convert("RGB")`` (greyscale, palette, RGBA, CMYK ... become RGB; alpha is dropped).
2. Resize the shorter side to the resize size with Pillow's ``Image.resize(..., Image.BILINEAR)``, which
   antialiases by widening the triangle filter when it shrinks. The longer side becomes
   ``int(size * long / short)`` (truncated, as torchvision computes it). An image already of that size is left
   as is. No ``reducing_gap`` and no JPEG draft mode: either would change the pixels.
3. Centre crop: top ``int(round((h - crop) / 2.0))``, the same for left (Python's ``round``, halves to even).
4. To a (3, crop, crop) uint8 tensor, then ``float32 / 255`` and ``(x - mean) / std`` per channel with the
   ImageNet mean and standard deviation, in float32, as ``convert_image_dtype`` and ``normalize`` do.

The uint8 crop is therefore torchvision's byte for byte and the normalised tensor equal float for float
(``tests/unit/test_accuracy_preprocess.py`` holds it against crops torchvision made, stored in ``tests/data/``),
so a measured accuracy differs from the stated one only by the model, the data and chance.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Recipe:
    """Resize (shorter side, pixels) and centre crop (square side, pixels) of one weights entry."""

    resize: int
    crop: int

    def __post_init__(self) -> None:
        if self.crop < 1 or self.resize < self.crop:
            raise ValueError(f"a recipe needs 1 <= crop <= resize, got resize {self.resize}, crop {self.crop}")

    def as_dict(self) -> dict:
        return {"resize": self.resize, "crop": self.crop}


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) after resizing the shorter side to ``size`` pixels, the longer one in proportion.

    The longer side is truncated, not rounded (``int(size * long / short)``), as torchvision does; a square
    image becomes ``size`` x ``size``.
    """
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def crop_box(height: int, width: int, crop: int) -> tuple[int, int]:
    """(top, left) of the centred ``crop`` x ``crop`` window, rounded with Python's ``round`` as torchvision does."""
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))


def as_rgb_image(image):
    """A PIL image in RGB mode from a PIL image in any mode or a (3, H, W) uint8 RGB tensor.

    Any mode goes through Pillow's ``convert("RGB")``, as torchvision's ``ImageFolder`` loader does before the
    preset sees the image; a tensor is taken as 8-bit RGB levels, unchanged.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if image.dim() != 3 or image.shape[0] != 3 or str(image.dtype) != "torch.uint8":
        raise ValueError(f"expected a PIL image or a (3, H, W) uint8 tensor, got {tuple(image.shape)} {image.dtype}")
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy(), mode="RGB")


def resize_short_side(image, size: int):
    """The RGB image (PIL, or a tensor as ``as_rgb_image`` takes) resized so its shorter side is ``size``; PIL out.

    Pillow's bilinear filter, antialiased when shrinking; an image already of the target size is returned as is.
    """
    from PIL import Image

    img = as_rgb_image(image)
    new_h, new_w = resized_size(img.height, img.width, size)
    if (new_h, new_w) == (img.height, img.width):
        return img
    return img.resize((new_w, new_h), Image.BILINEAR)


def center_crop(image, crop: int):
    """The centred ``crop`` x ``crop`` window of a PIL image; both sides must be at least ``crop``."""
    if image.height < crop or image.width < crop:
        raise ValueError(f"cannot centre-crop {crop}x{crop} from a {image.height}x{image.width} image")
    top, left = crop_box(image.height, image.width, crop)
    return image.crop((left, top, left + crop, top + crop))


def pil_to_tensor(img):
    """A PIL image in any mode as a (3, H, W) uint8 RGB tensor (greyscale, palette, RGBA, CMYK converted)."""
    import numpy as np
    import torch

    rgb = as_rgb_image(img)
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def crop_uint8(image, recipe: Recipe):
    """Steps 1-3 of the recipe on a PIL image (any mode) or a (3, H, W) uint8 tensor: a (3, crop, crop) uint8 tensor."""
    return pil_to_tensor(center_crop(resize_short_side(image, recipe.resize), recipe.crop))


def normalise(image):
    """8-bit levels (uint8, or float 0..255) to float32: ``/ 255``, minus the ImageNet mean, over its std.

    The same float32 operations in the same order as torchvision's ``convert_image_dtype`` and ``normalize``,
    so the result is equal, not merely close.
    """
    import torch

    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return image.to(torch.float32).div(255).sub_(mean).div_(std)


def preprocess(image, recipe: Recipe):
    """The full recipe on a PIL image (any mode) or a (3, H, W) uint8 RGB tensor: (3, crop, crop) float32."""
    return normalise(crop_uint8(image, recipe)).contiguous()
