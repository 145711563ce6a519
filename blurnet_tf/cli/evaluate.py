"""Accuracy of a model on the track-held-out test split and the 40 victim stop signs.

    python -m blurnet_tf.cli.evaluate --model=runs/quick/models/baseline     (or --model=original)

--out writes the numbers as JSON; an existing --out that is not an earlier evaluation's is refused
unless --overwrite.
"""

import pathlib

from absl import flags

from blurnet_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Run directory, .keras file, or 'original'.", required=True)
flags.DEFINE_string("data_dir", None, "Data directory (default: $BLURNET_DATA, ../shared/data, cache).")
flags.DEFINE_float("test_fraction", 0.2, "Fraction of images in held-out tracks.")
flags.DEFINE_integer("split_seed", 0, "Seed of the track-held-out split.")
flags.DEFINE_string("out", None, "Optional JSON file for the results.")
flags.DEFINE_boolean("overwrite", False, "Replace an --out file that no evaluation wrote.")


def main(argv):
    del argv
    cli.check_model(FLAGS.model)  # a missing or broken file: one line before TensorFlow loads
    from blurnet_tf import files, rundir

    if FLAGS.out:  # before TensorFlow is imported: a refused --out costs no start-up
        _check_out(pathlib.Path(FLAGS.out))
    from blurnet_tf.data import find_data_dir, load_lisa_split, load_victims
    from blurnet_tf.evaluation.clean_accuracy import evaluate_clean
    from blurnet_tf.registry import LISA_MODEL, load_model

    data_dir = find_data_dir(FLAGS.data_dir)
    model = load_model(FLAGS.model, data_dir, expect=LISA_MODEL)
    _, test_set, _ = load_lisa_split(data_dir, FLAGS.test_fraction, FLAGS.split_seed)
    victims, _ = load_victims(data_dir)
    result = evaluate_clean(model, test_set, victims)
    print(
        f"{FLAGS.model}: legit accuracy {result['legit_accuracy']:.4f} on {result['test_images']} "
        f"held-out images; victims {result['victims_correct']}/40 predicted stop"
    )
    for name, acc in result["per_class_accuracy"].items():
        print(f"  {name:20s} {acc:.3f}")
    if FLAGS.out:
        files.write_json(
            FLAGS.out,
            {"kind": rundir.EVALUATION_KIND, "model": FLAGS.model, **result, "versions": files.package_versions()},
        )


def _check_out(out):
    """Before any work: --out is a new file, or an earlier evaluation's, or --overwrite says so."""
    from blurnet_tf import locks, rundir
    from blurnet_tf.errors import DataError

    if out.is_dir():
        raise DataError(out, "is a directory; --out names the JSON file to write")
    locks.check_writable_dir(out.parent, "out")
    if out.exists() and not FLAGS.overwrite and not locks.is_record(out, (rundir.EVALUATION_KIND,)):
        raise DataError(
            out, "exists and was not written by an evaluation; choose another --out, or pass --overwrite to replace it"
        )


if __name__ == "__main__":
    from blurnet_tf import cli

    cli.run(main)
