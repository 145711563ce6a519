"""MNIST from the official idx files (gzipped or not), split with a fixed seed."""

from __future__ import annotations

import gzip
import os
import pathlib

import numpy as np

from blurnet_tf.errors import DataError

IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"


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
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(path, f"header says {dims} but holds {data.size} values (truncated?)")
    return data.reshape(dims)


def load_mnist(data_dir: str | os.PathLike[str], test_fraction: float = 0.3,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
