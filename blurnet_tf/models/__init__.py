"""Models: the LISA-CNN (with the original RP2 weights) and the small MNIST residual net."""

from blurnet_tf.models.lisa_cnn import FIRST_LAYER, SECOND_LAYER, cnn_model, layer_output_model, load_original_lisa_cnn

__all__ = ["FIRST_LAYER", "SECOND_LAYER", "cnn_model", "layer_output_model", "load_original_lisa_cnn"]
