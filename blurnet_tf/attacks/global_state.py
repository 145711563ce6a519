"""Seeds and log levels set for one call and given back after it. ART draws its random starts and Square's
squares from NumPy's global generator and logs at INFO; cleverhans' random start draws from TensorFlow's
global seed: a library call must leave the caller's global state as it found it (issue 42)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import context as tf_context


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """NumPy's and TensorFlow's global seeds set to `seed` inside the block, and the caller's given back after
    it (NumPy's whole generator state; TensorFlow's global seed). None: nothing is touched."""
    if seed is None:
        yield
        return
    context = tf_context.context()
    state, tf_seed = np.random.get_state(), tf_context.global_seed()
    op_seeds = getattr(context, "_rng", None)  # where TensorFlow draws each op's seed from the global one
    op_state = op_seeds.getstate() if op_seeds is not None else None
    np.random.seed(seed)
    tf.random.set_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
        tf.random.set_seed(tf_seed)
        if op_state is not None:  # the caller's next random op continues its stream instead of restarting it
            context._rng.setstate(op_state)


@contextlib.contextmanager
def quiet_logger(name: str, level: int = logging.WARNING) -> Iterator[None]:
    """Logger `name` at `level` or above inside the block (ART's per-batch INFO lines), its own level after."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(level, before))
    try:
        yield
    finally:
        logger.setLevel(before)
