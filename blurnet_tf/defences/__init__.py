"""Defences. Importing this package registers every custom layer with Keras."""

from typing import Any

from blurnet_tf.defences.adversarial_training import AdversarialTraining
from blurnet_tf.defences.blur import BlurDepthwiseConv2D, blur_kernel, insert_blur
from blurnet_tf.defences.blurnet_any import BLURNET_DEFENCES, add_blurnet
from blurnet_tf.defences.defendpp import DefendPP, EncoderTaps, FeatureNoise
from blurnet_tf.defences.regularizers import (
    REGULARISERS,
    FeatureMapRegularizer,
    model_regulariser,
    tik_hf,
    tik_pseudo,
    total_variation,
)
from blurnet_tf.defences.smoothing import smoothed_predict
from blurnet_tf.defences.wrapped_classifier import classifier_of

__all__ = [
    "AdversarialTraining",
    "BlurDepthwiseConv2D",
    "blur_kernel",
    "insert_blur",
    "add_blurnet",
    "BLURNET_DEFENCES",
    "DefendPP",
    "EncoderTaps",
    "FeatureNoise",
    "REGULARISERS",
    "FeatureMapRegularizer",
    "model_regulariser",
    "tik_hf",
    "tik_pseudo",
    "total_variation",
    "smoothed_predict",
    "classifier_of",
    "PixelDeflection",
]


def __getattr__(name: str) -> Any:  # Pixel Deflection pulls in its denoisers: loaded on first use
    if name == "PixelDeflection":
        from blurnet_tf.defences.pixel_deflection import PixelDeflection

        return PixelDeflection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
