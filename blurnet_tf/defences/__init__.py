"""Defences. Importing this package registers every custom layer with Keras."""

from blurnet_tf.defences.adversarial_training import AdversarialTraining
from blurnet_tf.defences.blur import BlurDepthwiseConv2D, blur_kernel, insert_blur
from blurnet_tf.defences.defendpp import DefendPP, EncoderTaps, FeatureNoise
from blurnet_tf.defences.regularizers import (REGULARISERS, FeatureMapRegularizer, model_regulariser,
                                              tik_hf, tik_pseudo, total_variation)
from blurnet_tf.defences.smoothing import smoothed_predict
from blurnet_tf.defences.wrapped_classifier import classifier_of

__all__ = ["AdversarialTraining", "BlurDepthwiseConv2D", "blur_kernel", "insert_blur", "DefendPP", "EncoderTaps", "FeatureNoise",
           "REGULARISERS", "FeatureMapRegularizer", "model_regulariser", "tik_hf", "tik_pseudo", "total_variation",
           "smoothed_predict", "classifier_of"]
