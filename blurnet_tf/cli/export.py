"""Export a model as a SavedModel that serves class probabilities.

    python -m blurnet_tf.cli.export --model=runs/baseline --out=export/baseline [--overwrite]

Serving signature `serving_default`: input `image`, float32 [N,H,W,C] in [0,1] with the model's
input size (LISA: [N,32,32,3], MNIST: [N,28,28,1]); outputs `probabilities` (softmax) and
`logits`, both [N,classes]. Load it with plain TensorFlow; blurnet_tf is not needed.

The signature checks each request and answers a bad one with an InvalidArgumentError naming the
problem: rank other than 4, wrong height, width or channels, an empty batch, NaN or infinite
values, values outside [0,1] (0-255 images must be divided by 255). The dtype is fixed to float32.

--out is never removed unless asked: an existing non-empty --out is refused unless --overwrite is
given, and even then only a SavedModel (a directory holding saved_model.pb) is replaced; a file
or any other directory (a run directory, say) is always refused. The new SavedModel is written
beside --out and renamed into place, so a failure leaves the old one, or nothing, behind.
"""

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Run directory, .keras file, or 'original'.", required=True)
flags.DEFINE_string("out", None, "SavedModel directory to write.", required=True)
flags.DEFINE_boolean("overwrite", False, "Replace a SavedModel at --out (never any other directory).")
flags.DEFINE_string("data_dir", None, "Data directory (only for --model=original).")


def main(argv):
    del argv
    from blurnet_tf.registry import load_model
    from blurnet_tf.registry.savedmodel_export import check_out_dir, export_probabilities

    check_out_dir(FLAGS.out, FLAGS.overwrite)  # refuse before the slow model load
    model = load_model(FLAGS.model, FLAGS.data_dir)
    out = export_probabilities(model, FLAGS.out, FLAGS.overwrite)
    print(f"wrote SavedModel to {out} (signature serving_default: image -> probabilities, logits)")


if __name__ == "__main__":
    from blurnet_tf import cli

    cli.run(main)
