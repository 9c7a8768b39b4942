"""scikit-image's bundled photos and seeded random crops of them, as EfficientNet inputs.

Everything ships inside the scikit-image wheel (no download). Grey photos are repeated to three
channels; each image is resized (anti-aliased) to 224x224 and mapped to ``[-1, 1]`` with
``(x - 0.5) / 0.5``, the preprocessing the Lite checkpoints were trained with.
"""

from __future__ import annotations

import numpy as np
import torch

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "camera",
    "moon",
    "coins",
    "grass",
    "gravel",
    "brick",
    "clock",
    "cell",
    "motorcycle",
)
SIZE = 224


def load_photo(name: str) -> np.ndarray:
    """Float32 RGB ``[H, W, 3]`` in ``[0, 1]``."""
    from skimage import data, util

    image = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    image = util.img_as_float32(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]


def to_input(image: np.ndarray) -> torch.Tensor:
    """Resize to 224x224 and normalise: ``[3, 224, 224]`` in ``[-1, 1]``."""
    from skimage.transform import resize

    small = resize(image, (SIZE, SIZE), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy((small - 0.5) / 0.5).permute(2, 0, 1).contiguous()


def random_crop(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A square crop of 40-90% of the shorter side at a random place."""
    height, width = image.shape[:2]
    side = int(min(height, width) * rng.uniform(0.4, 0.9))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    return image[top : top + side, left : left + side]


def photo_set(crops_per_photo: int, seed: int, full: bool = True) -> torch.Tensor:
    """``[N, 3, 224, 224]``: every photo (if ``full``) then ``crops_per_photo`` crops of each."""
    rng = np.random.default_rng(seed)
    images = [load_photo(name) for name in PHOTOS]
    inputs = [to_input(image) for image in images] if full else []
    for image in images:
        inputs += [to_input(random_crop(image, rng)) for _ in range(crops_per_photo)]
    return torch.stack(inputs)
