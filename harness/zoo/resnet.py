"""The ResNet family, module for module the same architecture as torchvision's, built from the catalog's spec.

Module and parameter names match torchvision exactly (``conv1``, ``layer2.0.downsample.0``, ``fc``), so a
torchvision checkpoint loads with ``strict=True`` and produces the same outputs for the same input. No model is
written out here: ``builder(entry)`` makes each model's builder from its catalog entry (block type, stages,
groups, width), so the architecture is stated once, in ``harness.zoo.catalog``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from harness.zoo.catalog import BASIC, BOTTLENECK, EXPANSION, ModelEntry, bottleneck_width

NormLayer = Callable[[int], nn.Module]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution; padding equals dilation so the spatial size only changes with the stride."""
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (a BatchNorm always follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class Block(nn.Module):
    """A residual block with torchvision's constructor surface: ``relu(branch(x) + downsample(x))``.

    Subclasses build their branch in ``_branch_layers`` and run it in ``branch``; the downsample branch (or the
    identity), the final ReLU and the ``stride`` attribute are shared. ``downsample`` is registered last, as in
    torchvision, so the state_dict keys come in torchvision's order.
    """

    expansion: int

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        self._branch_layers(inplanes, planes, stride, groups, base_width, dilation, norm_layer or nn.BatchNorm2d)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def _branch_layers(
        self, inplanes: int, planes: int, stride: int, groups: int, base_width: int, dilation: int, norm: NormLayer
    ) -> None:
        raise NotImplementedError

    def branch(self, x: Tensor) -> Tensor:
        """The residual branch, up to (not including) the add."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.branch(x)
        out += identity
        return self.relu(out)


class BasicBlock(Block):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = EXPANSION[BASIC]

    def _branch_layers(self, inplanes, planes, stride, groups, base_width, dilation, norm) -> None:
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("BasicBlock does not support dilation > 1")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm(planes)

    def branch(self, x: Tensor) -> Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class Bottleneck(Block):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand; the stride sits on the 3x3 (the "v1.5" variant)."""

    expansion = EXPANSION[BOTTLENECK]

    def _branch_layers(self, inplanes, planes, stride, groups, base_width, dilation, norm) -> None:
        width = bottleneck_width(planes, groups, base_width)
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm(planes * self.expansion)

    def branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


#: The block class of each block type the catalog names.
BLOCKS: dict[str, type[Block]] = {BASIC: BasicBlock, BOTTLENECK: Bottleneck}


class ResNet(nn.Module):
    """ResNet trunk with torchvision's full constructor surface.

    ``layers`` gives the number of blocks in each of the four stages; ``groups`` and ``width_per_group`` make
    ResNeXt and Wide ResNet; ``replace_stride_with_dilation`` (three booleans, stages 2-4) trades stride for
    dilation; ``zero_init_residual`` zeroes the last BatchNorm of every residual branch.
    """

    def __init__(
        self,
        block: type[Block],
        layers: Sequence[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Sequence[bool] | None = None,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = 64
        self.dilation = 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(
                f"replace_stride_with_dilation takes None or three booleans, got {replace_stride_with_dilation!r}"
            )
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        self.zero_init_residual = zero_init_residual
        self.init_weights()

    def init_weights(self) -> None:
        """The initialisation that follows construction: Kaiming-normal convolutions, unit/zero norm layers, and
        (``zero_init_residual``) a zero last norm in every residual branch. It draws from torch's global generator
        in module order, which ``reinitialise`` relies on."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if self.zero_init_residual:
            # Each residual branch starts as zero, so every block begins as the identity.
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(
        self, block: type[Block], planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        norm_layer = self._norm_layer
        downsample = None
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )
        layers = [
            block(
                self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation, norm_layer
            )
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(
                block(
                    self.inplanes,
                    planes,
                    groups=self.groups,
                    base_width=self.base_width,
                    dilation=self.dilation,
                    norm_layer=norm_layer,
                )
            )
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def builder(entry: ModelEntry) -> Callable[..., ResNet]:
    """The builder of the catalog's ``entry``: keyword arguments in, a ``ResNet`` of its architecture out.

    The entry's block type and stages are given; the arguments the variant fixes (ResNeXt's ``groups``, Wide
    ResNet's ``width_per_group``) may be passed again only with the same value. Every other keyword goes to the
    ``ResNet`` constructor.
    """
    block, layers, fixed = BLOCKS[entry.block], list(entry.layers), entry.fixed_arguments

    def build(**kwargs) -> ResNet:
        for key, value in fixed.items():
            if key in kwargs and kwargs[key] != value:
                raise ValueError(f"{key}={kwargs[key]!r} conflicts with this architecture, which fixes {key}={value!r}")
            kwargs[key] = value
        return ResNet(block, layers, **kwargs)

    build.__name__ = build.__qualname__ = entry.name
    variant = ", ".join(f"{key}={value}" for key, value in fixed.items())
    build.__doc__ = f"{entry.name}: {block.__name__}, stages {list(entry.layers)}" + (f", {variant}" if variant else "")
    return build


def reinitialise(model: ResNet, seed: int) -> None:
    """Give ``model`` in place the exact weights and buffers that building it under ``torch.manual_seed(seed)``
    gives (``torch.equal`` on every tensor of the state_dict), without a second copy of them. The model must be in
    the memory format it was built in (the fills draw in memory order).

    Construction draws from the global generator twice: each layer's own ``reset_parameters`` (uniform draws;
    the convolutions' are then overwritten by ``init_weights``, but they advance the generator, and the head's are
    kept), then ``init_weights``. The first call replays both in the same order of draws: the layers' resets in
    module order (every convolution comes before the head, as in construction, and a uniform fill's draws depend
    only on its size), then ``init_weights``; it notes the generator's state (5 KB) before the head and before
    ``init_weights``. Later calls with the same seed start from those states and skip the convolutions' overwritten
    draws, about half the work. Norm layers' running statistics are reset as in a fresh layer. The generator is
    left where a build leaves it.
    """
    states = getattr(model, "_init_states", {})
    with torch.no_grad():
        if seed in states:
            head, init = states[seed]
            torch.set_rng_state(head)
            for m in model.modules():
                if m is not model and hasattr(m, "reset_parameters") and not _overwritten(m):
                    m.reset_parameters()  # the head, and norm layers: affine 1/0, running statistics, count
            torch.set_rng_state(init)
            model.init_weights()
            return
        torch.manual_seed(seed)
        head = None
        for m in model.modules():
            if m is not model and hasattr(m, "reset_parameters"):
                if head is None and not _overwritten(m) and not isinstance(m, nn.modules.batchnorm._NormBase):
                    head = torch.get_rng_state()  # the first layer whose own draws are kept
                m.reset_parameters()
        init = torch.get_rng_state()
        model.init_weights()
    if head is not None and _kept_after_overwritten(model):
        model._init_states = {**states, seed: (head, init)}


def _overwritten(m: nn.Module) -> bool:
    """Whether ``init_weights`` overwrites every tensor that ``m.reset_parameters`` draws: a convolution without
    a bias."""
    return isinstance(m, nn.Conv2d) and m.bias is None


def _kept_after_overwritten(model: nn.Module) -> bool:
    """Whether every layer that draws and is not overwritten comes after all the overwritten ones, in module order,
    so that skipping the overwritten draws leaves the rest drawing from the same generator states."""
    seen_kept = False
    for m in model.modules():
        if m is model or not hasattr(m, "reset_parameters") or isinstance(m, nn.modules.batchnorm._NormBase):
            continue
        if _overwritten(m) and seen_kept:
            return False
        seen_kept = seen_kept or not _overwritten(m)
    return True
