"""The image and label checks every attack and evaluation runs first: one ValueError naming the argument
(its name in the caller's signature: `x` / `y` in the attacks, `images` / `labels` in benchmark())."""

from __future__ import annotations

from typing import Any

import numpy as np


def checked_images(images: Any, name: str = "x") -> np.ndarray:
    """[N, H, W, C] float32 images in [0, 1] (N >= 1), or a ValueError naming `name`."""
    x = np.asarray(images)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name}: expected a float array [N, H, W, C], got {x.dtype} {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: expected at least one image, got an array shaped {x.shape}")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError(f"{name}: expected finite values in [0, 1] (divide 8-bit images by 255)")
    return x.astype(np.float32, copy=False)


def checked_labels(labels: Any, count: int, name: str = "y") -> np.ndarray:
    """[count] integer class indices >= 0, or a ValueError naming `name`."""
    y = np.asarray(labels)
    if y.shape != (count,) or not np.issubdtype(y.dtype, np.integer) or (count and y.min() < 0):
        raise ValueError(f"{name}: expected {count} integer class indices >= 0, got {y.dtype} {y.shape}")
    return y
