"""Saving and loading models: `.keras` files with safe_mode, atomically written."""

import os
import pathlib

import keras

from blurnet_tf.errors import DataError

MODEL_FILE = "model.keras"


def save_model(model, path):
    """Saves a .keras file atomically (temp file + rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def load_model(spec, data_dir=None, compile=False):
    """`original` (the RP2 weights), a run directory holding model.keras, or a .keras file.

    Loads with safe_mode=True: a .keras file that carries Python lambdas is refused.
    """
    if spec == "original":
        from blurnet_tf.models.lisa_cnn import load_original_lisa_cnn
        from blurnet_tf.data import find_data_dir

        return load_original_lisa_cnn(data_dir or find_data_dir())
    path = pathlib.Path(spec)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise DataError(path, "model file not found (expected a run directory with model.keras, "
                              "a .keras file, or 'original')")
    import blurnet_tf.defences  # noqa: F401  (registers the custom layers for deserialisation)

    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (ValueError, OSError, TypeError) as exc:
        raise DataError(path, f"cannot load model ({str(exc).splitlines()[0]})") from None
