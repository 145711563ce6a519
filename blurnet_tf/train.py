"""Train a LISA-CNN (baseline or a defence) on the track-held-out split.

    python -m blurnet_tf.train --flagfile=flags/models/baseline.flags --out=runs/baseline

Writes OUT/model.keras and OUT/metrics.json; checkpoints every --checkpoint_every epochs and
resumes from OUT/checkpoint after a kill.
"""

import os
import pathlib
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Data directory (default: $BLURNET_DATA, ../shared/data, cache).")
flags.DEFINE_string("out", None, "Run directory for model.keras, metrics.json, checkpoints.", required=True)
flags.DEFINE_string("defence", "baseline", "Model to build (see blurnet_tf.defences.DEFENCES).")
flags.DEFINE_integer("epochs", 30, "Training epochs (the paper ran 2000; ours plateau by ~20).")
flags.DEFINE_integer("batch_size", 128, "Batch size (Cleverhans default).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (Cleverhans default).")
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"], "Learning-rate schedule.")
flags.DEFINE_integer("seed", 0, "Seed for weights, shuffling and dropout.")
flags.DEFINE_boolean("deterministic", False, "Enable TensorFlow op determinism (slower).")
flags.DEFINE_integer("checkpoint_every", 10, "Checkpoint every N epochs.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "tf.distribute strategy.")
flags.DEFINE_float("test_fraction", 0.2, "Fraction of images in held-out tracks.")
flags.DEFINE_integer("split_seed", 0, "Seed of the track-held-out split.")
# Defence parameters; unset ones take the paper's values (see blurnet_tf.defences.factory).
flags.DEFINE_integer("kernel_size", None, "Blur / depthwise kernel size k (input_blur, l1_blur, conv).")
flags.DEFINE_enum("blur_kernel", None, ["box", "gaussian"], "Blur kernel (default box).")
flags.DEFINE_float("blur_sigma", None, "Gaussian blur sigma (default: OpenCV's rule for k).")
flags.DEFINE_float("alpha", None, "Regularisation weight (conv, tv, tik_hf, tik_pseudo).")
flags.DEFINE_integer("tik_window", None, "Moving-average window of Tik_hf (default 3).")
flags.DEFINE_enum("tik_pseudo_mode", None, ["elementwise", "matmul"], "Tik_pseudo reading (default elementwise).")
flags.DEFINE_float("sigma", None, "Gaussian augmentation sigma.")
flags.DEFINE_float("pgd_eps", None, "Adversarial training: PGD L-inf eps (default 8/255).")
flags.DEFINE_float("pgd_step", None, "Adversarial training: PGD step (default 2.5 eps / steps).")
flags.DEFINE_integer("pgd_steps", None, "Adversarial training: PGD steps (default 7).")
flags.DEFINE_float("validation_fraction", 0.0, "Hold out this fraction of the training split's tracks "
                   "(not trained on) for choosing defence parameters; 0 = train on all.")
flags.DEFINE_integer("max_train_images", 0, "Use only the first N training images (smoke tests); 0 = all.")

_RUN_FLAGS = ("defence", "epochs", "batch_size", "learning_rate", "lr_schedule", "seed", "deterministic",
              "strategy", "test_fraction", "split_seed", "validation_fraction", "max_train_images")


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from blurnet_tf import cli, io
    from blurnet_tf.data import find_data_dir, hold_out_validation, load_lisa_split, load_victims
    from blurnet_tf.data.lisa import dataset_hash, format_split_report
    from blurnet_tf.defences import DEFENCE_PARAMS, build_model, classifier_of
    from blurnet_tf.evaluation.clean import evaluate_clean
    from blurnet_tf.models.store import save_model
    from blurnet_tf.training import train

    started = time.time()
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    data_dir = find_data_dir(FLAGS.data_dir)
    train_set, test_set, split = load_lisa_split(data_dir, FLAGS.test_fraction, FLAGS.split_seed)
    if FLAGS.validation_fraction:
        train_set, _ = hold_out_validation(train_set, FLAGS.validation_fraction, FLAGS.split_seed + 1)
    if FLAGS.max_train_images:
        train_set = train_set.subset(slice(0, FLAGS.max_train_images))
    print(format_split_report(split), flush=True)
    victims, _ = load_victims(data_dir)
    if FLAGS.defence not in DEFENCE_PARAMS:
        raise app.UsageError(f"--defence={FLAGS.defence}: choose from {', '.join(DEFENCE_PARAMS)}")
    params = cli.flag_values(flags, DEFENCE_PARAMS[FLAGS.defence])
    config = {**cli.flag_values(flags, _RUN_FLAGS), "params": params}
    model, history, info = train(
        lambda: build_model(FLAGS.defence, **params), (train_set.images, train_set.labels), FLAGS.out,
        epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        lr_schedule=FLAGS.lr_schedule, seed=FLAGS.seed, checkpoint_every=FLAGS.checkpoint_every,
        strategy=FLAGS.strategy, validation_data=(test_set.images, test_set.labels),
        verbose=1 if sys.stdout.isatty() else 2, config=config)
    out = pathlib.Path(FLAGS.out)
    model = classifier_of(model)  # the deployable classifier, without a training wrapper
    save_model(model, out / "model.keras")
    metrics = evaluate_clean(model, test_set, victims)
    metrics.update({
        "defence": FLAGS.defence, "flags": config, "data_dir": os.fspath(data_dir),
        "data_hash": dataset_hash(train_set) + "/" + dataset_hash(test_set), "split": split,
        "history": history, "training": info, "wall_seconds": time.time() - started,
        "versions": io.package_versions(),
    })
    io.write_json(out / "metrics.json", metrics)
    print(f"legit accuracy {metrics['legit_accuracy']:.4f} on {metrics['test_images']} held-out images; "
          f"victims {metrics['victims_correct']}/40; wrote {out / 'metrics.json'}", flush=True)


if __name__ == "__main__":
    from blurnet_tf import cli

    cli.run(main)
