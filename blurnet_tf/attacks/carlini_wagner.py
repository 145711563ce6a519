"""Carlini & Wagner L2 (S&P 2017), batched in one tf.function per binary-search round.

    minimise ||x' - x||_2^2 + c * max(Z(x')_y - max_{i != y} Z(x')_i, -kappa),  x' = (tanh(w) + 1) / 2

(untargeted form, eq. of §V-A with f_6), Adam on w, and a per-image binary search over c.
cleverhans 4's TF2 C&W does not run with Keras 3 models (`self.optimizer.variables()` is a property in
Keras 3, and batched `const` fails), hence this module.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from blurnet_tf.attacks.attack_result import AttackResult, batchable, scored, settings_of
from blurnet_tf.attacks.logits_model import logits_fn
from blurnet_tf.deprecation import renamed_keywords


@renamed_keywords(images="x", labels="y", clip="clip_values", max_iterations="steps")
@batchable("C&W L2")
def carlini_wagner_l2(
    model: Callable[..., tf.Tensor],
    x: np.ndarray,
    y: np.ndarray,
    *,
    confidence: float = 0.0,
    initial_const: float = 1e-2,
    binary_search_steps: int = 5,
    steps: int = 200,
    learning_rate: float = 1e-2,
    clip_values: tuple[float, float] = (0.0, 1.0),
    batch_size: int | None = None,
) -> AttackResult:
    """Untargeted C&W L2 (Carlini & Wagner, S&P 2017) on a batch.

    Adam on w (x' = (tanh(w) + 1) / 2) per constant c, with a per-image binary search over c; the
    smallest successful adversarial per image is kept.

    Parameters
    ----------
    model : Callable[..., tf.Tensor]
        A Keras model or any callable from images [N, H, W, C] to logits [N, classes].
    x : np.ndarray
        [N, H, W, C] images within clip_values.
    y : np.ndarray
        [N] integer labels.
    confidence : float
        The margin kappa the adversarial's logits must clear.
    initial_const : float
        The first constant c of the binary search.
    binary_search_steps : int
        Rounds of the binary search over c.
    steps : int
        Adam steps per constant.
    learning_rate : float
        Adam's learning rate.
    clip_values : tuple[float, float]
        The box (low, high) the images live in.
    batch_size : int | None
        Attack this many images at a time (their results are the same; memory is not), with a progress bar;
        None: all at once (`attack_result.batchable`).

    Returns
    -------
    AttackResult
        The smallest successful adversarial per image (the input itself, with success False, where
        no constant succeeded), its success, its L2 norm and the settings.
    """
    settings = settings_of(
        "carlini_wagner_l2",
        confidence=confidence,
        initial_const=initial_const,
        binary_search_steps=binary_search_steps,
        steps=steps,
        learning_rate=learning_rate,
        clip_values=clip_values,
        batch_size=batch_size,
    )
    to_logits = logits_fn(model)
    images, labels = x, y
    x = tf.constant(x, tf.float32)
    y = tf.constant(y, tf.int32)
    n = x.shape[0]
    lo_clip, hi_clip = clip_values
    scaled = (x - lo_clip) / (hi_clip - lo_clip)
    w0 = tf.atanh(tf.clip_by_value(scaled * 2 - 1, -1 + 1e-6, 1 - 1e-6))
    w = tf.Variable(w0)
    opt = tf.keras.optimizers.Adam(learning_rate)
    onehot = tf.one_hot(
        y, model.output_shape[-1] if hasattr(model, "output_shape") else int(to_logits(x[:1]).shape[-1])
    )

    def to_image(v):
        return (tf.tanh(v) + 1) / 2 * (hi_clip - lo_clip) + lo_clip

    @tf.function
    def attack(const):
        w.assign(w0)
        for var in opt.variables:  # a fresh Adam per constant (its learning rate is a variable too)
            if "learning_rate" not in var.name:
                var.assign(tf.zeros_like(var))
        best_l2 = tf.fill([n], np.inf)
        best_adv = x
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                adv = to_image(w)
                logits = to_logits(adv)
                real = tf.reduce_sum(onehot * logits, axis=1)
                other = tf.reduce_max(logits - 1e9 * onehot, axis=1)
                margin = tf.maximum(real - other + confidence, 0.0)
                l2 = tf.reduce_sum(tf.square(adv - x), axis=[1, 2, 3])
                loss = tf.reduce_sum(l2 + const * margin)
            opt.apply_gradients([(tape.gradient(loss, w), w)])
            success = tf.logical_and(real - other + confidence <= 0.0, l2 < best_l2)
            best_l2 = tf.where(success, l2, best_l2)
            best_adv = tf.where(success[:, None, None, None], adv, best_adv)
        return best_l2, best_adv

    const = np.full(n, initial_const, np.float32)
    lower, upper = np.zeros(n, np.float32), np.full(n, 1e10, np.float32)
    best_l2, best_adv = np.full(n, np.inf, np.float32), np.asarray(images, np.float32).copy()
    opt.build([w])
    for _ in range(binary_search_steps):
        l2, adv = attack(tf.constant(const))
        l2, adv = l2.numpy(), adv.numpy()
        found = np.isfinite(l2)
        better = found & (l2 < best_l2)
        best_l2[better], best_adv[better] = l2[better], adv[better]
        upper[found] = np.minimum(upper[found], const[found])  # success: try a smaller constant
        lower[~found] = np.maximum(lower[~found], const[~found])
        const = np.where(upper < 1e9, (lower + upper) / 2, const * 10).astype(np.float32)
    return scored(to_logits, images, best_adv, labels, settings=settings)
