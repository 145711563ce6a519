"""The model registry: every model row built from one place, and saved / loaded safely.

Sits above models and defences (it combines them); nothing below imports it. The defences' names and
parameters import without TensorFlow; the builders and model files load on first use.
"""

from typing import Any

import importlib

from blurnet_tf.registry.defence_params import DEFENCE_PARAMS, DEFENCES

__all__ = [
    "DEFENCE_PARAMS",
    "DEFENCES",
    "LISA_MODEL",
    "MNIST_MODEL",
    "ModelContract",
    "build_model",
    "load_model",
    "save_model",
]
_LAZY = {
    "build_model": "builders",
    "LISA_MODEL": "model_files",
    "MNIST_MODEL": "model_files",
    "ModelContract": "model_files",
    "load_model": "model_files",
    "save_model": "model_files",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"blurnet_tf.registry.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'blurnet_tf.registry' has no attribute {name!r}")
