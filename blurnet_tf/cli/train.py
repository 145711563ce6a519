"""Train a classifier (baseline or a defence): the LISA-CNN on the track-held-out LISA split,
or the small residual classifier on MNIST (--dataset=mnist; the official test set split).

    python -m blurnet_tf.cli.train --flagfile=flags/models/baseline.flags --out=runs/baseline
    python -m blurnet_tf.cli.train --flagfile=flags/models/mnist_defendpp.flags --out=runs/mnist_defendpp
    python -m blurnet_tf.cli.train --flagfile=flags/models/mnist_defendpp_resnet18.flags --out=runs/rn18

The last is Defend++ as the paper ran it: ResNet-18 (--architecture=mnist_resnet18) on the official
60,000 / 10,000 split (--mnist_split=official), SGD with the paper's step schedule.

Writes OUT/model.keras (always the plain classifier) and OUT/metrics.json, plus
OUT/autoencoder.keras for Defend++; checkpoints every --checkpoint_every epochs (default: every
epoch) and resumes from OUT/checkpoint after a kill, to the weights an uninterrupted run gives.
"""

from absl import flags

from blurnet_tf import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Data directory (default: $BLURNET_DATA, ../shared/data, cache).")
flags.DEFINE_string("out", None, "Run directory for model.keras, metrics.json, checkpoints.", required=True)
flags.DEFINE_boolean(
    "overwrite",
    False,
    "Write into an --out holding files training did not write (a run directory "
    "records which command made it); without it such an --out is refused.",
)
flags.DEFINE_enum("dataset", "lisa", ["lisa", "mnist"], "LISA (LISA-CNN) or MNIST (residual classifier).")
flags.DEFINE_string("defence", "baseline", "Model to build (the names of blurnet_tf.registry.DEFENCE_PARAMS).")
flags.DEFINE_integer(
    "epochs",
    30,
    "Training epochs (the paper ran 2000; the baseline is within 0.1 point of its 30-epoch accuracy after 10).",
)
flags.DEFINE_integer("batch_size", 128, "Batch size (Cleverhans default).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (Cleverhans default).")
flags.DEFINE_enum(
    "lr_schedule",
    "constant",
    ["constant", "cosine", "paper_step"],
    "Learning-rate schedule (paper_step: divided by 10 at 40% and 80% of --epochs, Defend++'s 100/200 of 250).",
)
flags.DEFINE_string(
    "architecture", None, "Classifier (default: the dataset's; mnist_resnet18: the Defend++ paper's ResNet-18)."
)
flags.DEFINE_enum(
    "mnist_split",
    "test_split",
    ["test_split", "official"],
    "MNIST data: test_split (the 10,000 "
    "test images split by --test_fraction) or official (train on the 60,000, test on the 10,000).",
)
flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"], "Adam, or SGD with momentum and PyTorch-style weight decay.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum (Defend++: 0.9).")
flags.DEFINE_float("weight_decay", 0.0, "SGD weight decay, added to the gradient as in PyTorch (Defend++: 5e-4).")
flags.DEFINE_integer("seed", 0, "Seed for weights, shuffling and dropout.")
flags.DEFINE_boolean("deterministic", False, "Enable TensorFlow op determinism (slower).")
flags.DEFINE_integer("checkpoint_every", 1, "Checkpoint every N epochs.")
flags.DEFINE_list(
    "snapshot_epochs",
    [],
    "Keep the classifier after these epochs as OUT/snapshots/epoch<N>.keras "
    "(attack them for robustness along training).",
)
flags.DEFINE_list(
    "snapshot_steps",
    [],
    "Keep the classifier after these batches since the start of training as "
    "OUT/snapshots/step<N>.keras (robustness inside the first epochs; an epoch is ceil(images / batch) batches).",
)
flags.DEFINE_boolean(
    "log_penalty_share",
    False,
    "Log each epoch's cross-entropy, feature-map penalty and the L2 "
    "norms of their gradients on the first 512 training images (metrics.json history: monitor_*).",
)
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "tf.distribute strategy.")
flags.DEFINE_float(
    "test_fraction",
    None,
    "Test fraction: LISA images in held-out tracks (default 0.2), "
    "or MNIST test-set images kept for testing (default 0.3).",
)
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
flags.DEFINE_float(
    "low_pass_weight", None, "Defend++ λ of eq. 3 (default 0.01; 0 = without the multi-scale low-pass objective)."
)
flags.DEFINE_float("reconstruction_weight", None, "Defend++ weight of L_rect against L_cls (default 1).")
flags.DEFINE_float("gn_sigma", None, "Defend++ '+GN': noise std relative to each decoder input's (default 0 = off).")
flags.DEFINE_enum("schedule", None, ["joint", "alternating"], "Defend++ training schedule (default joint).")
flags.DEFINE_integer(
    "alternating_cycles", None, "Defend++ alternating: AE/classifier cycles before joint training (default 2)."
)
flags.DEFINE_integer("alternating_epochs", None, "Defend++ alternating: epochs per phase (default 1).")
flags.DEFINE_float(
    "validation_fraction",
    0.0,
    "Hold out this fraction of the training split's tracks "
    "(not trained on) for choosing defence parameters (MNIST official: of the 60,000 "
    "images, watched instead of the test set); 0 = train on all.",
)
flags.DEFINE_integer("max_train_images", 0, "Use only the first N training images (smoke tests); 0 = all.")
flags.DEFINE_integer(
    "alpha_warmup",
    0,
    "tv, tik_hf, tik_pseudo: ramp the penalty's weight linearly up to --alpha over this many epochs (0: none).",
)
flags.DEFINE_float(
    "train_tracks",
    1.0,
    "LISA: train on this share of each class's training tracks (whole tracks, every class kept, chosen by "
    "--seed): a less accurate model trained to the end, not stopped early.",
)
flags.DEFINE_enum(
    "precision",
    "float32",
    ["float32", "mixed_bfloat16"],
    "Compute precision (mixed_bfloat16: bf16 compute; weights, Adam state and loss float32).",
)
flags.DEFINE_boolean("allow_missing_classes", False, "Train even when a LISA class has no images.")

_RUN_FLAGS = (
    "dataset",
    "defence",
    "epochs",
    "batch_size",
    "learning_rate",
    "lr_schedule",
    "seed",
    "deterministic",
    "strategy",
    "test_fraction",
    "split_seed",
    "validation_fraction",
    "max_train_images",
    "train_tracks",
    "alpha_warmup",
    "allow_missing_classes",
    "precision",
    "architecture",
    "mnist_split",
    "optimizer",
    "momentum",
    "weight_decay",
)


def settings():
    from blurnet_tf.experiments.classifier_training import TrainingRun
    from blurnet_tf.registry import DEFENCE_PARAMS

    if FLAGS.defence not in DEFENCE_PARAMS:
        raise cli.SettingError("defence", f"unknown {FLAGS.defence!r}; choose from {', '.join(DEFENCE_PARAMS)}")
    snapshots = cli.int_list("snapshot_epochs", ",".join(FLAGS.snapshot_epochs)) if FLAGS.snapshot_epochs else ()
    steps = cli.int_list("snapshot_steps", ",".join(FLAGS.snapshot_steps)) if FLAGS.snapshot_steps else ()
    return TrainingRun(
        **cli.flag_values(flags, _RUN_FLAGS),
        snapshot_epochs=snapshots,
        snapshot_steps=steps,
        log_penalty_share=FLAGS.log_penalty_share,
        params=cli.flag_values(flags, DEFENCE_PARAMS[FLAGS.defence]),
    )


def main(argv):
    del argv
    run = settings()
    if FLAGS.checkpoint_every < 1:
        raise cli.SettingError("checkpoint_every", f"expected an integer >= 1, got {FLAGS.checkpoint_every}")
    record = run.run(
        FLAGS.out,
        FLAGS.data_dir,
        checkpoint_every=FLAGS.checkpoint_every,
        log=lambda m: print(m, flush=True),
        overwrite=FLAGS.overwrite,
    )
    victims = f"; victims {record.victims_correct}/40" if record.victims_correct is not None else ""
    print(
        f"legit accuracy {record.legit_accuracy:.4f} on {record.test_images} held-out images"
        f"{victims}; wrote {FLAGS.out}/metrics.json",
        flush=True,
    )


if __name__ == "__main__":
    cli.run(main)
