"""Low-pass kernels as Keras layers: BlurNet's fixed blur and learned depthwise conv (eq. 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import keras
import numpy as np
from keras import ops

from blurnet_tf.models.lisa_cnn import FIRST_LAYER

if TYPE_CHECKING:
    import tensorflow as tf


def blur_kernel(kernel_size: int, kind: str = "box", sigma: float | None = None) -> np.ndarray:
    """A normalised k x k low-pass kernel.

    Parameters
    ----------
    kernel_size : int
        Side k of the kernel.
    kind : str
        'box' (ones / k^2) or 'gaussian'.
    sigma : float or None
        Gaussian standard deviation; None or 0 uses OpenCV's rule from k. Ignored for 'box'.

    Returns
    -------
    np.ndarray
        The kernel, [k, k] float32, summing to 1.

    Raises
    ------
    ValueError
        If kind is neither 'box' nor 'gaussian'.
    """
    if kind == "box":
        return np.full((kernel_size, kernel_size), 1.0 / kernel_size**2, np.float32)
    if kind == "gaussian":
        g = cv2.getGaussianKernel(kernel_size, sigma if sigma else 0).astype(np.float32)
        return g @ g.T
    raise ValueError(f"unknown blur kernel {kind!r}: use box or gaussian")


@keras.saving.register_keras_serializable("blurnet_tf")
class BlurKernel(keras.initializers.Initializer):
    """Initialises a depthwise kernel (k, k, C, M) with the same blur kernel for every channel."""

    def __init__(self, kind: str = "box", sigma: float | None = None) -> None:
        self.kind, self.sigma = kind, sigma

    def __call__(self, shape: Sequence[int], dtype: str | None = None) -> tf.Tensor:
        k = blur_kernel(shape[0], self.kind, self.sigma)
        return ops.convert_to_tensor(np.tile(k[:, :, None, None], (1, 1) + tuple(shape[2:])), dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "sigma": self.sigma}


def linf_penalty(kernel: keras.Variable | tf.Tensor) -> tf.Tensor:
    """sum_j max |W[:, :, j]|: the L-infinity norm of each channel's filter, summed (eq. 2)."""
    return ops.sum(ops.max(ops.abs(kernel), axis=(0, 1)))


@keras.saving.register_keras_serializable("blurnet_tf")
class BlurDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """Depthwise k x k blur, 'same' padding, no bias.

    trainable=False gives a fixed blur (Table I, "L1 blur"); trainable=True with alpha > 0 is
    BlurNet's learned depthwise conv with the L-infinity penalty alpha * sum_j max|W[:,:,j]|
    added through add_loss (eq. 2). Maps [N, H, W, C] -> [N, H, W, C].

    Parameters
    ----------
    kernel_size : int
        Side k of the blur kernel.
    init : str
        Initial kernel: 'box' or 'gaussian' (with sigma).
    sigma : float or None
        Gaussian standard deviation for init='gaussian'; None uses OpenCV's rule.
    alpha : float
        Weight of the eq. 2 L-infinity penalty on the kernel; 0 adds none.
    """

    def __init__(
        self, kernel_size: int = 3, init: str = "box", sigma: float | None = None, alpha: float = 0.0, **kwargs: Any
    ) -> None:
        for key in ("depthwise_initializer", "padding", "use_bias", "depth_multiplier", "strides"):
            kwargs.pop(key, None)
        super().__init__(
            kernel_size=kernel_size,
            padding="same",
            use_bias=False,
            depth_multiplier=1,
            depthwise_initializer=BlurKernel(init, sigma),
            **kwargs,
        )
        self.init, self.sigma, self.alpha = init, sigma, float(alpha)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.alpha > 0:
            self.add_loss(self.alpha * linf_penalty(self.kernel))
        return super().call(inputs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"init": self.init, "sigma": self.sigma, "alpha": self.alpha})
        return config


def insert_blur(
    trained_model: keras.Model,
    where: str = "input",
    kernel_size: int = 3,
    kind: str = "box",
    sigma: float | None = None,
    after: str = FIRST_LAYER,
) -> keras.Model:
    """The same trained weights with a fixed blur inserted on the input or after the first layer.

    Table I's black-box setting. Every layer is copied (config + weights), so the result shares no
    variables with `trained_model` and its trained weights stay bit-identical.

    Parameters
    ----------
    trained_model : keras.Model
        A chain of layers (Sequential-like), images [N, H, W, C] -> logits.
    where : str
        'input' (blur the image) or 'l1' (blur after the layer named `after`).
    kernel_size : int
        Side k of the fixed blur kernel.
    kind : str
        'box' or 'gaussian'.
    sigma : float or None
        Gaussian standard deviation for kind='gaussian'; None uses OpenCV's rule.
    after : str
        Name of the layer the 'l1' blur follows (the LISA-CNN's first layer by default).

    Returns
    -------
    keras.Model
        A new model with the blur layer inserted, named ``{name}_{where}_blur{kernel_size}``.

    Raises
    ------
    ValueError
        If `where` is unknown, the model has no layer `after`, or it is not a chain of layers.
    """
    if where not in ("input", "l1"):
        raise ValueError(f"where must be 'input' or 'l1', got {where!r}")
    source = trained_model
    if where == "l1" and after not in [layer.name for layer in source.layers]:
        raise ValueError(f"{source.name} has no layer {after!r} to blur after")
    # A functional model lists its InputLayer, a Sequential one does not: every other layer is copied.
    chain = [layer for layer in source.layers if not isinstance(layer, keras.layers.InputLayer)]
    for previous, layer in zip([None, *chain], chain):  # copied in order: a chain only
        feeds, what = (
            (source.inputs[0], "the input") if previous is None else (previous.output, f"{previous.name}'s output")
        )
        if layer.input is not feeds:
            raise ValueError(
                f"{source.name}: {layer.name} does not take {what} alone; "
                "insert_blur copies chains of layers (Sequential-like models) only"
            )
    inputs = keras.Input(source.input_shape[1:], name="image")
    x = inputs
    if where == "input":
        x = BlurDepthwiseConv2D(kernel_size, init=kind, sigma=sigma, trainable=False, name="inserted_input_blur")(x)
    for layer in chain:
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
        if where == "l1" and layer.name == after:
            x = BlurDepthwiseConv2D(kernel_size, init=kind, sigma=sigma, trainable=False, name="inserted_l1_blur")(x)
    return keras.Model(inputs, x, name=f"{source.name}_{where}_blur{kernel_size}")
