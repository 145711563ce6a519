"""Decoupled Direction and Norm (Rony et al., CVPR 2019, Algorithm 1), untargeted, batched in one
tf.function.

Every step moves δ along the normalised gradient of the cross-entropy (step α, cosine-annealed
from 1 to 0.01), then rescales it to the norm ε: ε shrinks by (1-γ) while the current image is
adversarial and grows by (1+γ) while it is not. The smallest-norm adversarial seen is returned.
No maintained TF2 DDN exists (cleverhans 4 has none; foolbox 3 fails on NumPy 2), hence this
module; `tests/test_ddn.py` checks it against the analytic minimum of a linear classifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from blurnet_tf.attacks.attack_result import AttackResult, batchable, scored, settings_of
from blurnet_tf.attacks.logits_model import logits_fn
from blurnet_tf.deprecation import renamed_keywords


@renamed_keywords(images="x", labels="y", clip="clip_values")
@batchable("DDN")
def ddn(
    model: Callable[..., tf.Tensor],
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int = 100,
    gamma: float = 0.05,
    init_norm: float = 1.0,
    alpha_max: float = 1.0,
    alpha_min: float = 0.01,
    quantize_levels: int | None = 256,
    clip_values: tuple[float, float] = (0.0, 1.0),
    batch_size: int | None = None,
) -> AttackResult:
    """Untargeted DDN (Rony et al., CVPR 2019, Algorithm 1) on a batch.

    The smallest-L2 adversarial found per image, over `steps` direction steps with the norm ε
    rescaled by (1 ± γ) each step.

    Parameters
    ----------
    model : Callable[..., tf.Tensor]
        A Keras model or any callable from images [N, H, W, C] to logits [N, classes].
    x : np.ndarray
        [N, H, W, C] images within clip_values.
    y : np.ndarray
        [N] integer labels.
    steps : int
        Number of steps.
    gamma : float
        The factor γ by which ε shrinks (adversarial) or grows (not yet) each step.
    init_norm : float
        The initial norm ε.
    alpha_max : float
        The first step size α, cosine-annealed down to alpha_min.
    alpha_min : float
        The last step size α.
    quantize_levels : int | None
        Round every iterate to that many grey levels, as the reference code does (None: no rounding).
    clip_values : tuple[float, float]
        The box (low, high) the images live in.
    batch_size : int | None
        Attack this many images at a time (their results are the same; memory is not), with a progress bar;
        None: all at once (`attack_result.batchable`).

    Returns
    -------
    AttackResult
        The smallest-L2 adversarial found per image (the image itself, success False, where none
        was), its success, its L2 norm and the settings.
    """
    settings = settings_of(
        "ddn",
        steps=steps,
        gamma=gamma,
        init_norm=init_norm,
        alpha_max=alpha_max,
        alpha_min=alpha_min,
        quantize_levels=quantize_levels,
        clip_values=clip_values,
        batch_size=batch_size,
    )
    to_logits = logits_fn(model)
    images, labels = x, y
    x = tf.constant(x, tf.float32)
    y = tf.constant(y, tf.int32)
    lo, hi = clip_values
    axes = list(range(1, len(x.shape)))
    shape = [-1] + [1] * (len(x.shape) - 1)
    # The largest perturbation the box allows: ε never needs to exceed it.
    worst_norm = tf.norm(tf.reshape(tf.maximum(x - lo, hi - x), [x.shape[0], -1]), axis=1)

    def l2(t):
        return tf.sqrt(tf.reduce_sum(tf.square(t), axis=axes) + 1e-12)

    @tf.function
    def attack():
        delta = tf.zeros_like(x)
        norm = tf.fill([x.shape[0]], float(init_norm))
        best_l2 = tf.fill([x.shape[0]], np.inf)
        best_adv = x
        for k in tf.range(steps):
            alpha = alpha_min + (alpha_max - alpha_min) * (1 + tf.cos(math.pi * tf.cast(k, tf.float32) / steps)) / 2
            adv = x + delta
            with tf.GradientTape() as tape:
                tape.watch(adv)
                logits = to_logits(adv)
                loss = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            grad = tape.gradient(loss, adv)
            is_adv = tf.argmax(logits, axis=1, output_type=tf.int32) != y
            size = l2(delta)
            better = is_adv & (size < best_l2)
            best_l2 = tf.where(better, size, best_l2)
            best_adv = tf.where(tf.reshape(better, shape), adv, best_adv)
            norm = tf.minimum(tf.where(is_adv, norm * (1 - gamma), norm * (1 + gamma)), worst_norm)
            # A confident model's cross-entropy gradient can be ~1e-24: its squares underflow in
            # float32, so scale by the largest entry before normalising. An exactly zero gradient
            # gets a random direction, as in the reference code.
            peak = tf.reduce_max(tf.abs(grad), axis=axes, keepdims=True)
            grad = tf.where(peak > 0, grad / tf.where(peak > 0, peak, 1.0), tf.random.normal(tf.shape(grad)))
            delta = delta + alpha * grad / tf.reshape(l2(grad), shape)  # ascend the loss
            delta = delta * tf.reshape(norm / l2(delta), shape)
            stepped = tf.clip_by_value(x + delta, lo, hi)
            if quantize_levels:
                stepped = lo + tf.round((stepped - lo) / (hi - lo) * (quantize_levels - 1)) / (quantize_levels - 1) * (
                    hi - lo
                )
            delta = stepped - x
        # The last iterate is checked too.
        adv = x + delta
        is_adv = tf.argmax(to_logits(adv), axis=1, output_type=tf.int32) != y
        better = is_adv & (l2(delta) < best_l2)
        return tf.where(tf.reshape(better, shape), adv, best_adv)

    return scored(to_logits, images, attack().numpy(), labels, settings=settings)
