"""Defences. Importing this package registers every custom layer with Keras."""

from blurnet_tf.defences.factory import DEFENCES, build_model
