"""A small residual MNIST classifier: the Defend++ experiments' stand-in for the paper's ResNet-18.

    stem Conv 16 3x3 -> block0 (16 ch, 28x28) -> block1 (32 ch, /2: 14x14)
    -> block2 (64 ch, /2: 7x7) -> block3 (64 ch, /2: 4x4) -> global average pool -> Dense(10)

Each block is two 3x3 convolutions with an identity (or strided 1x1) shortcut, like a ResNet
basic block without batch normalisation (short enough to train without it). Like the paper's
CIFAR-style ResNet-18 it has four encoding blocks whose outputs sit at 28, 14, 7 and 4 pixels,
named block0..block3 so Defend++ can tap them. About 0.2 M parameters, not ResNet-18's 11 M.
"""

from __future__ import annotations

from typing import Any

from collections.abc import Sequence

import keras
from keras import layers

MNIST_CLASSES = 10
BLOCKS = ("block0", "block1", "block2", "block3")
_WIDTHS = (16, 32, 64, 64)


def _residual_block(x: Any, filters: int, stride: int, name: str) -> Any:
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_conv1")(x)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    if stride != 1 or x.shape[-1] != filters:
        x = layers.Conv2D(filters, 1, strides=stride, padding="same", name=f"{name}_shortcut")(x)
    y = layers.Add(name=f"{name}_add")([x, y])
    return layers.Activation("relu", name=name)(y)


def mnist_resnet(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    nb_classes: int = MNIST_CLASSES,
    input_layers: Sequence[keras.layers.Layer] = (),
    name: str = "mnist_resnet",
) -> keras.Model:
    """Builds the classifier (logits out); `input_layers` run on the image first (e.g. noise)."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for layer in input_layers:
        x = layer(x)
    x = layers.Conv2D(_WIDTHS[0], 3, padding="same", name="stem")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for i, (block, filters) in enumerate(zip(BLOCKS, _WIDTHS)):
        x = _residual_block(x, filters, 1 if i == 0 else 2, block)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(nb_classes, name="logits", dtype="float32")(x)  # float32 logits under mixed precision
    return keras.Model(inputs, outputs, name=name)
