"""SavedModel export: a serving signature from images in [0,1] to softmax probabilities."""

import os
import pathlib
import shutil

import keras
import tensorflow as tf


def export_probabilities(model, out_dir):
    """Writes a SavedModel to out_dir (replaced atomically: written beside it, then renamed)."""
    out_dir = pathlib.Path(out_dir)
    shape = (None,) + tuple(model.input_shape[1:])

    def serve(image):
        return {"probabilities": tf.nn.softmax(model(image, training=False), axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec(shape, tf.float32, name="image")])
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    archive.write_out(str(tmp), verbose=False)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir
