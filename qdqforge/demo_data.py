"""scikit-learn digits (1,797 real 8x8 images shipped in the wheel) and a small CNN for them.

Used by ``make demo`` and the benchmarks; loads offline in milliseconds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def digits_splits(seed: int = 0):
    """Train/test tensors: 75/25 stratified split, x in [0, 1] shaped N x 1 x 8 x 8."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    return (x_tr, y_tr), (x_te, y_te)


class DigitsNet(nn.Module):
    """3 conv-bn-relu layers with a residual, max-pool, global average pool, linear head."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(2 * width)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(2 * width, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(F.relu(self.bn2(self.conv2(x))) + x)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.mean(dim=(2, 3)))


def train(model: nn.Module, x, y, *, epochs: int, lr: float = 3e-3, batch: int = 64) -> None:
    """AdamW + one-cycle schedule; deterministic for a given torch seed."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        _epoch(model, opt, sched, x, y, batch)


def fine_tune(module: nn.Module, x, y, *, epochs: int, lr: float = 1e-4, batch: int = 64,
              wrap=iter) -> None:  # fmt: skip
    """The QAT fine-tuning recipe: AdamW with cosine decay from ``lr``, weight decay on weights
    only (none on clips/scales), BatchNorm statistics frozen (``freeze_bn_stats``; torch BN
    layers in eval for a float control). ``wrap`` wraps the epoch range (a progress bar)."""
    from qdqforge.front.qat.freeze_bn import freeze_bn_stats
    from qdqforge.front.qat.retrain_model import quant_parameters

    quant, weights = quant_parameters(module)
    groups = [{"params": weights}, {"params": quant, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    module.train()
    torch_bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in torch_bns:
        bn.eval()
    if not torch_bns:
        freeze_bn_stats(module)
    for _ in wrap(range(epochs)):
        _epoch(module, opt, sched, x, y, batch)


def _epoch(model, opt, sched, x, y, batch: int) -> None:
    order = torch.randperm(len(x))
    for i in range(0, len(x), batch):
        idx = order[i : i + batch]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


@torch.no_grad()
def evaluate(model: nn.Module, x, y) -> float:
    """Top-1 accuracy in eval mode."""
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())
