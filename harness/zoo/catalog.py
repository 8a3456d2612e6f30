"""The zoo's one registry: per model its architecture and the stated metadata of its weights entries.

Pure data and arithmetic: importing this module imports no torch, so ``harness models``, the suite checks and the
report read it at once. The builders in ``harness.zoo.resnet`` are generated from these entries, as torchvision
binds each builder to its weights, so a model's block type, stages and widths are written once, here.

The stated metadata is as published with torchvision's weights. ``gmacs`` is torchvision's ``_ops``: giga
multiply-accumulates per 224x224 image (FlopCounterMode's FLOPs / 2). ``file_size_mb`` is torchvision's
``_file_size``. The checkpoint file name carries the first eight hex digits of the file's sha256, which the weights
loader checks. ``forward_macs`` counts the architecture's forward multiply-accumulates at any resolution from the
spec alone, so the stated figure can be carried to other resolutions exactly (see ``ModelEntry.stated_gmacs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from harness.errors import UnknownModelError

#: Smallest square input, in pixels, that every model here accepts (five stride-2 stages down to 1x1).
MIN_RESOLUTION = 32
#: The resolution the stated ``_ops`` were counted at.
STATED_RESOLUTION = 224

BASIC = "basic"
BOTTLENECK = "bottleneck"
#: Output channels of a block per unit of its ``planes``; the block classes read their ``expansion`` here.
EXPANSION = {BASIC: 1, BOTTLENECK: 4}
#: Channels out of the stem, and each stage's ``planes`` (its blocks' output channels before expansion).
STEM_CHANNELS = 64
STAGE_PLANES = (64, 128, 256, 512)
#: Classes of the ImageNet-1k head that every stated figure was counted with.
NUM_CLASSES = 1000
#: The constructor's defaults for the arguments a variant may fix (ResNeXt: groups; Wide ResNet: width).
DEFAULT_GROUPS = 1
DEFAULT_WIDTH = 64


def bottleneck_width(planes: int, groups: int, width_per_group: int) -> int:
    """Channels of a bottleneck's inner 3x3 convolution: ``planes`` scaled by ``width_per_group / 64``, x groups."""
    return int(planes * (width_per_group / DEFAULT_WIDTH)) * groups


def conv_side(side: int, kernel: int, stride: int, padding: int) -> int:
    """Output side of a convolution or pooling window over ``side`` pixels (torch's floor rounding)."""
    return (side + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class WeightsEntry:
    """One published set of weights: its tag (IMAGENET1K_V1/V2) and what was stated for it."""

    tag: str
    file_name: str
    acc1: float
    acc5: float
    file_size_mb: float
    crop_size: int = 224
    resize_size: int = 256

    @property
    def sha256_prefix(self) -> str:
        """The hash prefix embedded in the file name (``resnet50-11ad3fa6.pth`` -> ``11ad3fa6``)."""
        return self.file_name.rsplit("-", 1)[1].split(".", 1)[0]


@dataclass(frozen=True)
class ModelEntry:
    """A model of the family: its architecture, stated parameter count, GMACs at 224x224 and weights entries.

    The architecture is torchvision's: ``block`` (``basic`` or ``bottleneck``), ``layers`` (blocks per stage), and
    for ResNeXt and Wide ResNet the bottleneck's ``groups`` and ``width_per_group``.
    """

    name: str
    block: str
    layers: tuple[int, int, int, int]
    num_params: int
    gmacs: float
    weights: tuple[WeightsEntry, ...]
    groups: int = DEFAULT_GROUPS
    width_per_group: int = DEFAULT_WIDTH

    def weights_entry(self, tag: str) -> WeightsEntry:
        """The weights entry for ``tag`` (``V1``, ``V2`` or the full ``IMAGENET1K_V2``); raises if absent."""
        full = tag if tag.startswith("IMAGENET1K_") else f"IMAGENET1K_{tag}"
        for entry in self.weights:
            if entry.tag == full:
                return entry
        valid = ", ".join(e.tag for e in self.weights)
        from harness.errors import WeightsError

        raise WeightsError(f"{self.name} has no weights entry {tag!r}; it has: {valid}")

    @property
    def best_weights(self) -> WeightsEntry:
        """The entry with the highest stated acc@1 (torchvision's DEFAULT for every model here)."""
        return max(self.weights, key=lambda e: e.acc1)

    @property
    def fixed_arguments(self) -> dict[str, int]:
        """The constructor arguments this variant fixes (those that differ from the plain ResNet's defaults)."""
        fixed = {"groups": (self.groups, DEFAULT_GROUPS), "width_per_group": (self.width_per_group, DEFAULT_WIDTH)}
        return {key: value for key, (value, default) in fixed.items() if value != default}

    def convolutions(self, resolution: int) -> Iterator[tuple[int, int, int, int, int]]:
        """Every convolution of one forward pass per ``resolution``-px square image, in order, from the spec:
        (in channels, out channels, groups, kernel side, output side; the output side rounded as torch rounds it)."""
        side = conv_side(resolution, 7, 2, 3)
        yield 3, STEM_CHANNELS, 1, 7, side
        side = conv_side(side, 3, 2, 1)  # the max pool
        inplanes = STEM_CHANNELS
        for stage, (planes, blocks) in enumerate(zip(STAGE_PLANES, self.layers, strict=True)):
            out_planes = planes * EXPANSION[self.block]
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                out = conv_side(side, 3, stride, 1)
                if index == 0 and (stride != 1 or inplanes != out_planes):  # the 1x1 downsample branch
                    yield inplanes, out_planes, 1, 1, conv_side(side, 1, stride, 0)
                if self.block == BASIC:
                    yield inplanes, planes, 1, 3, out
                    yield planes, planes, 1, 3, out
                else:  # 1x1 reduce at the input side, grouped 3x3 carrying the stride, 1x1 expand
                    width = bottleneck_width(planes, self.groups, self.width_per_group)
                    yield inplanes, width, 1, 1, side
                    yield width, width, self.groups, 3, out
                    yield width, out_planes, 1, 1, out
                inplanes, side = out_planes, out

    def forward_macs(self, resolution: int) -> int:
        """Multiply-accumulates of one forward pass per ``resolution``-px square image, counted from the spec.

        What the harness's op counter (FlopCounterMode) counts, and nothing else: every convolution
        (``Cin / groups x Cout x k x k x Hout x Wout``) and the fc layer (``in x out``), with the 1000-class head.
        BatchNorm, ReLU, pooling and the residual adds are not counted.
        """
        convs = sum(
            cin // groups * cout * k * k * side * side for cin, cout, groups, k, side in self.convolutions(resolution)
        )
        return convs + self.fc_inputs * NUM_CLASSES

    def feature_elements(self, resolution: int) -> int:
        """Elements of the feature maps one forward pass makes per ``resolution``-px square image: every
        convolution's output (each followed by a BatchNorm, most by a ReLU), the max pool's and the logits, counted
        from the spec. What training keeps for the backward pass grows with it."""
        pooled = conv_side(conv_side(resolution, 7, 2, 3), 3, 2, 1)
        convs = sum(cout * side * side for _, cout, _, _, side in self.convolutions(resolution))
        return convs + STEM_CHANNELS * pooled * pooled + NUM_CLASSES

    @property
    def fc_inputs(self) -> int:
        """Channels into the fc layer: the last stage's output."""
        return STAGE_PLANES[-1] * EXPANSION[self.block]

    def stated_gmacs(self, resolution: int) -> float:
        """The stated GMACs per image carried from 224x224 to ``resolution`` exactly.

        ``_ops`` x ``forward_macs(resolution) / forward_macs(224)``: scaling by area alone would ignore the fc layer,
        which does not grow with the image, and the stride-2 stages' rounding up, and read +0.1% to +0.6% off at
        64 px. At 224 px this is ``_ops`` itself.
        """
        if resolution == STATED_RESOLUTION:
            return self.gmacs
        return self.gmacs * self.forward_macs(resolution) / self.forward_macs(STATED_RESOLUTION)


def _v1(file_name: str, acc1: float, acc5: float, size: float, resize: int = 256) -> WeightsEntry:
    return WeightsEntry("IMAGENET1K_V1", file_name, acc1, acc5, size, 224, resize)


def _v2(file_name: str, acc1: float, acc5: float, size: float) -> WeightsEntry:
    return WeightsEntry("IMAGENET1K_V2", file_name, acc1, acc5, size, 224, 232)


CATALOG: dict[str, ModelEntry] = {
    m.name: m
    for m in (
        ModelEntry(
            "resnet18",
            BASIC,
            (2, 2, 2, 2),
            11_689_512,
            1.814,
            (_v1("resnet18-f37072fd.pth", 69.758, 89.078, 44.661),),
        ),
        ModelEntry(
            "resnet34",
            BASIC,
            (3, 4, 6, 3),
            21_797_672,
            3.664,
            (_v1("resnet34-b627a593.pth", 73.314, 91.420, 83.275),),
        ),
        ModelEntry(
            "resnet50",
            BOTTLENECK,
            (3, 4, 6, 3),
            25_557_032,
            4.089,
            (
                _v1("resnet50-0676ba61.pth", 76.130, 92.862, 97.781),
                _v2("resnet50-11ad3fa6.pth", 80.858, 95.434, 97.79),
            ),
        ),
        ModelEntry(
            "resnet101",
            BOTTLENECK,
            (3, 4, 23, 3),
            44_549_160,
            7.801,
            (
                _v1("resnet101-63fe2227.pth", 77.374, 93.546, 170.511),
                _v2("resnet101-cd907fc2.pth", 81.886, 95.780, 170.53),
            ),
        ),
        ModelEntry(
            "resnet152",
            BOTTLENECK,
            (3, 8, 36, 3),
            60_192_808,
            11.514,
            (
                _v1("resnet152-394f9c45.pth", 78.312, 94.046, 230.434),
                _v2("resnet152-f82ba261.pth", 82.284, 96.002, 230.474),
            ),
        ),
        ModelEntry(
            "resnext50_32x4d",
            BOTTLENECK,
            (3, 4, 6, 3),
            25_028_904,
            4.23,
            (
                _v1("resnext50_32x4d-7cdf4587.pth", 77.618, 93.698, 95.789),
                _v2("resnext50_32x4d-1a0047aa.pth", 81.198, 95.340, 95.833),
            ),
            groups=32,
            width_per_group=4,
        ),
        ModelEntry(
            "resnext101_32x8d",
            BOTTLENECK,
            (3, 4, 23, 3),
            88_791_336,
            16.414,
            (
                _v1("resnext101_32x8d-8ba56ff5.pth", 79.312, 94.526, 339.586),
                _v2("resnext101_32x8d-110c445d.pth", 82.834, 96.228, 339.673),
            ),
            groups=32,
            width_per_group=8,
        ),
        ModelEntry(
            "resnext101_64x4d",
            BOTTLENECK,
            (3, 4, 23, 3),
            83_455_272,
            15.46,
            # Trained with the newer recipe, so its only entry already uses the 232 resize.
            (_v1("resnext101_64x4d-173b62eb.pth", 83.246, 96.454, 319.318, resize=232),),
            groups=64,
            width_per_group=4,
        ),
        ModelEntry(
            "wide_resnet50_2",
            BOTTLENECK,
            (3, 4, 6, 3),
            68_883_240,
            11.398,
            (
                _v1("wide_resnet50_2-95faca4d.pth", 78.468, 94.086, 131.82),
                _v2("wide_resnet50_2-9ba9bcbe.pth", 81.602, 95.758, 263.124),
            ),
            width_per_group=128,
        ),
        ModelEntry(
            "wide_resnet101_2",
            BOTTLENECK,
            (3, 4, 23, 3),
            126_886_696,
            22.753,
            (
                _v1("wide_resnet101_2-32ee1156.pth", 78.848, 94.284, 242.896),
                _v2("wide_resnet101_2-d733dc28.pth", 82.510, 96.020, 484.747),
            ),
            width_per_group=128,
        ),
    )
}

MODEL_NAMES: tuple[str, ...] = tuple(CATALOG)


def get_entry(name: str) -> ModelEntry:
    """The catalog entry of ``name``; an unknown name raises with the valid names and the closest one."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownModelError(name, MODEL_NAMES) from None
