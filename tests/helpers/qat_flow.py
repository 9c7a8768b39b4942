"""The seed QAT flow in small steps, shared by the QAT integration tests."""

from __future__ import annotations

import json

import numpy as np
import onnx
import torch
import torch.nn.functional as F

import qdqforge
from qdqforge.graph import numerics


def write_config(tmp_path, model, x, edit=None):
    """``create_quant_retrain_config`` for ``model``; ``edit(tree)`` may change the JSON."""
    cfg = tmp_path / "qat.json"
    qdqforge.create_quant_retrain_config(str(cfg), model, x)
    if edit is not None:
        tree = json.loads(cfg.read_text())
        edit(tree)
        cfg.write_text(json.dumps(tree))
    return cfg


def train(qat, batches, steps: int, lr: float = 0.05, seed: int = 0) -> list[float]:
    """``steps`` SGD steps of cross-entropy towards fixed random labels per batch; the losses."""
    qat.train()
    opt = torch.optim.SGD(qat.parameters(), lr=lr)
    return sgd_steps(qat, opt, batches, steps, seed)


def sgd_steps(qat, opt, batches, steps: int, seed: int = 0, start: int = 0) -> list[float]:
    losses = []
    for step in range(start, start + steps):
        x = batches[step % len(batches)]
        generator = torch.Generator().manual_seed(seed + step % len(batches))
        out = qat(x)
        target = torch.randint(0, out.shape[-1], out.shape[:1], generator=generator)
        loss = F.cross_entropy(out.reshape(out.shape[0], -1, out.shape[-1]).mean(1), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


def ort_outputs(path, x: torch.Tensor) -> np.ndarray:
    proto = onnx.load(str(path))
    return numerics.run(proto, numerics.feeds_for(proto, [x.numpy()]))[0]


def error_in_lsb(got: np.ndarray, reference: np.ndarray) -> float:
    """Max |got - reference| in steps of the int8 grid over the reference output's range."""
    lsb = (reference.max() - reference.min()) / 255
    return float(np.abs(got - reference).max() / lsb)
