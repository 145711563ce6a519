"""Saving and loading models: `.keras` files with safe_mode, atomically written."""

from __future__ import annotations

import os
import pathlib

import keras

from blurnet_tf.errors import DataError
from blurnet_tf import rundir
from blurnet_tf.files import ensure_dir



def save_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Saves a .keras file atomically (temp file, fsync, rename); a failed save (disk full, no
    permission) leaves no temp file and raises a DataError naming `path`."""
    path = pathlib.Path(path)
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(path, f"cannot write the model ({exc.strerror or exc})") from None


def load_model(spec: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None,
               compile: bool = False) -> keras.Model:
    """`original` (the RP2 weights), a run directory holding model.keras, or a .keras file.

    Loads with safe_mode=True: a .keras file that carries Python lambdas is refused.
    """
    if spec == "original":
        from blurnet_tf.models.lisa_cnn import load_original_lisa_cnn
        from blurnet_tf.data import find_data_dir

        return load_original_lisa_cnn(data_dir or find_data_dir())
    path = pathlib.Path(spec)
    if path.is_dir():
        path = path / rundir.MODEL_FILE
    if not path.is_file():
        raise DataError(path, "model file not found (expected a run directory with model.keras, "
                              "a .keras file, or 'original')")
    import blurnet_tf.defences  # noqa: F401  (registers the custom layers for deserialisation)

    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (ValueError, OSError, TypeError) as exc:
        raise DataError(path, f"cannot load model ({str(exc).splitlines()[0]})") from None
