"""The calibrated artefacts every catalogue case starts from, built once per test session.

``build_world(dir)`` runs the PTQ seed flow on :class:`Net` (conv -> BN -> ReLU -> mean -> fc):
PTQ and QAT JSON configs, a DMQ config and its record, the modified ONNX and a calibrated record.
Cases never edit these files: :meth:`World.json_with`, :meth:`World.write` and friends write
edited copies into the case's own folder.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
from torch import nn

import qdqforge
from qdqforge.front.config.layer_types import QuantLayer
from qdqforge.front.config.layers import find_quant_layers

DMQ_CFG = "batch_num: 2\ncommon_config { dmq_balancer { migration_strength: 0.5 } }\n"


class Net(nn.Module):
    """conv(3->4) -> BN -> ReLU -> spatial mean -> fc(4->5): two quantizable layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = (
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.Linear(4, 5),
        )

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


class WideMlp(nn.Module):
    """Linear 256 -> 1024 -> ReLU -> Linear 1024 -> 256: 2 MB of weights, writes take a while."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(256, 1024), nn.Linear(1024, 256)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def kill_test_model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return WideMlp().eval(), torch.randn(4, 256)


def net_and_input(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    return Net().eval(), torch.randn(2, 3, 6, 6)


@dataclass(frozen=True)
class World:
    """Read-only base artefacts plus the folder ``tmp`` a case may write into."""

    base: Path
    tmp: Path
    model: nn.Module
    x: torch.Tensor
    layers: tuple[QuantLayer, ...]

    @property
    def config(self) -> Path:
        return self.base / "config.json"

    @property
    def qat_config(self) -> Path:
        return self.base / "retrain.json"

    @property
    def dmq_config(self) -> Path:
        return self.base / "dmq.json"

    @property
    def dmq_record(self) -> Path:
        return self.base / "dmq_record.txt"

    @property
    def onnx(self) -> Path:
        return self.base / "modified.onnx"

    @property
    def record(self) -> Path:
        return self.base / "record.txt"

    def at(self, tmp: Path) -> World:
        return replace(self, tmp=tmp)

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        return path

    def json_with(self, edit: Callable[[dict], object], source: Path | None = None) -> Path:
        """A copy of the PTQ config (or ``source``) after ``edit(tree)`` changed it in place."""
        tree = json.loads((source or self.config).read_text())
        edit(tree)
        return self.write("edited.json", json.dumps(tree))

    def text_with(self, source: Path, old: str, new: str, name: str) -> Path:
        text = source.read_text()
        assert old in text, f"{old!r} not in {source}"
        return self.write(name, text.replace(old, new, 1))

    def copy_record(self, name: str = "record.txt") -> Path:
        return self.write(name, self.record.read_text())

    def quantize(self, config: Path, model: nn.Module | None = None, x=None, record=None):
        """``quantize_model`` into this case's folder (a fresh record unless one is given)."""
        record = record or self.tmp / "record.txt"
        model = self.model if model is None else model
        x = self.x if x is None else x
        return qdqforge.quantize_model(str(config), str(self.tmp / "m.onnx"), str(record), model, x)


def build_world(base: Path) -> World:
    model, x = net_and_input()
    base.mkdir(parents=True, exist_ok=True)
    qdqforge.create_quant_config(str(base / "config.json"), model, x, batch_num=2)
    qdqforge.create_quant_retrain_config(str(base / "retrain.json"), model, x)
    (base / "dmq.cfg").write_text(DMQ_CFG)
    qdqforge.create_quant_config(
        str(base / "dmq.json"), model, x, config_defination=str(base / "dmq.cfg")
    )
    with torch.no_grad():
        qdqforge.quantize_preprocess(
            str(base / "dmq.json"), str(base / "dmq_record.txt"), model, x
        )(x)
        calib = qdqforge.quantize_model(
            str(base / "config.json"),
            str(base / "modified.onnx"),
            str(base / "record.txt"),
            model,
            x,
        )
        calib(x)
        calib(x)
    layers = tuple(find_quant_layers(model, x))
    return World(base, base, model, x, layers)


def unwritable_dir(tmp: Path) -> Path:
    """A folder no file can be created in: chmod 0o555, or ``/sys/kernel`` when running as root."""
    folder = tmp / "read_only"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return folder
    for candidate in (Path("/sys/kernel"),):  # root ignores modes; sysfs refuses new files
        try:
            tempfile.NamedTemporaryFile(dir=candidate).close()
        except OSError:
            return candidate
    pytest.skip("no unwritable folder on this machine")


def deep(tree: dict, path: str, value) -> None:
    """Set ``tree[a][b][c] = value`` for ``path = "a/b/c"`` (layer names hold dots)."""
    *parents, leaf = path.split("/")
    node = tree
    for key in parents:
        node = node[key]
    node[leaf] = copy.deepcopy(value)
