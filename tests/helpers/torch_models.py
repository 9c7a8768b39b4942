"""Torch test models defined in code (no torchvision, no downloads).

ResNet-style CNN (BN, residuals, downsample), MobileNet-style net (depthwise conv, ReLU6,
hardswish, squeeze-excite), a transformer encoder (nn.TransformerEncoderLayer) and a hand-written
pre-LN attention block (Linear on 3-D input).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def projection_shortcut(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    """A residual block's ``downsample`` (torchvision's): 1x1 conv + BN where the shape changes."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = projection_shortcut(cin, cout, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + identity)


class SmallResNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, stride: int, act: type) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.expand = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act()
        )
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            act(),
        )
        self.se = SqueezeExcite(hidden, max(hidden // 4, 4))
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.use_res else y


class SmallMobileNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish()
        )
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 2, 1, nn.ReLU6),
            InvertedResidual(16, 24, 3, 2, nn.Hardswish),
            InvertedResidual(24, 24, 3, 1, nn.Hardswish),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(24, num_classes))

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1))


class SmallTransformer(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4, num_classes: int = 5) -> None:
        super().__init__()
        self.embed = nn.Linear(12, dim)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(
                dim, heads, 2 * dim, dropout=0.1, batch_first=True, activation="gelu"
            ),
            num_layers=2,
            enable_nested_tensor=False,
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.head(self.norm(self.encoder(self.embed(x))).mean(dim=1))


class HandAttentionBlock(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(0.1), nn.Linear(2 * dim, dim)
        )

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        attn = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


class HandTransformer(nn.Module):
    def __init__(self, dim: int = 32, num_classes: int = 5) -> None:
        super().__init__()
        self.embed = nn.Linear(12, dim)
        self.pos = nn.Parameter(torch.zeros(1, 16, dim))
        self.blocks = nn.Sequential(HandAttentionBlock(dim), HandAttentionBlock(dim))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.embed(x) + self.pos[:, : x.shape[1]]
        return self.head(self.blocks(x).mean(dim=1))


class Bottleneck(nn.Module):
    """ResNet-50's block: 1x1 reduce, 3x3, 1x1 expand (x4), BN after each, projection shortcut."""

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = 4 * width
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = projection_shortcut(cin, cout, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        return F.relu(self.bn3(self.conv3(y)) + identity)


class BottleneckResNet(nn.Module):
    """A ResNet-50-shaped net at CI size: stem with max pool, 4 stages of bottlenecks."""

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.pool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], width
        for i, blocks in enumerate((2, 1, 1, 1)):
            w = width * 2**i
            stages += [Bottleneck(cin if j == 0 else 4 * w, w, 2 if i and not j else 1)
                       for j in range(blocks)]  # fmt: skip
            cin = 4 * w
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.layers(x), 1), 1))


class TinyViT(nn.Module):
    """A ViT at CI size: conv patch embedding, class token, pre-LN attention blocks, head."""

    def __init__(self, dim: int = 32, depth: int = 2, patch: int = 4, num_classes: int = 5):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.blocks = nn.Sequential(*[HandAttentionBlock(dim) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, x):
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], 1) + self.pos[:, : tokens.shape[1] + 1]
        return self.head(self.norm(self.blocks(x))[:, 0])


def build(name: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """A seeded model and an example input batch, by name."""
    torch.manual_seed(0)
    makers = {
        "resnet": (SmallResNet, (4, 3, 16, 16)),
        "mobilenet": (SmallMobileNet, (4, 3, 32, 32)),
        "transformer": (SmallTransformer, (4, 10, 12)),
        "hand_attention": (HandTransformer, (4, 10, 12)),
        "bottleneck_resnet": (BottleneckResNet, (2, 3, 32, 32)),
        "vit": (TinyViT, (2, 3, 16, 16)),
    }
    cls, shape = makers[name]
    model = cls()
    _randomize_bn(model)
    return model, (torch.randn(*shape),)


def _randomize_bn(model: nn.Module) -> None:
    """Give BN layers non-trivial running stats so folding and eval paths are exercised."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


MODEL_NAMES = ("resnet", "mobilenet", "transformer", "hand_attention")
