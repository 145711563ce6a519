"""Parse the original RP2 printouts: their flags and the per-epoch loss and % misclassified."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from blurnet_tf.data.rp2_assets import REFERENCE_LOGS, rp2_dir
from blurnet_tf.errors import DataError

_EPOCH = re.compile(
    r"Epoch (\d+) adversarial loss ([\d.]+) model loss on clean img: ([\d.]+) "
    r"percent misclassified images ([\d.]+)"
)


def parse_reference_log(data_dir: str | os.PathLike[str], mask: str = "rectangles") -> dict[str, Any]:
    path = rp2_dir(data_dir) / REFERENCE_LOGS[mask]
    if not path.is_file():
        raise DataError(path, "reference log not found")
    text = path.read_text()
    flags = {}
    for line in text.split("Created TensorFlow session")[0].splitlines()[2:]:
        name, _, value = line.partition(" ")
        flags[name] = _number(value)
    rows = [m.groups() for m in _EPOCH.finditer(text)]
    if not rows:
        raise DataError(path, "no 'Epoch N adversarial loss ...' lines")
    epochs = np.array([int(r[0]) for r in rows])
    return {
        "flags": flags,
        "epoch": epochs,
        "loss": np.array([float(r[1]) for r in rows]),
        "misclassified": np.array([float(r[3]) for r in rows]),
    }


def _number(value: str) -> int | float | str:
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value
