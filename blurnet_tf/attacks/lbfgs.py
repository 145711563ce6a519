"""Box-constrained L-BFGS (Szegedy et al. 2014, §4.1), the first optimisation attack:

    minimise  ||r||_2^2 + c * CE(f(x + r), t)   subject to  x + r in [0, 1]^m,

solved by scipy's L-BFGS-B with box bounds, with a search over c per image for the smallest c
whose minimiser is classified as the target t (the smallest c weighs the distortion most, so it
gives the smallest r). The paper writes c|r| + loss; like cleverhans' LBFGS we weigh the loss and
square the norm (smooth at r = 0); both forms have the same minimisers up to the scale of c.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.optimize
import tensorflow as tf

__all__ = ["lbfgs_attack"]

from blurnet_tf.attacks.attack_result import AttackResult, scored, settings_of
from blurnet_tf.attacks.logits_model import logits_fn
from blurnet_tf.deprecation import renamed_keywords


@renamed_keywords(images="x", clip="clip_values", max_iterations="steps")
def lbfgs_attack(
    model: Callable[..., tf.Tensor],
    x: np.ndarray,
    targets: np.ndarray,
    *,
    initial_const: float = 1e-2,
    search_steps: int = 5,
    steps: int = 1000,
    clip_values: tuple[float, float] = (0.0, 1.0),
) -> AttackResult:
    """Targeted box-constrained L-BFGS (Szegedy et al. 2014, §4.1) on a batch.

    The images' problems are independent, so they are solved as one separable sum in a single
    L-BFGS-B call per c, with a per-image search for the smallest successful c.

    Parameters
    ----------
    model : Callable[..., tf.Tensor]
        Any callable from images [N, H, W, C] to logits [N, classes] (a Keras model included).
    x : np.ndarray
        [N, H, W, C] images within clip_values.
    targets : np.ndarray
        [N] the target class t of each image.
    initial_const : float
        The first constant c weighing the cross-entropy.
    search_steps : int
        Rounds of the search over c.
    steps : int
        L-BFGS-B iterations per c.
    clip_values : tuple[float, float]
        The box (low, high) the images live in.

    Returns
    -------
    AttackResult
        The smallest-L2 adversarial found per image (the input itself, success False, where no c
        succeeded), its success (classified as the target), its L2 norm and the settings.
    """
    settings = settings_of(
        "lbfgs_attack", initial_const=initial_const, search_steps=search_steps, steps=steps, clip_values=clip_values
    )
    to_logits = logits_fn(model)
    images, clip = x, clip_values
    x = np.asarray(x, np.float32)
    n, shape = len(x), x.shape
    wanted = np.asarray(targets, np.int32)
    target_ids = tf.constant(wanted)
    x_t = tf.constant(x)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32), tf.TensorSpec((n,), tf.float32)])
    def value_and_grad(adv, const):
        with tf.GradientTape() as tape:
            tape.watch(adv)
            logits = tf.cast(to_logits(adv), tf.float32)
            ce = tf.keras.losses.sparse_categorical_crossentropy(target_ids, logits, from_logits=True)
            dist = tf.reduce_sum(tf.square(adv - x_t), axis=tuple(range(1, len(shape))))
            total = tf.reduce_sum(dist + const * ce)
        return total, tape.gradient(total, adv), tf.argmax(logits, axis=-1, output_type=tf.int32), dist

    def objective(flat, const):
        total, grad, _, _ = value_and_grad(tf.constant(flat.reshape(shape), tf.float32), const)
        return float(total), grad.numpy().astype(np.float64).ravel()

    lo, hi = np.zeros(n), np.full(n, np.inf)
    const = np.full(n, initial_const)
    best, best_dist = x.copy(), np.full(n, np.inf)
    bounds = scipy.optimize.Bounds(np.full(x.size, clip[0]), np.full(x.size, clip[1]))
    start = x.ravel().astype(np.float64)
    for _ in range(search_steps):
        c = tf.constant(const, tf.float32)
        found = scipy.optimize.minimize(
            objective, start, args=(c,), jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": steps}
        )
        adv = np.clip(found.x.reshape(shape), *clip).astype(np.float32)
        _, _, pred, dist = value_and_grad(tf.constant(adv), c)
        hit = pred.numpy() == wanted
        better = hit & (dist.numpy() < best_dist)
        best[better], best_dist[better] = adv[better], dist.numpy()[better]
        hi = np.where(hit, np.minimum(hi, const), hi)
        lo = np.where(hit, lo, np.maximum(lo, const))
        const = np.where(np.isfinite(hi), (lo + hi) / 2, const * 10)
    return scored(to_logits, images, best, wanted, targeted=True, settings=settings)
