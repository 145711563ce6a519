"""What every attack but RP2 returns: the images, whether each is adversarial, how far it moved, and the
settings it ran with."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from blurnet_tf.deprecation import REMOVED_IN


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """What every attack but RP2 returns (RP2, over lambdas x targets x images, returns an RP2Result).

    Success is read off the model on the returned images, not trusted from the attack's own loop.

    Attributes
    ----------
    adversarial : np.ndarray
        [N, H, W, C]: the attack's image per input; for the minimum-norm attacks (C&W, DDN, L-BFGS) and
        AutoAttack the image itself where the attack failed.
    success : np.ndarray
        [N] bool: the model's prediction on `adversarial` is not the label (untargeted) or is the
        target (targeted), checked on the returned images.
    norm : np.ndarray
        [N] float32: the L2 norm of adversarial − image where `success`, 0 where not; the L2 norm for the L∞
        attacks too (linf_attack), except autoattack's, which is in its threat model (settings["norm"]: the
        L∞ norm for "Linf").
    settings : dict[str, Any]
        What ran: the attack's function name under "attack" and the keyword settings it ran with, as JSON
        values (a tuple as a list, an ART preprocessor by its class name).
    """

    adversarial: np.ndarray
    success: np.ndarray
    norm: np.ndarray
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """`adversarial`, so that np.asarray(linf_attack(...)) still works as when attacks returned bare arrays;
        deprecated: one DeprecationWarning per conversion (Python's default filters show it once per line)."""
        warnings.warn(
            "attacks now return AttackResult; use .adversarial (converting the result itself to an array goes in "
            f"{REMOVED_IN})",
            DeprecationWarning,
            stacklevel=2,
        )
        return np.array(self.adversarial, dtype=dtype, copy=copy)


def settings_of(attack: str, **settings: Any) -> dict[str, Any]:
    """An AttackResult's settings: {"attack": attack, **settings} as JSON values (NumPy and TensorFlow values as
    Python numbers or lists, tuples as lists, any other object by its class name)."""

    def plain(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, (np.ndarray, np.generic)):
            return value.tolist()
        if isinstance(value, tf.Tensor):
            return value.numpy().tolist()
        return type(value).__name__  # an ART preprocessor, say: recorded, never a reason to fail the attack

    return {"attack": attack, **{name: plain(value) for name, value in settings.items()}}


def predicted(to_logits: Callable[[tf.Tensor], tf.Tensor], images: np.ndarray, batch: int = 500) -> np.ndarray:
    """[N] the model's class of each image, `batch` images per call."""
    images = np.asarray(images, np.float32)
    return np.concatenate(
        [np.argmax(to_logits(tf.constant(images[i : i + batch])), axis=-1) for i in range(0, len(images), batch)]
    )


def scored(
    to_logits: Callable[[tf.Tensor], tf.Tensor],
    images: np.ndarray,
    adversarial: np.ndarray,
    labels: np.ndarray,
    targeted: bool = False,
    batch: int = 500,
    *,
    settings: dict[str, Any] | None = None,
) -> AttackResult:
    """The AttackResult of `adversarial`, its success read off the model itself (`batch` images per call) and
    its norm in L2; `settings` from settings_of."""
    adversarial = np.asarray(adversarial, np.float32)
    pred = predicted(to_logits, adversarial, batch)
    labels = np.asarray(labels)
    success = pred == labels if targeted else pred != labels
    norm = np.sqrt(np.sum(np.square(adversarial - np.asarray(images, np.float32)).reshape(len(labels), -1), axis=1))
    return AttackResult(adversarial, success, np.where(success, norm, 0.0).astype(np.float32), settings or {})


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
    attacks, C&W and DDN, give each image the same result in any batch) with the parts' settings and the
    batch_size; a tqdm bar over the chunks on a terminal."""
    from tqdm.auto import tqdm

    if not (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1):
        raise ValueError(f"batch_size: expected an integer >= 1 or None, got {batch_size!r}")
    parts = [
        attack(model, x[i : i + batch_size], y[i : i + batch_size], **settings)
        for i in tqdm(range(0, len(x), batch_size), desc=name, unit="batch", leave=False, disable=None)
    ]
    return AttackResult(
        np.concatenate([p.adversarial for p in parts]),
        np.concatenate([p.success for p in parts]),
        np.concatenate([p.norm for p in parts]),
        {**parts[0].settings, "batch_size": batch_size},  # every part ran the same settings
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
