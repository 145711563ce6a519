"""ResNet-18 for 28x28x1 MNIST, the Defend++ paper's classifier (§4.1: "ResNet-18 with SGD").

The CIFAR-style ResNet-18 (He et al. 2016; the common PyTorch CIFAR variant):

    stem 3x3 conv 64 + BN + ReLU (no max-pool)
    -> stage1: 2 basic blocks,  64 ch, stride 1 (28x28)
    -> stage2: 2 basic blocks, 128 ch, stride 2 (14x14)
    -> stage3: 2 basic blocks, 256 ch, stride 2 (7x7)
    -> stage4: 2 basic blocks, 512 ch, stride 2 (4x4, 'same' padding: ceil(7/2))
    -> global average pool -> Dense(10) logits

A basic block is conv3x3-BN-ReLU-conv3x3-BN, plus the identity (or, where the shape changes, a
strided 1x1 conv + BN) shortcut, then ReLU. Convolutions have no bias (BN follows); BN uses
PyTorch's defaults (momentum 0.1 = Keras 0.9, epsilon 1e-5). 11,172,810 trainable parameters
(11,173,962 with a 3-channel input, the usual CIFAR count).

Defend++ taps: the output of every stage is a layer named stage1..stage4 (28, 14, 7, 4 pixels;
64, 128, 256, 512 channels), the paper's four encoding blocks. The decoder uses 28/14/7 (see
`blurnet_tf.defences.defendpp`): the paper sets no target below 7x7, and a 4x4 scale would not fit
the decoder's stride-2 upsampling (4 -> 8, not 7); stage3 and stage4 together form E_{M-1}.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

MNIST_CLASSES = 10
STAGES = ("stage1", "stage2", "stage3", "stage4")
WIDTHS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)
BLOCKS_PER_STAGE = 2


def _bn(name):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _basic_block(x, filters, stride, name, out_name=None):
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.Activation("relu", name=f"{name}_relu1")(_bn(f"{name}_bn1")(y))
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = _bn(f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        x = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_shortcut")(x)
        x = _bn(f"{name}_shortcut_bn")(x)
    y = layers.Add(name=f"{name}_add")([x, y])
    return layers.Activation("relu", name=out_name or f"{name}_relu2")(y)


def mnist_resnet18(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    nb_classes: int = MNIST_CLASSES,
    input_layers: Sequence[keras.layers.Layer] = (),
    name: str = "mnist_resnet18",
) -> keras.Model:
    """Builds the classifier (logits out); `input_layers` run on the image first (e.g. noise)."""
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for layer in input_layers:
        x = layer(x)
    x = layers.Conv2D(WIDTHS[0], 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.Activation("relu", name="stem_relu")(_bn("stem_bn")(x))
    for stage, filters, stride in zip(STAGES, WIDTHS, STRIDES):
        for b in range(BLOCKS_PER_STAGE):
            last = b == BLOCKS_PER_STAGE - 1
            x = _basic_block(
                x, filters, stride if b == 0 else 1, f"{stage}_block{b + 1}", out_name=stage if last else None
            )
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(nb_classes, name="logits", dtype="float32")(x)  # float32 logits under mixed precision
    return keras.Model(inputs, outputs, name=name)
