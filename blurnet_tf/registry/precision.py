"""Compute precision of a model: float32, or mixed bfloat16 (bf16 compute, float32 weights).

Under `mixed_bfloat16` every layer computes in bfloat16 and keeps float32 variables, so Adam's
state, the RP2 noise and every loss stay float32; the logits layer computes in float32, so the
softmax, the cross-entropy and the attacks' gradients start from float32 logits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from blurnet_tf.paper import PRECISIONS  # noqa: E402  (kept where binaries can read it without Keras)

FLOAT32_LAYERS = ("logits",)  # the output layer of our classifiers


def with_precision(model: keras.Model, precision: str) -> keras.Model:
    """The same functional model and weights, computing in `precision` (a copy; `model` is untouched)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            continue
        policy = "float32" if layer["config"]["name"] in FLOAT32_LAYERS else precision
        layer["config"]["dtype"] = {
            "module": "keras",
            "class_name": "DTypePolicy",
            "config": {"name": policy},
            "registered_name": None,
        }
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def compute_precision(model: keras.Model) -> str:
    """'mixed_bfloat16' when any layer computes in bfloat16, else 'float32'."""
    return (
        "mixed_bfloat16"
        if any(getattr(layer, "compute_dtype", "float32") == "bfloat16" for layer in model.layers)
        else "float32"
    )


@contextlib.contextmanager
def global_precision(precision: str) -> Iterator[None]:
    """Models built inside compute in `precision` (Keras' global dtype policy, restored after)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)
