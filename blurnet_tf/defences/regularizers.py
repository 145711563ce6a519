"""Feature-map regularisers of BlurNet §III (eq. 3-7), as pure TensorFlow functions.

Each takes the first-layer maps F of shape [N, H, W, K] and returns the mean over the N*K maps
of a per-map penalty. Training adds alpha * value (FeatureMapRegularizer); the adaptive attack
(eq. 9-11) adds the value itself to its loss, so both call the same function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

_TINY = 1e-12  # keeps sqrt differentiable at an all-zero map


def total_variation(F: tf.Tensor) -> tf.Tensor:
    """Anisotropic total variation per map, averaged over N*K (eq. 3-4).

    TV(x) = sum |x[i+1,j] - x[i,j]| + |x[i,j+1] - x[i,j]|.

    Parameters
    ----------
    F : tf.Tensor
        First-layer feature maps, [N, H, W, K].

    Returns
    -------
    tf.Tensor
        Scalar: the mean TV over the N*K maps.
    """
    dh = tf.reduce_sum(tf.abs(F[:, 1:, :, :] - F[:, :-1, :, :]), axis=(1, 2))
    dw = tf.reduce_sum(tf.abs(F[:, :, 1:, :] - F[:, :, :-1, :]), axis=(1, 2))
    return tf.reduce_mean(dh + dw)


def _map_norm(G: tf.Tensor) -> tf.Tensor:
    """Frobenius norm of every [H, W] map, as [N, K]."""
    return tf.sqrt(tf.reduce_sum(tf.square(G), axis=(1, 2)) + _TINY)


def moving_average(F: tf.Tensor, window: int = 3) -> tf.Tensor:
    """L_avg F: the window x window mean around each position, over the positions inside the map."""
    return tf.nn.avg_pool2d(F, window, strides=1, padding="SAME")


def tik_hf(F: tf.Tensor, window: int = 3) -> tf.Tensor:
    """High-frequency Tikhonov penalty ||(I - L_avg) F[i,:,:,k]||_2, averaged over N*K (eq. 6).

    L_avg is the window x window moving average, so the penalty is each map's high-frequency energy.

    Parameters
    ----------
    F : tf.Tensor
        First-layer feature maps, [N, H, W, K].
    window : int
        Side of the moving-average window of L_avg.

    Returns
    -------
    tf.Tensor
        Scalar: the mean norm over the N*K maps.
    """
    return tf.reduce_mean(_map_norm(F - moving_average(F, window)))


def pseudo_inverse_difference(n: int) -> np.ndarray:
    """L_diff^+ for the n x n forward-difference matrix D (D[i,i] = -1, D[i,i+1] = 1).

    D approximates a derivative; its pseudo-inverse (here the exact inverse, a cumulative sum
    from the right with sign -1) approximates an integral, i.e. a smoothing operator.
    """
    D = -np.eye(n) + np.eye(n, k=1)
    return np.linalg.pinv(D).astype(np.float32)


def tik_pseudo(F: tf.Tensor, mode: str = "elementwise") -> tf.Tensor:
    """Pseudo-inverse Tikhonov penalty ||L_diff^+ . F[i,:,:,k]||_2, averaged over N*K (eq. 7).

    L_diff^+ is the pseudo-inverse of the forward-difference matrix, a smoothing operator.

    Parameters
    ----------
    F : tf.Tensor
        First-layer feature maps, [N, H, W, K] (H == W for mode='elementwise').
    mode : str
        'elementwise' (default, as the paper states: "perform an elementwise multiplication"): the
        Hadamard product L_diff^+ * F. 'matmul': L_diff^+ @ F, the usual Tikhonov reading.

    Returns
    -------
    tf.Tensor
        Scalar: the mean norm over the N*K maps.

    Raises
    ------
    ValueError
        If mode is unknown, or mode='elementwise' and the maps are not square.
    """
    h, w = F.shape[1], F.shape[2]
    P = tf.constant(pseudo_inverse_difference(h))
    if mode == "elementwise":
        if h != w:
            raise ValueError(f"elementwise Tik_pseudo needs square maps, got {h}x{w}")
        G = F * P[None, :, :, None]
    elif mode == "matmul":
        G = tf.einsum("ij,njwk->niwk", P, F)
    else:
        raise ValueError(f"unknown Tik_pseudo mode {mode!r}: use elementwise or matmul")
    return tf.reduce_mean(_map_norm(G))


REGULARISERS = {"tv": total_variation, "tik_hf": tik_hf, "tik_pseudo": tik_pseudo}


@keras.saving.register_keras_serializable("blurnet_tf")
class FeatureMapRegularizer(keras.layers.Layer):
    """Identity on the feature maps that adds alpha * REGULARISERS[kind](F, **params) via add_loss.

    Maps [N, H, W, K] -> the same tensor; the penalty is BlurNet's training regulariser (§III).

    Parameters
    ----------
    kind : str
        A key of REGULARISERS: 'tv', 'tik_hf' or 'tik_pseudo'.
    alpha : float
        Weight of the penalty in the training loss.
    params : dict[str, Any] or None
        Keyword arguments of the regulariser (e.g. window, mode).

    Attributes
    ----------
    ramp : float
        A share of alpha applied while training warms up (AlphaWarmup sets it per epoch); 1 otherwise.
        Not saved: a model always stores, and reloads with, its full alpha.

    Raises
    ------
    ValueError
        If kind is not in REGULARISERS.
    """

    def __init__(self, kind: str, alpha: float, params: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in REGULARISERS:
            raise ValueError(f"unknown regulariser {kind!r}: use one of {sorted(REGULARISERS)}")
        self.kind, self.alpha, self.params = kind, float(alpha), dict(params or {})
        self.ramp = 1.0

    @property
    def function(self) -> Callable[[tf.Tensor], tf.Tensor]:
        return functools.partial(REGULARISERS[self.kind], **self.params)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        self.add_loss(self.alpha * self.ramp * self.function(inputs))  # (alpha * 1.0 is alpha, bit for bit)
        return inputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind, "alpha": self.alpha, "params": self.params}


def model_regulariser(model: keras.Model) -> tuple[Callable[[tf.Tensor], tf.Tensor], float] | None:
    """The model's feature-map regulariser, for the adaptive attack (eq. 9-11).

    Parameters
    ----------
    model : keras.Model
        A classifier, possibly holding a FeatureMapRegularizer layer.

    Returns
    -------
    tuple[Callable[[tf.Tensor], tf.Tensor], float] or None
        (function of F [N, H, W, K] -> scalar, alpha) of its first FeatureMapRegularizer, or None if
        it has none.
    """
    for layer in model.layers:
        if isinstance(layer, FeatureMapRegularizer):
            return layer.function, layer.alpha
    return None
