"""One quantizable layer per case (conv 1-3d, grouped, depthwise, transposed, linear), wrapped."""

from __future__ import annotations

from torch import nn

CASES = {
    "conv1d": (lambda: nn.Conv1d(4, 6, 3), (2, 4, 9), "Conv"),
    "conv2d": (lambda: nn.Conv2d(4, 6, 3), (2, 4, 7, 7), "Conv"),
    "conv3d": (lambda: nn.Conv3d(2, 4, 3), (1, 2, 5, 5, 5), "Conv"),
    "grouped": (lambda: nn.Conv2d(4, 6, 3, groups=2), (2, 4, 7, 7), "Conv"),
    "depthwise": (lambda: nn.Conv2d(4, 4, 3, groups=4), (2, 4, 7, 7), "Conv"),
    "convtranspose": (lambda: nn.ConvTranspose2d(4, 6, 2, stride=2), (2, 4, 5, 5), "ConvT"),
    "convtranspose_grouped": (
        lambda: nn.ConvTranspose2d(4, 6, 2, groups=2),
        (2, 4, 5, 5),
        "ConvT",
    ),
    "linear_2d": (lambda: nn.Linear(5, 3), (4, 5), "Linear"),
    "linear_3d": (lambda: nn.Linear(5, 3), (2, 4, 5), "Linear"),
}


class Wrap(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)
