"""The ResNet family, module for module the same architecture as torchvision's.

Module and parameter names match torchvision exactly (``conv1``, ``layer2.0.downsample.0``, ``fc``), so a
torchvision checkpoint loads with ``strict=True`` and produces the same outputs for the same input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

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


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion: int = 1

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
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("BasicBlock does not support dilation > 1")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand; the stride sits on the 3x3 (the "v1.5" variant)."""

    expansion: int = 4

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
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet trunk with torchvision's full constructor surface.

    ``layers`` gives the number of blocks in each of the four stages; ``groups`` and ``width_per_group`` make
    ResNeXt and Wide ResNet; ``replace_stride_with_dilation`` (three booleans, stages 2-4) trades stride for
    dilation; ``zero_init_residual`` zeroes the last BatchNorm of every residual branch.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
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

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            # Each residual branch starts as zero, so every block begins as the identity.
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1, dilate: bool = False
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


def _build(block: type[BasicBlock | Bottleneck], layers: list[int], fixed: dict, kwargs: dict) -> ResNet:
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"{key}={kwargs[key]!r} conflicts with this architecture, which fixes {key}={value!r}")
        kwargs[key] = value
    return ResNet(block, layers, **kwargs)


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: BasicBlock, stages [2, 2, 2, 2]."""
    return _build(BasicBlock, [2, 2, 2, 2], {}, kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34: BasicBlock, stages [3, 4, 6, 3]."""
    return _build(BasicBlock, [3, 4, 6, 3], {}, kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50: Bottleneck, stages [3, 4, 6, 3]."""
    return _build(Bottleneck, [3, 4, 6, 3], {}, kwargs)


def resnet101(**kwargs) -> ResNet:
    """ResNet-101: Bottleneck, stages [3, 4, 23, 3]."""
    return _build(Bottleneck, [3, 4, 23, 3], {}, kwargs)


def resnet152(**kwargs) -> ResNet:
    """ResNet-152: Bottleneck, stages [3, 8, 36, 3]."""
    return _build(Bottleneck, [3, 8, 36, 3], {}, kwargs)


def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 32x4d: 32 groups of width 4."""
    return _build(Bottleneck, [3, 4, 6, 3], {"groups": 32, "width_per_group": 4}, kwargs)


def resnext101_32x8d(**kwargs) -> ResNet:
    """ResNeXt-101 32x8d: 32 groups of width 8."""
    return _build(Bottleneck, [3, 4, 23, 3], {"groups": 32, "width_per_group": 8}, kwargs)


def resnext101_64x4d(**kwargs) -> ResNet:
    """ResNeXt-101 64x4d: 64 groups of width 4."""
    return _build(Bottleneck, [3, 4, 23, 3], {"groups": 64, "width_per_group": 4}, kwargs)


def wide_resnet50_2(**kwargs) -> ResNet:
    """Wide ResNet-50-2: the bottleneck's inner width doubled."""
    return _build(Bottleneck, [3, 4, 6, 3], {"width_per_group": 128}, kwargs)


def wide_resnet101_2(**kwargs) -> ResNet:
    """Wide ResNet-101-2: the bottleneck's inner width doubled."""
    return _build(Bottleneck, [3, 4, 23, 3], {"width_per_group": 128}, kwargs)


BUILDERS: dict[str, Callable[..., ResNet]] = {
    f.__name__: f
    for f in (
        resnet18,
        resnet34,
        resnet50,
        resnet101,
        resnet152,
        resnext50_32x4d,
        resnext101_32x8d,
        resnext101_64x4d,
        wide_resnet50_2,
        wide_resnet101_2,
    )
}
