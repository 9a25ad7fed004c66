"""The CIFAR architectures of the published KD tables (CRD, Tian et al. ICLR 2020; DKD, Zhao et al. CVPR 2022).

``resnet20/56/110`` are He et al.'s 6n+2 CIFAR ResNets (16-32-64 channels);
``resnet8x4``/``resnet32x4`` the 4× wider ones of the CRD benchmark (a 32-channel stem,
then 64-128-256); ``wrn-d-k`` Zagoruyko and Komodakis's pre-activation wide ResNets.
Parameter names follow the benchmarks' own (``conv1``, ``layer1.0.downsample.0``,
``block1.layer.0.convShortcut``, ``fc``...), so the CIFAR-100 teachers they distribute
load with ``teacher.pretrained``. Global pooling is adaptive (the published models
pool 8×8, the size 32×32 inputs reach), so other input sizes work too.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selective_kd.models.resnet import BasicBlock, _conv1x1, _conv3x3, init_weights
from selective_kd.models.table import MODELS


class CifarResNet(nn.Module):
    """A three-stage CIFAR ResNet of basic blocks: ``depth = 6n + 2``, channels ``(stem, s1, s2, s3)``."""

    def __init__(self, depth: int, channels: tuple[int, int, int, int], num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet of basic blocks has depth 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.inplanes = channels[0]
        self.conv1 = _conv3x3(in_channels, channels[0])
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._stage(channels[1], n, stride=1)
        self.layer2 = self._stage(channels[2], n, stride=2)
        self.layer3 = self._stage(channels[3], n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels[3], num_classes)
        init_weights(self)

    def _stage(self, width: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != width:
            downsample = nn.Sequential(_conv1x1(self.inplanes, width, stride), nn.BatchNorm2d(width))
        layers: list[nn.Module] = [BasicBlock(self.inplanes, width, stride, downsample)]
        self.inplanes = width
        layers += [BasicBlock(width, width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class WideBlock(nn.Module):
    """Pre-activation block (BN-ReLU-conv twice); where the width or stride changes, the
    1×1 shortcut ``convShortcut`` reads the pre-activated input, as in the reference WRN."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(cout, cout)
        self.convShortcut = _conv1x1(cin, cout, stride) if cin != cout or stride != 1 else None

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        return out + (x if self.convShortcut is None else self.convShortcut(pre))


class WideStage(nn.Module):
    """``n`` wide blocks, kept under ``layer`` as the reference names them (``block1.layer.0``)."""

    def __init__(self, n: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)])

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko & Komodakis, 2016): ``depth = 6n + 4``, channels 16, 16k, 32k, 64k."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a wide ResNet has depth 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = _conv3x3(in_channels, widths[0])
        self.block1 = WideStage(n, widths[0], widths[1], 1)
        self.block2 = WideStage(n, widths[1], widths[2], 2)
        self.block3 = WideStage(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3], num_classes)
        init_weights(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(self.relu(self.bn1(x))), 1))


# --------------------------------------------------------------------------- the table

NARROW = (16, 16, 32, 64)
WIDE_X4 = (32, 64, 128, 256)


@MODELS.register("resnet20")
def resnet20(num_classes: int, in_channels: int) -> nn.Module:
    """CIFAR ResNet-20 (He et al. 2015; 16-32-64 channels), a student of the CRD/DKD tables."""
    return CifarResNet(20, NARROW, num_classes, in_channels)


@MODELS.register("resnet56")
def resnet56(num_classes: int, in_channels: int) -> nn.Module:
    """CIFAR ResNet-56 (He et al. 2015; 16-32-64 channels), the teacher of ResNet-20 in the CRD/DKD tables."""
    return CifarResNet(56, NARROW, num_classes, in_channels)


@MODELS.register("resnet110")
def resnet110(num_classes: int, in_channels: int) -> nn.Module:
    """CIFAR ResNet-110 (He et al. 2015; 16-32-64 channels), a teacher of the CRD/DKD tables."""
    return CifarResNet(110, NARROW, num_classes, in_channels)


@MODELS.register("resnet8x4")
def resnet8x4(num_classes: int, in_channels: int) -> nn.Module:
    """CIFAR ResNet-8 at 4x width (32-64-128-256 channels), the student of ResNet32x4 in the CRD/DKD tables."""
    return CifarResNet(8, WIDE_X4, num_classes, in_channels)


@MODELS.register("resnet32x4")
def resnet32x4(num_classes: int, in_channels: int) -> nn.Module:
    """CIFAR ResNet-32 at 4x width (32-64-128-256 channels), a teacher of the CRD/DKD tables."""
    return CifarResNet(32, WIDE_X4, num_classes, in_channels)


@MODELS.register("wrn-16-2")
def wrn_16_2(num_classes: int, in_channels: int) -> nn.Module:
    """Wide ResNet WRN-16-2 (Zagoruyko & Komodakis 2016), the student of WRN-40-2 in the CRD/DKD tables."""
    return WideResNet(16, 2, num_classes, in_channels)


@MODELS.register("wrn-40-2")
def wrn_40_2(num_classes: int, in_channels: int) -> nn.Module:
    """Wide ResNet WRN-40-2 (Zagoruyko & Komodakis 2016), a teacher of the CRD/DKD tables."""
    return WideResNet(40, 2, num_classes, in_channels)
