"""Train a classifier (baseline or a defence): the LISA-CNN on the track-held-out LISA split,
or the small residual classifier on MNIST (--dataset=mnist; the official test set split).

    python -m blurnet_tf.train --flagfile=flags/models/baseline.flags --out=runs/baseline
    python -m blurnet_tf.train --flagfile=flags/models/mnist_defendpp.flags --out=runs/mnist_defendpp

Writes OUT/model.keras (always the plain classifier) and OUT/metrics.json, plus
OUT/autoencoder.keras for Defend++; checkpoints every --checkpoint_every epochs and resumes from
OUT/checkpoint after a kill.
"""

import os
import pathlib
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Data directory (default: $BLURNET_DATA, ../shared/data, cache).")
flags.DEFINE_string("out", None, "Run directory for model.keras, metrics.json, checkpoints.", required=True)
flags.DEFINE_enum("dataset", "lisa", ["lisa", "mnist"], "LISA (LISA-CNN) or MNIST (residual classifier).")
flags.DEFINE_string("defence", "baseline", "Model to build (see blurnet_tf.defences.DEFENCES).")
flags.DEFINE_integer("epochs", 30, "Training epochs (the paper ran 2000; ours plateau by ~20).")
flags.DEFINE_integer("batch_size", 128, "Batch size (Cleverhans default).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (Cleverhans default).")
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"], "Learning-rate schedule.")
flags.DEFINE_integer("seed", 0, "Seed for weights, shuffling and dropout.")
flags.DEFINE_boolean("deterministic", False, "Enable TensorFlow op determinism (slower).")
flags.DEFINE_integer("checkpoint_every", 10, "Checkpoint every N epochs.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "tf.distribute strategy.")
flags.DEFINE_float("test_fraction", None, "Test fraction: LISA images in held-out tracks (default 0.2), "
                   "or MNIST test-set images kept for testing (default 0.3).")
flags.DEFINE_integer("split_seed", 0, "Seed of the split.")
# Defence parameters; unset ones take the paper's values (see blurnet_tf.registry.builders).
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
flags.DEFINE_float("fgsm_eps", None, "FGSM training eps (default 0.2 on MNIST, 8/255 on LISA).")
flags.DEFINE_enum("decoder", None, ["pyramid", "hourglass"], "Defend++ decoder (default pyramid, the paper's).")
flags.DEFINE_float("low_pass_weight", None, "Defend++ λ of eq. 3 (default 0.01; 0 = without the "
                   "multi-scale low-pass objective).")
flags.DEFINE_float("reconstruction_weight", None, "Defend++ weight of L_rect against L_cls (default 1).")
flags.DEFINE_float("gn_sigma", None, "Defend++ '+GN': noise std relative to each decoder input's "
                   "(default 0 = off).")
flags.DEFINE_enum("schedule", None, ["joint", "alternating"], "Defend++ training schedule (default joint).")
flags.DEFINE_integer("alternating_cycles", None, "Defend++ alternating: AE/classifier cycles before joint "
                     "training (default 2).")
flags.DEFINE_integer("alternating_epochs", None, "Defend++ alternating: epochs per phase (default 1).")
flags.DEFINE_float("validation_fraction", 0.0, "Hold out this fraction of the training split's tracks "
                   "(not trained on) for choosing defence parameters; 0 = train on all.")
flags.DEFINE_integer("max_train_images", 0, "Use only the first N training images (smoke tests); 0 = all.")

_RUN_FLAGS = ("dataset", "defence", "epochs", "batch_size", "learning_rate", "lr_schedule", "seed", "deterministic",
              "strategy", "test_fraction", "split_seed", "validation_fraction", "max_train_images")


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from blurnet_tf import cli, files
    from blurnet_tf.data import find_data_dir
    from blurnet_tf.defences import DefendPP, classifier_of
    from blurnet_tf.registry import DEFENCE_PARAMS, build_model
    from blurnet_tf.registry.model_files import save_model
    from blurnet_tf.experiments.model_training import train

    started = time.time()
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    if FLAGS.defence not in DEFENCE_PARAMS:
        raise app.UsageError(f"--defence={FLAGS.defence}: choose from {', '.join(DEFENCE_PARAMS)}")
    if FLAGS.test_fraction is None:
        FLAGS.test_fraction = 0.2 if FLAGS.dataset == "lisa" else 0.3
    data_dir = find_data_dir(FLAGS.data_dir)
    params = cli.flag_values(flags, DEFENCE_PARAMS[FLAGS.defence])
    config = {**cli.flag_values(flags, _RUN_FLAGS), "params": params}
    try:
        build_model(FLAGS.defence, FLAGS.dataset, **params)  # bad combinations fail before any data is read
    except ValueError as exc:
        raise app.UsageError(str(exc)) from None
    data = _load_data(data_dir)
    train_set, test_set = data["train"], data["test"]
    model, history, info = train(
        lambda: build_model(FLAGS.defence, FLAGS.dataset, **params), train_set, FLAGS.out,
        epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        lr_schedule=FLAGS.lr_schedule, seed=FLAGS.seed, checkpoint_every=FLAGS.checkpoint_every,
        strategy=FLAGS.strategy, validation_data=test_set,
        verbose=1 if sys.stdout.isatty() else 2, config=config)
    out = pathlib.Path(FLAGS.out)
    if isinstance(model, DefendPP):  # kept for figures only; inference never uses it
        save_model(model.autoencoder, out / "autoencoder.keras")
    model = classifier_of(model)  # the deployable classifier, without a training wrapper
    save_model(model, out / "model.keras")
    metrics = data["evaluate"](model)
    metrics.update({
        "dataset": FLAGS.dataset, "defence": FLAGS.defence, "flags": config, "data_dir": os.fspath(data_dir),
        "data_hash": data["hash"], "split": data["split"], "history": history, "training": info,
        "wall_seconds": time.time() - started, "versions": files.package_versions(),
    })
    files.write_json(out / "metrics.json", metrics)
    victims = f"; victims {metrics['victims_correct']}/40" if "victims_correct" in metrics else ""
    print(f"legit accuracy {metrics['legit_accuracy']:.4f} on {metrics['test_images']} held-out images"
          f"{victims}; wrote {out / 'metrics.json'}", flush=True)


def _load_data(data_dir):
    """{train: (x, y), test: (x, y), evaluate: model -> metrics, hash, split} for --dataset."""
    import hashlib

    import numpy as np

    from blurnet_tf.evaluation.metrics import accuracy, predict_classes

    if FLAGS.dataset == "mnist":
        from blurnet_tf.data.mnist import load_mnist

        x_train, y_train, x_test, y_test = load_mnist(data_dir, FLAGS.test_fraction, FLAGS.split_seed)
        if FLAGS.max_train_images:
            x_train, y_train = x_train[:FLAGS.max_train_images], y_train[:FLAGS.max_train_images]
        print(f"MNIST: the 10,000 official test images split {len(y_train)} train / {len(y_test)} test "
              f"(seed {FLAGS.split_seed})", flush=True)
        digest = hashlib.sha256(np.ascontiguousarray(x_train).tobytes() + np.ascontiguousarray(x_test).tobytes())
        return {"train": (x_train, y_train), "test": (x_test, y_test), "hash": digest.hexdigest()[:16],
                "split": {"train_images": int(len(y_train)), "test_images": int(len(y_test)),
                          "test_fraction": FLAGS.test_fraction, "seed": FLAGS.split_seed},
                "evaluate": lambda model: {"legit_accuracy": accuracy(predict_classes(model, x_test), y_test),
                                           "test_images": int(len(y_test))}}

    from blurnet_tf.data import hold_out_validation, load_lisa_split, load_victims
    from blurnet_tf.data.lisa import dataset_hash, format_split_report
    from blurnet_tf.evaluation.clean_accuracy import evaluate_clean

    train_set, test_set, split = load_lisa_split(data_dir, FLAGS.test_fraction, FLAGS.split_seed)
    if FLAGS.validation_fraction:
        train_set, _ = hold_out_validation(train_set, FLAGS.validation_fraction, FLAGS.split_seed + 1)
    if FLAGS.max_train_images:
        train_set = train_set.subset(slice(0, FLAGS.max_train_images))
    print(format_split_report(split), flush=True)
    victims, _ = load_victims(data_dir)
    return {"train": (train_set.images, train_set.labels), "test": (test_set.images, test_set.labels),
            "hash": dataset_hash(train_set) + "/" + dataset_hash(test_set), "split": split,
            "evaluate": lambda model: evaluate_clean(model, test_set, victims)}


if __name__ == "__main__":
    from blurnet_tf import cli

    cli.run(main)
