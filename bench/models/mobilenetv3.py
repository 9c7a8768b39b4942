"""MobileNetV3-Large (Howard et al. 2019) in plain torch, torchvision's block table and names.

torchvision does not import beside this torch, so the bench builds it here: a 3x3/2 hardswish
stem, 15 inverted-residual blocks (expand 1x1, depthwise kxk, optional squeeze-excitation with
ReLU/hardsigmoid, project 1x1; ReLU or hardswish), a 1x1 conv to 960 channels, global pooling
and a 1280-wide hardswish classifier head. 5.5 M parameters, random (seeded) weights.
"""

from __future__ import annotations

import torch
from torch import nn

# (kernel, expanded, out, squeeze-excite, activation, stride) of MobileNetV3-Large.
BLOCKS = (
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
)


def _divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act=None):
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=0.001, momentum=0.01),
    ]
    return nn.Sequential(*layers, act() if act is not None else nn.Identity())


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = _divisible(channels // 4)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.relu, self.gate = nn.ReLU(), nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.relu(self.fc1(scale))))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, kernel, expanded, cout, se: bool, act: str, stride: int) -> None:
        super().__init__()
        activation = nn.ReLU if act == "RE" else nn.Hardswish
        layers = [] if expanded == cin else [conv_bn_act(cin, expanded, 1, act=activation)]
        layers.append(conv_bn_act(expanded, expanded, kernel, stride, expanded, activation))
        if se:
            layers.append(SqueezeExcitation(expanded))
        layers.append(conv_bn_act(expanded, cout, 1))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3Large(nn.Module):
    """``[N, 3, 224, 224]`` -> 1000 logits."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers, cin = [conv_bn_act(3, 16, 3, 2, act=nn.Hardswish)], 16
        for kernel, expanded, cout, se, act, stride in BLOCKS:
            layers.append(InvertedResidual(cin, kernel, expanded, cout, se, act, stride))
            cin = cout
        layers.append(conv_bn_act(cin, 960, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(960, 1280), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(1280, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build(seed: int = 0) -> MobileNetV3Large:
    """A seeded MobileNetV3-Large in eval mode, BatchNorm statistics randomized."""
    from bench.models.resnet18 import randomize_batchnorm

    torch.manual_seed(seed)
    return randomize_batchnorm(MobileNetV3Large(), seed).eval()
