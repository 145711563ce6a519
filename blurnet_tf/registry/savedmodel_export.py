"""SavedModel and TFLite export: a serving signature from images in [0,1] to logits, softmax
probabilities, the predicted class index and its name.

The SavedModel's signature checks its input before the model sees it, so a bad request is an
InvalidArgumentError that names the problem, never a crash or a silently wrong answer. Writing
never removes anything but a SavedModel (or TFLite file) the caller asked to replace.
"""

import os
import pathlib
import shutil
import sys
import tempfile

import keras
import tensorflow as tf

from blurnet_tf.defences.wrapped_classifier import classifier_of
from blurnet_tf.errors import DataError
from blurnet_tf.files import ensure_dir, write_bytes

SAVED_MODEL_FILE = "saved_model.pb"
TFLITE_FILE = "model.tflite"  # written inside the SavedModel directory by export_probabilities(tflite=True)


def check_out_dir(out_dir, overwrite=False):
    """The resolved `out_dir` if a SavedModel may be written there, else a DataError naming it.

    Cheap: the CLI calls it before loading the model, so a refusal comes at once.
    """
    out_dir = pathlib.Path(out_dir).resolve()  # '.', '..' and symlinks: act on the real directory
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(out_dir, "exists and is not a directory; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / SAVED_MODEL_FILE).is_file():
            raise DataError(
                out_dir,
                f"is not empty and not a SavedModel (no {SAVED_MODEL_FILE}); it is "
                "never replaced, even with --overwrite; choose another --out",
            )
        if not overwrite:
            raise DataError(out_dir, "already holds a SavedModel; pass --overwrite to replace it")
    return out_dir


def check_class_names(model, class_names=None):
    """The class names as a tuple of str, one per model output; None gives class_0, class_1, ...

    A ValueError names the mismatch when there are more or fewer names than outputs.
    """
    n = model.output_shape[-1]
    if class_names is None:
        return tuple(f"class_{i}" for i in range(n))
    if isinstance(class_names, (str, bytes)):
        raise ValueError(f"class_names must be a sequence of names, not one string ({class_names!r})")
    names = tuple(str(c) for c in class_names)
    if len(names) != n:
        raise ValueError(
            f"class_names has {len(names)} names but model {model.name!r} has {n} outputs; "
            f"give exactly one name per output"
        )
    return names


def export_probabilities(model, out_dir, overwrite=False, class_names=None, tflite=False):
    """Writes a SavedModel to out_dir (and, with tflite, out_dir/model.tflite); returns its path.

    Signature `serving_default`: image -> logits, probabilities, classes, class_names (see
    `_outputs`). `model` may be a training wrapper: its plain classifier is exported.
    Written to a PID-named temp directory beside out_dir, then renamed into place, so the
    SavedModel and its TFLite file appear together or not at all. A SavedModel being replaced is
    moved aside first and removed only once the new one is in place; on any failure the temp
    directory is removed and a DataError names out_dir (or the TFLite file).
    """
    model = classifier_of(model)
    names = check_class_names(model, class_names)
    out_dir = check_out_dir(out_dir, overwrite)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        _checked_serve(model, names),
        # Unknown rank: a fixed rank would let TensorFlow fold the rank check away
        # and hand a wrong-rank tensor straight to the model.
        input_signature=[tf.TensorSpec(None, tf.float32, name="image")],
    )
    ensure_dir(out_dir.parent)
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    old = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.old")
    for stale in (tmp, old):  # left by a killed process that had our PID
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.mkdir(tmp)  # fails fast and plainly on an unwritable parent
        archive.write_out(str(tmp), verbose=False)
        if tflite:
            export_tflite(model, tmp / TFLITE_FILE, names)
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
    except DataError as exc:  # from export_tflite: name the file's real place, not the temp one
        raise DataError(out_dir / TFLITE_FILE, exc.problem) from None
    except (OSError, tf.errors.OpError) as exc:
        reason = exc.message if isinstance(exc, tf.errors.OpError) else (exc.strerror or str(exc))
        raise DataError(out_dir, f"cannot write the SavedModel ({reason.splitlines()[0]})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if old.exists():
        try:
            shutil.rmtree(old)
        except OSError as exc:  # the new SavedModel is in place; only the cleanup failed
            print(f"warning: {old}: cannot remove the replaced SavedModel ({exc.strerror or exc})", file=sys.stderr)
    return out_dir


def export_tflite(model, path, class_names=None, overwrite=False):
    """Writes `model` as a float32 TFLite file at `path` (atomically); returns its resolved path.

    Same signature and outputs as the SavedModel, over a [N,H,W,C] float32 input, but without its
    input checks: TFLite has no Assert op outside the Flex delegate, and the file uses built-in
    ops only, so any TFLite interpreter runs it. An existing file is refused unless overwrite.
    """
    path = pathlib.Path(path).resolve()
    if path.is_dir():
        raise DataError(path, "is a directory; give a file name for the TFLite model")
    if path.exists() and not overwrite:
        raise DataError(path, "already exists; pass --overwrite to replace it")
    model = classifier_of(model)
    names = check_class_names(model, class_names)
    logits_fn = logits_of(model)
    # Keras 3's own route (keras/src/export/litert.py): ExportArchive -> SavedModel -> converter.
    # A concrete function over the Keras model directly converts without its variables.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda image: _outputs(logits_fn(image), names),
        input_signature=[tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32, name="image")],
    )
    try:
        with tempfile.TemporaryDirectory(prefix="blurnet-tflite-") as saved:
            archive.write_out(saved, verbose=False)
            data = tf.lite.TFLiteConverter.from_saved_model(saved).convert()
    except Exception as exc:  # the converter's ConverterError is not public API
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise DataError(path, f"cannot convert the model to TFLite ({reason})") from None
    return write_bytes(path, data)


def logits_of(model):
    """A function from images to the model's logits.

    Our models (LISA-CNN, the MNIST classifier, every defence's classifier) end in a Dense layer
    without activation: their output is the logits. A model that ends in a softmax (a Softmax or
    Activation layer, or a Dense with activation="softmax") gives its pre-softmax values instead,
    so `logits` are real logits and softmax(logits) is still its output.
    """
    last = model.layers[-1] if getattr(model, "layers", None) else None
    softmax = isinstance(last, keras.layers.Softmax) or getattr(last, "activation", None) is keras.activations.softmax
    if not softmax:
        return lambda x: model(x, training=False)
    problem = ValueError(
        f"model {model.name!r} ends in {last.name!r}, a {type(last).__name__} with a softmax, "
        "and its logits cannot be recovered; export a model that outputs logits"
    )
    if not isinstance(last, (keras.layers.Softmax, keras.layers.Activation, keras.layers.Dense)):
        raise problem
    try:  # only a functional or Sequential model has a graph to cut before its last layer
        before = keras.Model(model.inputs, last.input)
    except (AttributeError, TypeError, ValueError):
        raise problem from None
    if not isinstance(last, keras.layers.Dense):
        return lambda x: before(x, training=False)

    def dense_logits(x):
        h = keras.ops.matmul(keras.ops.cast(before(x, training=False), last.kernel.dtype), last.kernel)
        return h + last.bias if last.use_bias else h

    return dense_logits


def _outputs(logits, names):
    """The signature's outputs, per image: `logits` [N,K] float32 (what attack libraries want),
    `probabilities` [N,K] (their softmax), `classes` [N] int64 (the argmax) and `class_names` [N]
    string (that class's name).

    The name is an output of each prediction rather than an assets/labels.txt file with a second,
    input-less `labels` signature: TF Serving's predict and classify APIs answer one signature per
    request and need inputs, so a client gets the label in the same response it reads the scores
    from, as with Estimator-exported classifiers, and TFLite carries it too.
    """
    logits = tf.cast(logits, tf.float32)
    classes = tf.argmax(logits, axis=-1, output_type=tf.int64)
    return {
        "logits": logits,
        "probabilities": tf.nn.softmax(logits, axis=-1),
        "classes": classes,
        "class_names": tf.gather(tf.constant(names), classes),
    }


def _checked_serve(model, names):
    """The serving function: checks `image` (rank and shape, batch size, finite, in [0,1]), then
    returns `_outputs` of the model's logits."""
    hwc = tuple(model.input_shape[1:])
    expected = "[N," + ",".join(map(str, hwc)) + "]"
    logits_fn = logits_of(model)

    def serve(image):
        # TensorFlow may run these checks in any order (grappler specialises the graph to the
        # request's shape), so none of their inputs may fail on its own: the shape is padded to
        # compare it whatever its rank, and the model gets its input only through ensure_shape.
        shape = tf.shape(image)
        dims = tf.concat([shape, [-1, -1, -1, -1]], axis=0)
        good_shape = tf.logical_and(tf.equal(tf.size(shape), 4), tf.reduce_all(tf.equal(dims[1:4], hwc)))
        image = tf.debugging.assert_all_finite(image, message="image has NaN or infinite values")
        checks = [
            tf.debugging.Assert(
                good_shape, [f"image must have rank 4 and shape {expected}; got shape", shape], summarize=8
            ),
            tf.debugging.assert_positive(dims[0], message="image batch is empty (N must be >= 1)"),
            tf.debugging.assert_greater_equal(
                image, 0.0, message="image values must be in [0,1]; found negative values"
            ),
            tf.debugging.assert_less_equal(
                image, 1.0, message="image values must be in [0,1]; found values > 1 (0-255 images: divide by 255)"
            ),
        ]
        with tf.control_dependencies(checks):
            image = tf.ensure_shape(tf.identity(image), (None,) + hwc)
        return _outputs(logits_fn(image), names)

    return serve
