"""Small models with DMQ-balanceable layers and their PTQ configs (DMQ strength ``ALPHA``)."""

from __future__ import annotations

import torch
from torch import nn

import qdqforge

ALPHA = 0.4


class SmallCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 8, 1, groups=2)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(self.up(self.grouped(self.dw(x))).mean((2, 3)))


class SmallMlpBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(6), nn.Linear(6, 12), nn.Linear(12, 6)

    def forward(self, x):
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))


MODELS = {"cnn": (SmallCnn, (2, 3, 8, 8)), "transformer": (SmallMlpBlock, (2, 5, 6))}


def build(name: str):
    """``MODELS[name]`` in eval mode (BN statistics randomized) and three input batches."""
    torch.manual_seed(0)
    cls, shape = MODELS[name]
    model = cls().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(-1.5, 1.5)
    return model, [torch.randn(*shape) for _ in range(3)]


def write_config(tmp_path, model, x, dmq: bool = True):
    """A PTQ config from a ``.cfg`` with DMQ at ``ALPHA`` on every layer (none if not ``dmq``)."""
    cfg, definition = tmp_path / "config.json", tmp_path / "dmq.cfg"
    body = f"dmq_balancer {{ migration_strength: {ALPHA} }}" if dmq else ""
    definition.write_text(f"common_config {{ {body} }}\n" if dmq else "\n")
    qdqforge.create_quant_config(str(cfg), model, x, config_defination=str(definition))
    return cfg


def write_calibration_config(tmp_path, model, x):
    """Like :func:`write_config` with DMQ, and ``batch_num: 2``."""
    cfg, definition = tmp_path / "config.json", tmp_path / "dmq.cfg"
    definition.write_text(
        f"batch_num: 2\ncommon_config {{ dmq_balancer {{ migration_strength: {ALPHA} }} }}\n"
    )
    qdqforge.create_quant_config(str(cfg), model, x, config_defination=str(definition))
    return cfg
