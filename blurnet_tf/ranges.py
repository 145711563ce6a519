"""The range checks every function that checks its arguments shares: a real number (NumPy scalars included;
bools, NaN and infinity not) and a count (an integer >= 1)."""

from __future__ import annotations

from typing import Any

import numpy as np


def is_number(v: Any) -> bool:
    """A finite real number: an int, a float or a NumPy scalar, not a bool."""
    return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) and bool(np.isfinite(v))


def is_count(v: Any) -> bool:
    """An integer >= 1 (NumPy integers too), not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and bool(v >= 1)


MAX_VIEWS = 64  # RP2's views a step in expectation over viewing conditions: each is its own resampling in the graph
