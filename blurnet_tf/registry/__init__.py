"""The model registry: every model row built from one place, and saved / loaded safely.

Sits above models and defences (it combines them); nothing below imports it.
"""

from blurnet_tf.registry.builders import DEFENCE_PARAMS, DEFENCES, build_model
from blurnet_tf.registry.model_files import LISA_MODEL, MNIST_MODEL, ModelContract, load_model, save_model

__all__ = ["DEFENCE_PARAMS", "DEFENCES", "LISA_MODEL", "MNIST_MODEL", "ModelContract", "build_model", "load_model",
           "save_model"]
