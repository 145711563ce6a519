"""Data: LISA crops, the RP2 victims/masks/colours, MNIST, and where they are found."""

from blurnet_tf.data.lisa import (CLASS_NAMES, NUM_CLASSES, SPEED_LIMIT_45, STOP, LisaData,
                                  load_lisa, split_report, track_split)
from blurnet_tf.data.rp2_assets import load_mask, load_nps_colors, load_victims
from blurnet_tf.data.sources import find_data_dir


def load_lisa_split(data_dir, test_fraction=0.2, seed=0):
    """(train, test, report): the LISA crops under data_dir/lisa, split with whole tracks held out."""
    import pathlib

    data = load_lisa(pathlib.Path(data_dir) / "lisa")
    train_idx, test_idx = track_split(data, test_fraction, seed)
    return data.subset(train_idx), data.subset(test_idx), split_report(data, train_idx, test_idx)


def trained_split(run_dir, default=("lisa", 0.2, 0)):
    """(dataset, test_fraction, split_seed) a run directory was trained with, from its
    metrics.json; `default` for the original weights or a bare .keras file."""
    import json
    import pathlib

    metrics = pathlib.Path(run_dir) / "metrics.json"
    if not metrics.is_file():
        return default
    flags = json.loads(metrics.read_text())["flags"]
    return flags.get("dataset", "lisa"), flags["test_fraction"], flags["split_seed"]


def load_test_split(data_dir, dataset, test_fraction, split_seed):
    """(images, labels) of the LISA track-held-out or the MNIST test split."""
    if dataset == "mnist":
        from blurnet_tf.data.mnist import load_mnist

        return load_mnist(data_dir, test_fraction, split_seed)[2:]
    _, test, _ = load_lisa_split(data_dir, test_fraction, split_seed)
    return test.images, test.labels


def hold_out_validation(train, fraction, seed=1):
    """(train', validation): whole tracks of the training split held out for choosing a defence's
    parameters, so the test split is never looked at (Pixel Deflection's parameter search)."""
    train_idx, val_idx = track_split(train, fraction, seed)
    return train.subset(train_idx), train.subset(val_idx)
