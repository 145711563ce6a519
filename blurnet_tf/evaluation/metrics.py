"""Accuracy and the RP2 attack metrics (BlurNet §IV; RP2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras


def predict_classes(model: keras.Model | Callable[..., Any], images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Arg-max class of the model's logits, in inference mode; `model` a Keras model or any callable
    images -> logits (a defence's EOT stand-in), called in batches."""
    import keras

    if isinstance(model, keras.Model):
        return np.argmax(model.predict(images, batch_size=batch_size, verbose=0), axis=-1)
    import tensorflow as tf

    from blurnet_tf.attacks.logits_model import logits_fn

    f = logits_fn(model)
    return np.concatenate(
        [
            np.argmax(np.asarray(f(tf.constant(images[i : i + batch_size], tf.float32))), -1)
            for i in range(0, len(images), batch_size)
        ]
    )


def accuracy(predictions: np.ndarray, labels: np.ndarray | int) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def correctly_classified(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Up to n (image, label) pairs the model gets right, drawn with a fixed seed, in index order."""
    pred = predict_classes(model, images)
    idx = np.flatnonzero(pred == labels)
    idx = np.sort(np.random.default_rng(seed).permutation(idx)[:n])
    return images[idx], labels[idx]


def per_class_accuracy(predictions: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    out = {}
    for c in np.unique(labels):
        sel = labels == c
        out[class_names[c]] = float(np.mean(predictions[sel] == c))
    return out


def attack_success_rate(clean_pred: np.ndarray, adv_pred: np.ndarray) -> float:
    """ASR = mean 1[F(x) != F(x_adv)]: untargeted count against the clean prediction."""
    return float(np.mean(np.asarray(clean_pred) != np.asarray(adv_pred)))


def targeted_success(adv_pred: np.ndarray, target: int) -> float:
    return float(np.mean(np.asarray(adv_pred) == target))


def l2_dissimilarity(clean: np.ndarray, adversarial: np.ndarray) -> float:
    """mean_n ||x_n - x_adv,n||_2 / ||x_n||_2 (full paper's definition)."""
    clean = np.asarray(clean, np.float64).reshape(len(clean), -1)
    adversarial = np.asarray(adversarial, np.float64).reshape(len(adversarial), -1)
    return float(np.mean(np.linalg.norm(clean - adversarial, axis=1) / np.linalg.norm(clean, axis=1)))


def apply_sticker(
    images: np.ndarray,
    mask: np.ndarray,
    noise: np.ndarray,
    noise_clip: float = 20.0,
    input_clip: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """clip(x + mask * clip(noise, -c, c), lo, hi): the RP2 adversarial image."""
    noise = np.clip(noise, -noise_clip, noise_clip)
    return np.clip(images + mask * noise, *input_clip).astype(np.float32)
