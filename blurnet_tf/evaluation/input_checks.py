"""The checks every evaluation entry point runs on its arguments first: one ValueError naming the argument
that is wrong and what was expected (the CLI maps the name to its flag)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from blurnet_tf.attacks import logits_fn
from blurnet_tf.attacks.input_arrays import checked_images, checked_labels

_BATCH = 256  # images per model call of the checks


def _probabilities(out: np.ndarray) -> bool:
    return bool(np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4))


def check_inputs(
    model: Any, images: Any, labels: Any, mask: Any = None, targets: Any = None, constant_ok: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """(images float32, labels int, classes), or one ValueError naming the argument that is wrong. constant_ok:
    a model with the same logits for every image is let through (the strength checks flag it as not robust)."""
    x = checked_images(images, "images")
    y = checked_labels(labels, len(x), "labels")
    try:  # every image: a NaN on one of them would be read as class 0 (argmax), i.e. a made-up verdict
        f = logits_fn(model)
        out = np.concatenate(
            [np.asarray(f(tf.constant(x[i : i + _BATCH], tf.float32))) for i in range(0, len(x), _BATCH)]
        )
    except Exception as exc:  # noqa: BLE001 - any failure of the user's model is reported as its input mismatch
        raise ValueError(f"model: cannot be called on images shaped {x.shape[1:]} ({type(exc).__name__})") from None
    if out.ndim != 2 or len(out) != len(x):
        raise ValueError(f"model: expected logits [N, classes] for {len(x)} images, got an output shaped {out.shape}")
    classes = out.shape[1]
    if classes < 2:
        raise ValueError(f"model: expected logits over at least 2 classes, got {classes} output per image")
    broken = ~np.isfinite(out).all(axis=1)
    if broken.any():
        raise ValueError(
            f"model: returns non-finite logits (NaN or inf) on {int(broken.sum())} of {len(x)} images; "
            "no accuracy or robustness can be read from them"
        )
    if (
        not constant_ok and len(x) > 1 and np.all(out == out[:1])
    ):  # it ignores its input: "robust" to any attack, a made-up verdict
        raise ValueError(
            f"model: returns the same logits for all {len(x)} images (does it read its input?); "
            "no accuracy or robustness can be read from it"
        )
    if _probabilities(out):
        raise ValueError("model: returns probabilities (rows sum to 1); pass the model without its softmax (logits)")
    if y.min() < 0 or y.max() >= classes:
        raise ValueError(f"labels: expected classes 0..{classes - 1}, got {y.min()}..{y.max()}")
    _check_mask_and_targets(mask, targets, x.shape[1:], classes)
    return x.astype(np.float32), y.astype(np.int64), classes


def _check_mask_and_targets(mask: Any, targets: Any, image_shape: tuple[int, ...], classes: int) -> None:
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != image_shape or not np.isin(m, (0, 1)).all():
            raise ValueError(f"mask: expected 0 and 1 shaped like one image {image_shape}, got {m.dtype} {m.shape}")
    if targets is not None:
        t = np.atleast_1d(np.asarray(targets))
        if not np.issubdtype(t.dtype, np.integer) or t.min() < 0 or t.max() >= classes:
            raise ValueError(f"targets: expected classes 0..{classes - 1}, got {t.tolist()}")


def check_source(source: Any, x: np.ndarray, classes: int) -> None:
    """A second model (a transfer attack's source) must take the same images and score the same classes
    as logits."""
    try:
        out = np.asarray(logits_fn(source)(tf.constant(x[:2])))
    except Exception as exc:  # noqa: BLE001 - reported as the source model's mismatch
        raise ValueError(f"source: cannot be called on images shaped {x.shape[1:]} ({type(exc).__name__})") from None
    if out.shape != (min(2, len(x)), classes):
        raise ValueError(
            f"source: expected logits over the model's {classes} classes, got an output shaped {out.shape}"
        )
    if _probabilities(out):
        raise ValueError("source: returns probabilities (rows sum to 1); pass the model without its softmax (logits)")
