"""Export a model as a SavedModel that serves logits, class probabilities and class names.

    python -m blurnet_tf.cli.export --model=runs/baseline --out=export/baseline [--overwrite] [--tflite]

Serving signature `serving_default`: input `image`, float32 [N,H,W,C] in [0,1] with the model's
input size (LISA: [N,32,32,3], MNIST: [N,28,28,1]); outputs `logits` and `probabilities`
(softmax), both [N,classes], `classes` (int64 argmax, [N]) and `class_names` (its name, string
[N]: the LISA sign names for a LISA-CNN, the digits for an MNIST model, else class_0, class_1, ...).
Load it with plain TensorFlow; blurnet_tf is not needed.

The signature checks each request and answers a bad one with an InvalidArgumentError naming the
problem: rank other than 4, wrong height, width or channels, an empty batch, NaN or infinite
values, values outside [0,1] (0-255 images must be divided by 255). The dtype is fixed to float32.

--tflite also writes <out>/model.tflite: float32, built-in ops only, the same signature and
outputs, but without the input checks (the caller must send [N,H,W,C] float32 in [0,1]).

--out is never removed unless asked: an existing non-empty --out is refused unless --overwrite is
given, and even then only a SavedModel (a directory holding saved_model.pb) is replaced; a file
or any other directory (a run directory, say) is always refused. The new SavedModel (and its
TFLite file) is written beside --out and renamed into place, so a failure leaves the old one, or
nothing, behind.
"""

from absl import flags

from blurnet_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Run directory, .keras file, or 'original'.", required=True)
flags.DEFINE_string("out", None, "SavedModel directory to write.", required=True)
flags.DEFINE_boolean("overwrite", False, "Replace a SavedModel at --out (never any other directory).")
flags.DEFINE_boolean("tflite", False, "Also write <out>/model.tflite (float32, same outputs, no input checks).")
flags.DEFINE_string("data_dir", None, "Data directory (only for --model=original).")


def class_names_for(model):
    """The LISA sign names for a LISA model (32x32x3 in, 18 out), the digits for an MNIST model
    (28x28x1 in, 10 out), else None (the library then names them class_0, class_1, ...)."""
    from blurnet_tf.data import CLASS_NAMES, NUM_CLASSES
    from blurnet_tf.defences import classifier_of

    model = classifier_of(model)
    shapes = (tuple(model.input_shape[1:]), model.output_shape[-1])
    if shapes == ((32, 32, 3), NUM_CLASSES):
        return CLASS_NAMES
    if shapes == ((28, 28, 1), 10):
        return tuple(str(digit) for digit in range(10))
    return None


def main(argv):
    del argv
    cli.check_model(FLAGS.model)  # a missing or broken file: one line before TensorFlow loads
    from blurnet_tf.defences import classifier_of
    from blurnet_tf.registry import load_model
    from blurnet_tf.registry.model_files import check_classifier
    from blurnet_tf.registry.savedmodel_export import TFLITE_FILE, check_out_dir, export_probabilities

    check_out_dir(FLAGS.out, FLAGS.overwrite)  # refuse before the slow model load
    model = load_model(FLAGS.model, FLAGS.data_dir)
    check_classifier(classifier_of(model), FLAGS.model)  # any size and class count; the signature serves images
    out = export_probabilities(
        model, FLAGS.out, FLAGS.overwrite, class_names=class_names_for(model), tflite=FLAGS.tflite
    )
    print(
        f"wrote SavedModel to {out} (signature serving_default: image -> logits, probabilities, "
        "classes, class_names)" + (f" and {out / TFLITE_FILE}" if FLAGS.tflite else "")
    )


if __name__ == "__main__":
    from blurnet_tf import cli

    cli.run(main)
