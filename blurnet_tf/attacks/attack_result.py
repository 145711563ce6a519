"""What a minimum-norm attack returns: the images, whether each is adversarial, and how far it moved."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """What a minimum-norm attack returns.

    Success is read off the model on the returned images, not trusted from the attack's own loop.

    Attributes
    ----------
    adversarial : np.ndarray
        [N, H, W, C]: the smallest adversarial found per image, or the image itself where the attack failed.
    success : np.ndarray
        [N] bool: the model's prediction on `adversarial` is not the label (untargeted) or is the
        target (targeted), checked on the returned images.
    norm : np.ndarray
        [N]: the L2 norm of adversarial − image (0 where it failed).
    """

    adversarial: np.ndarray
    success: np.ndarray
    norm: np.ndarray


def scored(
    to_logits: Callable[[tf.Tensor], tf.Tensor],
    images: np.ndarray,
    adversarial: np.ndarray,
    labels: np.ndarray,
    targeted: bool = False,
    batch: int = 500,
) -> AttackResult:
    """The AttackResult of `adversarial`, its success read off the model itself."""
    adversarial = np.asarray(adversarial, np.float32)
    pred = np.concatenate(
        [
            np.argmax(to_logits(tf.constant(adversarial[i : i + batch])), axis=-1)
            for i in range(0, len(adversarial), batch)
        ]
    )
    labels = np.asarray(labels)
    success = pred == labels if targeted else pred != labels
    norm = np.sqrt(np.sum(np.square(adversarial - np.asarray(images, np.float32)).reshape(len(labels), -1), axis=1))
    return AttackResult(adversarial, success, np.where(success, norm, 0.0).astype(np.float32))


def in_batches(
    attack: Callable[..., AttackResult],
    model: Callable[..., tf.Tensor],
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    name: str,
    **settings: object,
) -> AttackResult:
    """`attack` over consecutive chunks of `batch_size` images, their results joined in order (the per-image
    attacks, C&W and DDN, give each image the same result in any batch); a tqdm bar over the chunks on a
    terminal."""
    from tqdm.auto import tqdm

    if not (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1):
        raise ValueError(f"batch_size: expected an integer >= 1 or None, got {batch_size!r}")
    parts = [
        attack(model, x[i : i + batch_size], y[i : i + batch_size], **settings)
        for i in tqdm(range(0, len(x), batch_size), desc=name, unit="batch", leave=False, disable=None)
    ]
    return AttackResult(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(AttackResult))
    )


def batchable(name: str) -> Callable[[Callable[..., AttackResult]], Callable[..., AttackResult]]:
    """Decorator of a per-image attack: called with batch_size=..., it runs on chunks of that many images
    (in_batches, `name` on the bar); without, as written."""

    def wrap(attack: Callable[..., AttackResult]) -> Callable[..., AttackResult]:
        @functools.wraps(attack)
        def call(model: Any, x: Any, y: Any, *, batch_size: int | None = None, **settings: Any) -> AttackResult:
            if batch_size is None:
                return attack(model, x, y, **settings)
            return in_batches(attack, model, np.asarray(x), np.asarray(y), batch_size, name, **settings)

        return call

    return wrap
