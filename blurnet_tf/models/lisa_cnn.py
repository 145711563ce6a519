"""The victim model: Cleverhans' `cnn_model` (as used by RP2 and BlurNet) in Keras 3.

Dropout(0.2) -> Conv 64 8x8/2 same -> ReLU -> Conv 128 6x6/2 valid -> ReLU -> Conv 128 5x5/1
valid -> ReLU -> Dropout(0.5) -> Flatten -> Dense(18). Outputs logits; dropout is off at inference.
"First-layer feature maps" are the output of the layer named FIRST_LAYER (16x16x64).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from blurnet_tf.data import NUM_CLASSES
from blurnet_tf.data.rp2_assets import original_checkpoint

FIRST_LAYER = "relu1"
SECOND_LAYER = "relu2"

# Checkpoint variable of the original TF1/Keras-1 model -> (our layer, weight index).
_ORIGINAL_NAMES = {
    "convolution2d_1_W": ("conv1", 0),
    "convolution2d_1_b": ("conv1", 1),
    "convolution2d_2_W": ("conv2", 0),
    "convolution2d_2_b": ("conv2", 1),
    "convolution2d_3_W": ("conv3", 0),
    "convolution2d_3_b": ("conv3", 1),
    "dense_1_W": ("logits", 0),
    "dense_1_b": ("logits", 1),
}


def cnn_model(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    nb_classes: int = NUM_CLASSES,
    nb_filters: int = 64,
    input_layers: Sequence[keras.layers.Layer] = (),
    l1_layers: Sequence[keras.layers.Layer] = (),
    name: str = "lisa_cnn",
) -> keras.Model:
    """Build the LISA-CNN (Cleverhans' `cnn_model`, as used by RP2 and BlurNet).

    `input_layers` run on the image, `l1_layers` on the first-layer maps (the output of FIRST_LAYER);
    the model outputs float32 logits, and its dropout is off at inference.

    Parameters
    ----------
    input_shape : tuple of int
        One image's shape (H, W, C); default (32, 32, 3).
    nb_classes : int
        Number of logits; default NUM_CLASSES (18).
    nb_filters : int
        Filters of the first convolution (the next two have twice as many); default 64.
    input_layers : sequence of keras.layers.Layer
        Layers applied, in order, to the input image before the network (e.g. an input blur).
    l1_layers : sequence of keras.layers.Layer
        Layers applied, in order, to the first-layer feature maps (e.g. a blur or a regulariser).
    name : str
        The model's name; default "lisa_cnn".

    Returns
    -------
    keras.Model
        An untrained model from images [N, H, W, C] in [0, 1] to logits [N, nb_classes].
    """
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for layer in input_layers:
        x = layer(x)
    x = layers.Dropout(0.2, name="input_dropout")(x)
    x = layers.Conv2D(nb_filters, 8, strides=2, padding="same", name="conv1")(x)
    x = layers.Activation("relu", name=FIRST_LAYER)(x)
    for layer in l1_layers:
        x = layer(x)
    x = layers.Conv2D(nb_filters * 2, 6, strides=2, padding="valid", name="conv2")(x)
    x = layers.Activation("relu", name=SECOND_LAYER)(x)
    x = layers.Conv2D(nb_filters * 2, 5, strides=1, padding="valid", name="conv3")(x)
    x = layers.Activation("relu", name="relu3")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(nb_classes, name="logits", dtype="float32")(x)  # float32 logits under mixed precision
    return keras.Model(inputs, outputs, name=name)


def load_original_lisa_cnn(data_dir: str | os.PathLike[str]) -> keras.Model:
    """Load the RP2 authors' trained LISA-CNN from their TF1 checkpoint.

    The checkpoint uses Keras-1 "tf" ordering: HWIO kernels and an NHWC flatten, the same as
    Keras 3, so the arrays are copied unchanged.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The data directory; the checkpoint is read from its rp2/original-lisa-cnn folder.

    Returns
    -------
    keras.Model
        `cnn_model(name="original_lisa_cnn")` holding the original weights.

    Raises
    ------
    DataError
        If the checkpoint is not found.
    ValueError
        If a checkpoint variable's shape differs from the layer's weight.
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(original_checkpoint(data_dir))
    model = cnn_model(name="original_lisa_cnn")
    for var, (layer_name, index) in _ORIGINAL_NAMES.items():
        layer = model.get_layer(layer_name)
        weights = layer.get_weights()
        value = reader.get_tensor(var)
        if value.shape != weights[index].shape:
            raise ValueError(
                f"{original_checkpoint(data_dir)}: {var} has shape {value.shape}, expected {weights[index].shape}"
            )
        weights[index] = value.astype(np.float32)
        layer.set_weights(weights)
    return model


def layer_output_model(model: keras.Model, layer_name: str = FIRST_LAYER) -> keras.Model:
    """Build a model from the same input to the output of `layer_name`.

    Used to read intermediate activations, e.g. the first-layer feature maps.

    Parameters
    ----------
    model : keras.Model
        A built functional model.
    layer_name : str
        The layer whose output to return; default FIRST_LAYER ("relu1").

    Returns
    -------
    keras.Model
        A model sharing `model`'s layers and weights, from its input to that layer's output.

    Raises
    ------
    ValueError
        If `model` has no layer `layer_name` (the message lists the layers it has: the default is the
        LISA-CNN's; another model names its own layer).
    """
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(
            f"{model.name} has no layer {layer_name!r} (the default names the LISA-CNN's first layer); "
            f"pass one of its own: {', '.join(names)}"
        )
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # called on one tensor: no structure warning
    return keras.Model(inputs, model.get_layer(layer_name).output)
