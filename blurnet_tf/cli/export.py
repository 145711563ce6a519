"""Export a model as a SavedModel that serves class probabilities.

    python -m blurnet_tf.export --model=runs/baseline --out=export/baseline

Serving signature `serving_default`: input float32 [N,32,32,3] in [0,1] (key `image`),
output `probabilities` [N,18]. Load it with plain TensorFlow; blurnet_tf is not needed.
"""

from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Run directory, .keras file, or 'original'.", required=True)
flags.DEFINE_string("out", None, "SavedModel directory to write.", required=True)
flags.DEFINE_string("data_dir", None, "Data directory (only for --model=original).")


def main(argv):
    del argv
    from blurnet_tf.registry.savedmodel_export import export_probabilities
    from blurnet_tf.registry import load_model

    model = load_model(FLAGS.model, FLAGS.data_dir)
    export_probabilities(model, FLAGS.out)
    print(f"wrote SavedModel to {FLAGS.out} (signature serving_default: image -> probabilities)")


if __name__ == "__main__":
    from blurnet_tf import cli

    cli.run(main)
