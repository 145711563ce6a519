"""Data: LISA crops, the RP2 victims/masks/colours, MNIST, and where they are found."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from blurnet_tf import paper
from blurnet_tf.ranges import is_number
from blurnet_tf.data.lisa import (
    CLASS_NAMES,
    NUM_CLASSES,
    SPEED_LIMIT_45,
    STOP,
    LisaData,
    load_lisa,
    split_report,
    track_split,
)
from blurnet_tf.data.rp2_assets import load_mask, load_nps_colors, load_victims
from blurnet_tf.data.sources import find_data_dir

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "SPEED_LIMIT_45",
    "STOP",
    "LisaData",
    "load_lisa",
    "split_report",
    "track_split",
    "load_mask",
    "load_nps_colors",
    "load_victims",
    "find_data_dir",
    "load_lisa_split",
    "load_test_split",
    "hold_out_validation",
    "keep_training_tracks",
]


def load_lisa_split(
    data_dir: str | os.PathLike[str], test_fraction: float = 0.2, seed: int = 0, allow_missing_classes: bool = False
) -> tuple[LisaData, LisaData, dict[str, Any]]:
    """Load the LISA crops under data_dir/lisa and split them with whole tracks held out.

    Every class of the public crops must be present (a missing class folder would silently train
    a smaller problem) unless `allow_missing_classes`.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The data directory (holding lisa/).
    test_fraction : float
        Share of each class's images to hold out for test, by whole tracks; default 0.2.
    seed : int
        Seed of the track order (see track_split); default 0.
    allow_missing_classes : bool
        Train without classes that have no images instead of refusing; default False.

    Returns
    -------
    train, test : LisaData
        The two splits.
    report : dict
        The split's per-class image and track counts (split_report).

    Raises
    ------
    DataError
        If a class of the public crops has no images and not `allow_missing_classes`, or the
        crops cannot be read.
    """
    import pathlib

    from blurnet_tf.data.lisa import EXPECTED_CLASSES
    from blurnet_tf.errors import DataError

    root = pathlib.Path(data_dir) / "lisa"
    data = load_lisa(root)
    missing = [c for c in EXPECTED_CLASSES if CLASS_NAMES.index(c) not in set(data.labels.tolist())]
    if missing and not allow_missing_classes:
        raise DataError(
            root,
            f"no images of {', '.join(missing)}; restore them, or pass --allow_missing_classes to train without them",
        )
    train_idx, test_idx = track_split(data, test_fraction, seed)
    return data.subset(train_idx), data.subset(test_idx), split_report(data, train_idx, test_idx)


def load_test_split(
    data_dir: str | os.PathLike[str], dataset: str, test_fraction: float | None, split_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Load the test split of a dataset: LISA's track-held-out split or MNIST's.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The data directory.
    dataset : str
        "lisa" or "mnist".
    test_fraction : float or None
        Share held out for test; for MNIST, None is the official 10,000 test images (a model
        trained on the 60,000); for LISA, None is our default split (paper.LISA_TEST_FRACTION).
    split_seed : int
        Seed of the split.

    Returns
    -------
    images : np.ndarray
        Float32 images [N, H, W, C] in [0, 1].
    labels : np.ndarray
        Integer labels [N].
    """
    if dataset == "mnist":
        from blurnet_tf.data.mnist import load_mnist, load_mnist_official

        if test_fraction is None:
            return load_mnist_official(data_dir)["test"]
        return load_mnist(data_dir, test_fraction, split_seed)[2:]
    fraction = paper.LISA_TEST_FRACTION if test_fraction is None else test_fraction  # None: LISA's default split
    _, test, _ = load_lisa_split(data_dir, fraction, split_seed)
    return test.images, test.labels


def hold_out_validation(train: LisaData, fraction: float, seed: int = 1) -> tuple[LisaData, LisaData]:
    """Hold whole tracks of the training split out as a validation split.

    Used for choosing a defence's parameters (Pixel Deflection's parameter search), so the test
    split is never looked at.

    Parameters
    ----------
    train : LisaData
        The training split.
    fraction : float
        Share of each class's images to hold out, by whole tracks.
    seed : int
        Seed of the track order (see track_split); default 1.

    Returns
    -------
    train, validation : LisaData
        The rest of the training split and the held-out tracks.
    """
    train_idx, val_idx = track_split(train, fraction, seed)
    return train.subset(train_idx), train.subset(val_idx)


def keep_training_tracks(train: LisaData, fraction: float, seed: int = 0) -> LisaData:
    """About `fraction` of each class's training images, by whole tracks, every class kept.

    A model trained on it to convergence is less accurate without being stopped early: the fair
    comparator of issue 41. The tracks are chosen as track_split chooses test tracks (seeded order, a
    track taken when it brings its class closer to the goal); a class left without a track keeps its
    smallest one.

    Parameters
    ----------
    train : LisaData
        The training split.
    fraction : float
        Share of each class's images to keep, in (0, 1]; 1 keeps everything.
    seed : int
        Seed of the track order; default 0.

    Returns
    -------
    LisaData
        The kept crops, in their original order.
    """
    if not (is_number(fraction) and 0 < fraction <= 1):
        raise ValueError(f"fraction: expected a share in (0, 1], got {fraction!r}")
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and 0 <= seed <= 2**32 - 1):
        raise ValueError(f"seed: expected an integer in 0..{2**32 - 1}, got {seed!r}")
    if fraction == 1:
        return train
    _, kept = track_split(train, fraction, seed)
    keep = np.zeros(len(train.labels), bool)
    keep[kept] = True
    for c in np.unique(train.labels):
        if not keep[train.labels == c].any():  # the class's tracks all overshoot the goal: its smallest one
            tracks, sizes = np.unique(train.tracks[train.labels == c], return_counts=True)
            keep |= train.tracks == tracks[np.argmin(sizes)]
    return train.subset(np.flatnonzero(keep))
