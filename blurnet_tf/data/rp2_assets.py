"""The RP2 authors' attack material: 40 victim stop signs, sticker masks, printable colours."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from blurnet_tf.data.images import IMAGE_SIZE, read_mask, read_rgb
from blurnet_tf.errors import DataError

MASKS = {
    "rectangles": "masks/mask_l1loss_uniform_rectangles.png",
    "octagon": "masks/octagon.png",
}
ORIGINAL_CHECKPOINT = "original-lisa-cnn/l1basedmask_uniformrectangles-350"
REFERENCE_LOGS = {
    "rectangles": "reference-logs/optimization_printout_l1basedmask_uniformrectangles.txt",
    "octagon": "reference-logs/optimization_printout_noinversemask_second_trial_run.txt",
}


def rp2_dir(data_dir: str | os.PathLike[str]) -> pathlib.Path:
    path = pathlib.Path(data_dir) / "rp2"
    if not path.is_dir():
        raise DataError(path, "RP2 material directory not found")
    return path


def load_victims(data_dir: str | os.PathLike[str]) -> tuple[np.ndarray, list[str]]:
    """Load the RP2 authors' 40 victim stop signs, in numeric order of their file names.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The data directory (holding rp2/victim-set).

    Returns
    -------
    images : np.ndarray
        The victims [40, 32, 32, 3], float32 in [0, 1].
    names : list of str
        Their file names, in the same order.

    Raises
    ------
    DataError
        If the folder holds no PNG, or a victim is not 32x32 or unreadable.
    """
    folder = rp2_dir(data_dir) / "victim-set"
    files = sorted(folder.glob("*.png"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise DataError(folder, "no victim PNGs found")
    images = []
    for f in files:
        image = read_rgb(f)
        if image.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(
                f, f"victim images must be {IMAGE_SIZE}x{IMAGE_SIZE}, found {image.shape[1]}x{image.shape[0]}"
            )
        images.append(image)
    return np.stack(images), [f.name for f in files]


def load_mask(
    data_dir: str | os.PathLike[str], name_or_path: str | os.PathLike[str], threshold: float | None = None
) -> np.ndarray:
    """Load a sticker mask: the RP2 'rectangles' or 'octagon' mask, or a PNG file.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The data directory (holding rp2/masks); used for the named masks.
    name_or_path : str or os.PathLike
        'rectangles', 'octagon' or a path to a PNG.
    threshold : float or None
        How to read a grey-level mask (pixel > threshold is sticker; see read_mask); None refuses one.

    Returns
    -------
    np.ndarray
        A 0/1 float32 mask [32, 32, 3].

    Raises
    ------
    DataError
        If the file is missing or unreadable, grey-level without a threshold, or has no set pixel.
    """
    if name_or_path in MASKS:
        return read_mask(rp2_dir(data_dir) / MASKS[name_or_path], threshold=threshold)
    return read_mask(name_or_path, threshold=threshold)


def load_nps_colors(data_dir_or_file: str | os.PathLike[str]) -> np.ndarray:
    """Load the printable colour triplets (the non-printability score's colours).

    Parameters
    ----------
    data_dir_or_file : str or os.PathLike
        The data directory (read from rp2/npstriplets.txt) or a file of comma-separated RGB lines.

    Returns
    -------
    np.ndarray
        The colours [P, 3], float32 RGB in [0, 1].

    Raises
    ------
    DataError
        If the file is missing, has no triplet, or a line is not 3 comma-separated values in [0, 1].
    """
    path = pathlib.Path(data_dir_or_file)
    if path.is_dir():
        path = rp2_dir(path) / "npstriplets.txt"
    if not path.is_file():
        raise DataError(path, "printable-colour file not found")
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = [float(v) for v in line.split(",")]
        except ValueError:
            raise DataError(path, f"line {line_no}: not comma-separated numbers") from None
        if len(row) != 3 or not all(0.0 <= v <= 1.0 for v in row):
            raise DataError(path, f"line {line_no}: expected 3 values in [0,1], got {line!r}")
        rows.append(row)
    if not rows:
        raise DataError(path, "no colour triplets")
    return np.asarray(rows, np.float32)


def original_checkpoint(data_dir: str | os.PathLike[str]) -> str:
    prefix = rp2_dir(data_dir) / ORIGINAL_CHECKPOINT
    if not pathlib.Path(str(prefix) + ".index").is_file():
        raise DataError(str(prefix) + ".index", "original LISA-CNN checkpoint not found")
    return str(prefix)


def load_original_noise(data_dir: str | os.PathLike[str]) -> np.ndarray:
    """The sticker noise (32,32,3) optimised by the original rectangle-mask run (epoch 350)."""
    import tensorflow as tf

    return tf.train.load_checkpoint(original_checkpoint(data_dir)).get_tensor("noise")
