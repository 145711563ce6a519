"""Models: the LISA-CNN, the original RP2 weights, and loading saved models safely."""

from blurnet_tf.models.lisa_cnn import (FIRST_LAYER, SECOND_LAYER, cnn_model, layer_output_model,
                                        load_original_lisa_cnn)
from blurnet_tf.models.store import load_model, save_model
