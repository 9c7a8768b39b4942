"""sklearn's 8x8 digits and a small Conv/BN/ReLU + Linear CNN trained on them in seconds.

The data ship inside scikit-learn (no download): 1797 grey 8x8 images, 10 classes. Half is the
training set (calibration batches come from it), half the test set: with ~900 test images one
image is 0.11 pt of top-1, so the 0.2 pt budget tolerates one extra mistake.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def load_split(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``; ``x`` is ``[N, 1, 8, 8]`` in ``[0, 1]``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    half = len(y) // 2
    train, test = order[:half], order[half:]
    return x[train], y[train], x[test], y[test]


class DigitsCnn(nn.Module):
    """Three Conv/BN/ReLU stages (one max-pool) and a Linear classifier."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()
            )

        self.features = nn.Sequential(
            stage(1, width), stage(width, 2 * width), nn.MaxPool2d(2), stage(2 * width, 2 * width)
        )
        self.fc = nn.Linear(2 * width * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


def train(x: torch.Tensor, y: torch.Tensor, epochs: int = 15, seed: int = 0) -> DigitsCnn:
    """Adam, batch 64, fixed seed; returns the model in eval mode."""
    torch.manual_seed(seed)
    model = DigitsCnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def top1(logits: np.ndarray, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return float((logits.argmax(1) == labels.numpy()).mean() * 100)
