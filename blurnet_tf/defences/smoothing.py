"""Randomized smoothing prediction (Cohen et al. 2019) for the Gaussian-augmented models."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from scipy.stats import binomtest

if TYPE_CHECKING:
    import keras

ABSTAIN = -1


def smoothed_predict(
    model: keras.Model,
    images: np.ndarray,
    sigma: float,
    n: int = 100,
    batch_size: int = 32,
    abstain_alpha: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of the model over n Gaussian-noised copies of each image (BlurNet: n=100).

    With abstain_alpha, Cohen's PREDICT: abstain (-1) unless the top class beats the runner-up
    in a two-sided binomial test at level abstain_alpha. Noise and votes run in TensorFlow.

    Parameters
    ----------
    model : keras.Model
        The (Gaussian-augmented) classifier, images -> logits [N, classes].
    images : np.ndarray
        Clean images, [N, H, W, C].
    sigma : float
        Standard deviation of the Gaussian noise.
    n : int
        Number of noisy copies per image.
    batch_size : int
        Images per forward pass (each pass holds batch_size * n copies).
    abstain_alpha : float or None
        Level of the binomial test; None never abstains (plain majority vote).
    seed : int
        Seed of the noise generator.

    Returns
    -------
    prediction : np.ndarray
        [N] voted classes, -1 (ABSTAIN) where the test abstains.
    counts : np.ndarray
        [N, classes] votes per class.
    """
    num_classes = model.output_shape[-1]
    rng = tf.random.Generator.from_seed(seed)

    @tf.function
    def votes(x: tf.Tensor) -> tf.Tensor:
        copies = tf.repeat(x, n, axis=0)
        noisy = copies + sigma * rng.normal(tf.shape(copies))
        cls = tf.argmax(model(noisy, training=False), axis=-1, output_type=tf.int32)
        cls = tf.reshape(cls, [-1, n])
        return tf.reduce_sum(tf.one_hot(cls, num_classes, dtype=tf.int32), axis=1)

    counts = np.concatenate(
        [votes(tf.constant(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
    )
    prediction = counts.argmax(axis=1)
    if abstain_alpha is not None:
        top2 = np.sort(counts, axis=1)[:, -2:]
        for i, (n_b, n_a) in enumerate(top2):
            if binomtest(int(n_a), int(n_a + n_b), 0.5).pvalue > abstain_alpha:
                prediction[i] = ABSTAIN
    return prediction, counts
