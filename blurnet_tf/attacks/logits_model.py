"""The one adapter every attack calls its model through: a Keras model, or any callable from images
in [0, 1] to logits (a defence's BPDA / EOT stand-in, a plain Python function)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import keras
import tensorflow as tf


def logits_fn(model: keras.Model | Callable[..., tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
    """The function x -> logits through which every attack calls its model.

    `model(x, training=False)` for Keras models and callables that take `training` (so dropout and
    noise layers stay in inference mode), `model(x)` for any other callable.

    Parameters
    ----------
    model : keras.Model | Callable[..., tf.Tensor]
        A Keras model or any callable from images [N, H, W, C] in [0, 1] to logits [N, classes]
        (a defence's BPDA / EOT stand-in, a plain Python function).

    Returns
    -------
    Callable[[tf.Tensor], tf.Tensor]
        x [N, H, W, C] -> logits [N, classes], in inference mode where the model has one.

    Raises
    ------
    TypeError
        If `model` is not callable.
    """
    if not callable(model):
        raise TypeError(f"model must be a Keras model or a callable from images to logits, got {type(model).__name__}")
    if isinstance(model, keras.layers.Layer):
        return lambda x: model(x, training=False)
    try:
        params = inspect.signature(model).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return model
    if any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params):
        return lambda x: model(x, training=False)
    return model
