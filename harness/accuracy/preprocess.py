"""The published evaluation preprocessing of the ImageNet weights, with torch ops on a uint8 image tensor.

Each weights entry states a resize size (256 for the V1 weights, 232 for V2) and a crop size (224). The recipe:
resize the shorter side to the resize size with antialiased bilinear interpolation (the longer side becomes
``int(size * long / short)``, as torchvision computes it), round back to 8-bit levels as torchvision's tensor
resize does for uint8 input, centre crop (top ``int(round((h - crop) / 2.0))``, the same for left), scale to
[0, 1] and normalise with the ImageNet mean and standard deviation.

This is torchvision's tensor path. The published figures were measured with its PIL path, whose resampling
rounds slightly differently, so a small difference from the stated accuracy is expected from that alone; the
95% interval of the measurement says how small is small.
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


def resize_short_side(image, size: int):
    """Resize a (3, H, W) uint8 or float image so its shorter side is ``size``; returns float, 8-bit levels.

    Antialiased bilinear interpolation (``align_corners=False``) on float, then rounded and clamped to 0..255,
    which is what torchvision's tensor resize returns for a uint8 image.
    """
    import torch.nn.functional as F

    height, width = image.shape[-2:]
    new_h, new_w = resized_size(height, width, size)
    x = image.unsqueeze(0).float()
    if (new_h, new_w) != (height, width):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
        x = x.round_().clamp_(0, 255)
    return x.squeeze(0)


def center_crop(image, crop: int):
    """The centred ``crop`` x ``crop`` window of a (C, H, W) tensor; both sides must be at least ``crop``."""
    height, width = image.shape[-2:]
    if height < crop or width < crop:
        raise ValueError(f"cannot centre-crop {crop}x{crop} from a {height}x{width} image")
    top, left = crop_box(height, width, crop)
    return image[..., top : top + crop, left : left + crop]


def normalise(image):
    """Scale 8-bit levels (float, 0..255) to [0, 1], subtract the ImageNet mean and divide by its std."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return (image / 255.0 - mean) / std


def preprocess(image, recipe: Recipe):
    """The full recipe on a (3, H, W) uint8 RGB tensor: a (3, crop, crop) float32 tensor ready for the model."""
    return normalise(center_crop(resize_short_side(image, recipe.resize), recipe.crop)).contiguous()


def pil_to_tensor(img):
    """A PIL image in any mode as a (3, H, W) uint8 RGB tensor (greyscale, palette, RGBA, CMYK converted)."""
    import numpy as np
    import torch

    rgb = img.convert("RGB")
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()
