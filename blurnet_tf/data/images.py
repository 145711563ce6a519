"""Reading image files into RGB float32 arrays in [0, 1], with one-line errors."""

from __future__ import annotations

import os
import warnings

import cv2
import numpy as np

from blurnet_tf.errors import DataError

IMAGE_SIZE = 32
GREY_TOLERANCE = 0.02  # anti-aliasing noise of a binary mask


def read_rgb(path: str | os.PathLike[str], size: int | None = None) -> np.ndarray:
    """Returns an RGB float32 array in [0, 1]; resized to size x size (area interpolation) if given."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(path, "file not found")
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(path, "not a readable image file")
    if image.ndim != 3 or image.shape[2] != 3:
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise DataError(path, f"expected an RGB image with 3 channels, found {channels}")
    if image.dtype != np.uint8:
        raise DataError(path, f"expected 8-bit pixels, found {image.dtype}")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if size is not None and image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return image.astype(np.float32) / 255.0


def read_mask(path: str | os.PathLike[str], size: int = IMAGE_SIZE, threshold: float | None = None) -> np.ndarray:
    """Reads a sticker mask as a size x size x 3 float32 array of 0 / 1.

    A binary mask is read as it is. The original code used `imread(mask) / 255` unbinarised; the
    rectangle mask has 25 anti-aliased pixels of value 1/255 or 2/255, read as outside the mask
    (values within GREY_TOLERANCE of 0 or 1 count as binary). A grey-level mask is refused unless
    `threshold` says how to read it (pixel > threshold is sticker).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(path, "file not found")
    mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(path, "not a readable image file")
    if mask.ndim == 3 and mask.shape[2] == 4:
        mask = mask[..., :3]
    if mask.ndim == 2:
        mask = np.repeat(mask[..., None], 3, axis=2)
    if mask.ndim != 3 or mask.shape[2] != 3:
        raise DataError(path, f"a mask needs 1, 3 or 4 channels, found shape {mask.shape}")
    if mask.shape[:2] != (size, size):
        warnings.warn(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, resized to {size}x{size}")
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    values = mask.astype(np.float32) / (65535.0 if mask.dtype == np.uint16 else 255.0)
    grey = int(np.sum((values > GREY_TOLERANCE) & (values < 1 - GREY_TOLERANCE)))
    if grey and threshold is None:
        raise DataError(
            path,
            f"grey-level mask ({grey} values strictly between 0 and 1); a mask must be "
            "black and white, or pass --mask_threshold=T to read pixels above T as sticker",
        )
    binary = (values > (0.5 if threshold is None else threshold)).astype(np.float32)
    if not binary.any():
        raise DataError(path, "mask has no set pixel")
    return binary
