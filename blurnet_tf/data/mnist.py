"""MNIST from the official idx files (gzipped or not): the old split of the 10,000 test images
(`load_mnist`) or the official 60,000 / 10,000 split (`load_mnist_official`)."""

from __future__ import annotations

import gzip
import os
import pathlib

import numpy as np

from blurnet_tf.errors import DataError

IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
OFFICIAL_TRAIN, OFFICIAL_TEST = 60000, 10000


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parses an idx file: magic (0,0,dtype 0x08,ndim), big-endian dims, uint8 data."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(path, f"cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(path, "not an idx file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(path, f"header says {dims} but holds {data.size} values (truncated?)")
    return data.reshape(dims)


def load_mnist(
    data_dir: str | os.PathLike[str], test_fraction: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 10,000 official test images split into (x_train, y_train, x_test, y_test).

    No MNIST training set is at hand, so the test set is split with a fixed seed. Images are
    float32 (N,28,28,1) in [0,1].
    """
    folder = pathlib.Path(data_dir) / "mnist"
    x = read_idx(folder / IMAGES).astype(np.float32)[..., None] / 255.0
    y = read_idx(folder / LABELS).astype(np.int32)
    if len(x) != len(y):
        raise DataError(folder, f"{len(x)} images but {len(y)} labels")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def _images_and_labels(folder: pathlib.Path, images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(folder / images).astype(np.float32)[..., None] / 255.0
    y = read_idx(folder / labels).astype(np.int32)
    if len(x) != len(y):
        raise DataError(folder, f"{len(x)} images but {len(y)} labels")
    return x, y


def load_mnist_official(
    data_dir: str | os.PathLike[str], validation: int = 0, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "validation", "test"}: (images, labels) of the official 60,000 / 10,000 split, as
    the Defend++ paper trains and tests. `validation` images (a permutation seeded by `seed`) are
    held out of the 60,000 and not in "train" (which keeps the file's order); 0 gives an empty
    validation set. Images are float32 (N,28,28,1) in [0,1], labels int32 0-9.

    A data directory with only the test files (a copy or cache made before the training files
    were added) is a one-line DataError, never a silent fall-back to the test-set split."""
    folder = pathlib.Path(data_dir) / "mnist"
    missing = [name for name in (TRAIN_IMAGES, TRAIN_LABELS) if not (folder / name).is_file()]
    if missing and (folder / IMAGES).is_file():
        raise DataError(
            folder,
            f"only the MNIST test files are here, not {' or '.join(missing)} (a copy made "
            "before the training set was added): add them, or delete the cache's .complete "
            "to download them",
        )
    x_train, y_train = _images_and_labels(folder, TRAIN_IMAGES, TRAIN_LABELS)
    x_test, y_test = _images_and_labels(folder, IMAGES, LABELS)
    for split, n, want in (("training", len(y_train), OFFICIAL_TRAIN), ("test", len(y_test), OFFICIAL_TEST)):
        if n != want:
            raise DataError(folder, f"the official {split} set has {want} images, these files hold {n}")
    if not 0 <= validation < len(y_train):
        raise ValueError(f"validation must be in [0, {len(y_train)}), got {validation}")
    held = np.zeros(len(y_train), bool)
    held[np.random.default_rng(seed).permutation(len(y_train))[:validation]] = True
    return {
        "train": (x_train[~held], y_train[~held]),
        "validation": (x_train[held], y_train[held]),
        "test": (x_test, y_test),
    }
