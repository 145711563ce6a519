"""SavedModel export: a serving signature from images in [0,1] to softmax probabilities.

The signature checks its input before the model sees it, so a bad request is an
InvalidArgumentError that names the problem, never a crash or a silently wrong answer. Writing
never removes anything but a SavedModel the caller asked to replace.
"""

import os
import pathlib
import shutil
import sys

import keras
import tensorflow as tf

from blurnet_tf.errors import DataError
from blurnet_tf.files import ensure_dir

SAVED_MODEL_FILE = "saved_model.pb"


def check_out_dir(out_dir, overwrite=False):
    """The resolved `out_dir` if a SavedModel may be written there, else a DataError naming it.

    Cheap: the CLI calls it before loading the model, so a refusal comes at once.
    """
    out_dir = pathlib.Path(out_dir).resolve()  # '.', '..' and symlinks: act on the real directory
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(out_dir, "exists and is not a directory; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / SAVED_MODEL_FILE).is_file():
            raise DataError(out_dir, f"is not empty and not a SavedModel (no {SAVED_MODEL_FILE}); it is "
                                     "never replaced, even with --overwrite; choose another --out")
        if not overwrite:
            raise DataError(out_dir, "already holds a SavedModel; pass --overwrite to replace it")
    return out_dir


def export_probabilities(model, out_dir, overwrite=False):
    """Writes a SavedModel to out_dir; returns its resolved path.

    Written to a PID-named temp directory beside out_dir, then renamed into place. A SavedModel
    being replaced is moved aside first and removed only once the new one is in place; on any
    failure the temp directory is removed and a DataError names out_dir.
    """
    out_dir = check_out_dir(out_dir, overwrite)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", _checked_serve(model),
                         # Unknown rank: a fixed rank would let TensorFlow fold the rank check away
                         # and hand a wrong-rank tensor straight to the model.
                         input_signature=[tf.TensorSpec(None, tf.float32, name="image")])
    ensure_dir(out_dir.parent)
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    old = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.old")
    for stale in (tmp, old):  # left by a killed process that had our PID
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.mkdir(tmp)  # fails fast and plainly on an unwritable parent
        archive.write_out(str(tmp), verbose=False)
        if overwrite and (out_dir / SAVED_MODEL_FILE).is_file():
            os.replace(out_dir, old)
            try:
                os.replace(tmp, out_dir)
            except OSError:
                os.replace(old, out_dir)  # put the user's SavedModel back
                raise
        else:
            # Replaces at most an empty directory: anything that appeared since the check fails here.
            os.replace(tmp, out_dir)
    except (OSError, tf.errors.OpError) as exc:
        reason = exc.message if isinstance(exc, tf.errors.OpError) else (exc.strerror or str(exc))
        raise DataError(out_dir, f"cannot write the SavedModel ({reason.splitlines()[0]})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if old.exists():
        try:
            shutil.rmtree(old)
        except OSError as exc:  # the new SavedModel is in place; only the cleanup failed
            print(f"warning: {old}: cannot remove the replaced SavedModel ({exc.strerror or exc})",
                  file=sys.stderr)
    return out_dir


def _checked_serve(model):
    """The serving function: checks `image` (rank and shape, batch size, finite, in [0,1]), then
    returns the model's logits and their softmax."""
    hwc = tuple(model.input_shape[1:])
    expected = "[N," + ",".join(map(str, hwc)) + "]"

    def serve(image):
        # TensorFlow may run these checks in any order (grappler specialises the graph to the
        # request's shape), so none of their inputs may fail on its own: the shape is padded to
        # compare it whatever its rank, and the model gets its input only through ensure_shape.
        shape = tf.shape(image)
        dims = tf.concat([shape, [-1, -1, -1, -1]], axis=0)
        good_shape = tf.logical_and(tf.equal(tf.size(shape), 4), tf.reduce_all(tf.equal(dims[1:4], hwc)))
        image = tf.debugging.assert_all_finite(image, message="image has NaN or infinite values")
        checks = [
            tf.debugging.Assert(good_shape, [f"image must have rank 4 and shape {expected}; got shape", shape],
                                summarize=8),
            tf.debugging.assert_positive(dims[0], message="image batch is empty (N must be >= 1)"),
            tf.debugging.assert_greater_equal(image, 0.0, message="image values must be in [0,1]; "
                                                                  "found negative values"),
            tf.debugging.assert_less_equal(image, 1.0, message="image values must be in [0,1]; found "
                                                               "values > 1 (0-255 images: divide by 255)")]
        with tf.control_dependencies(checks):
            image = tf.ensure_shape(tf.identity(image), (None,) + hwc)
        logits = model(image, training=False)
        return {"probabilities": tf.nn.softmax(logits, axis=-1), "logits": logits}

    return serve
