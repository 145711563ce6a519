"""Training with Keras `fit`: deterministic per-epoch shuffling, checkpoints, resume, strategies.

A run directory holds checkpoint/ (model.keras with optimizer state + state.json) every
`checkpoint_every` epochs; a killed run started again continues from the last checkpoint with
the same per-epoch batches, so no finished epoch is lost or repeated.
"""

import hashlib
import json
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from blurnet_tf import files
from blurnet_tf.registry.model_files import load_model, save_model

CHECKPOINT_DIR = "checkpoint"


def make_strategy(name):
    """default | mirrored | multi_worker (the latter reads TF_CONFIG)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}: use default, mirrored or multi_worker")


def epoch_dataset(images, labels, batch_size, seed, first_epoch, last_epoch):
    """Batches for epochs [first_epoch, last_epoch): epoch e is shuffled by (seed, e) only."""
    n = len(labels)
    steps = int(np.ceil(n / batch_size))  # the same count train() uses for the LR schedule

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    x, y = tf.constant(images), tf.constant(labels)
    ds = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(one_epoch)
    ds = ds.map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE), steps


def compile_for_training(model, learning_rate, lr_schedule, total_steps):
    """Adam(beta1 0.9, beta2 0.999, eps 1e-8) as in the paper; loss = CE (+ the model's add_loss terms)."""
    if lr_schedule == "constant":
        rate = learning_rate
    elif lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total_steps)
    else:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}: use constant or cosine")
    model.compile(optimizer=keras.optimizers.Adam(rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


class EpochCheckpoint(keras.callbacks.Callback):
    """Every `every` epochs (and at the end) writes model+optimizer and the history, atomically."""

    def __init__(self, directory, every, total_epochs, config_hash, history, seconds_before=0.0):
        super().__init__()
        self.seconds_before, self.started = seconds_before, time.time()
        self.directory = pathlib.Path(directory)
        self.every = every
        self.total_epochs = total_epochs
        self.config_hash = config_hash
        self.history = history

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.total_epochs:
            save_model(self.model, self.directory / "model.keras")
            files.write_json(self.directory / "state.json",
                          {"epochs_done": epoch + 1, "config_hash": self.config_hash, "history": self.history,
                           "train_seconds": None if self.seconds_before is None
                           else self.seconds_before + time.time() - self.started})


def config_hash(config):
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train(build, train_data, out_dir, *, epochs, batch_size=128, learning_rate=1e-3,
          lr_schedule="constant", seed=0, checkpoint_every=10, strategy="default",
          validation_data=None, verbose=2, config=None):
    """Trains `build()` (a compiled-later Keras model) and returns (model, history, info).

    `config` (the run's flags) is hashed; a checkpoint written under another config is refused.
    """
    out_dir = pathlib.Path(out_dir)
    ckpt = out_dir / CHECKPOINT_DIR
    chash = config_hash(config or {})
    state_file = ckpt / "state.json"
    history, first_epoch, seconds_before = [], 0, 0.0
    strat = make_strategy(strategy)
    x, y = train_data
    steps = int(np.ceil(len(y) / batch_size))
    with strat.scope():
        if state_file.is_file():
            state = json.loads(state_file.read_text())
            if state["config_hash"] != chash:
                raise ValueError(f"{state_file}: checkpoint was written with other settings; "
                                 f"use another --out or delete {ckpt}")
            model = load_model(ckpt / "model.keras", compile=True)
            history, first_epoch = state["history"], state["epochs_done"]
            seconds_before = state.get("train_seconds")  # None: written before this was recorded
            print(f"resuming from {ckpt} after epoch {first_epoch}", flush=True)
        else:
            model = compile_for_training(build(), learning_rate, lr_schedule, steps * epochs)
    start = time.time()
    if first_epoch < epochs:
        ds, steps = epoch_dataset(x, y, batch_size, seed, first_epoch, epochs)
        callbacks = [EpochCheckpoint(ckpt, checkpoint_every, epochs, chash, history, seconds_before),
                     keras.callbacks.TensorBoard(log_dir=str(out_dir / "tensorboard"))]
        # Models with a training schedule (Defend++'s alternating phases) bring their own callbacks.
        callbacks += model.training_callbacks() if hasattr(model, "training_callbacks") else []
        model.fit(ds, epochs=epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                  validation_data=validation_data, callbacks=callbacks, verbose=verbose)
    seconds = time.time() - start
    # Seconds in fit over every run of this directory up to its last checkpoint (None when an
    # earlier run did not record them).
    total = json.loads(state_file.read_text()).get("train_seconds") if state_file.is_file() else None
    info = {"epochs": epochs, "resumed_from_epoch": first_epoch, "train_seconds_this_run": seconds,
            "train_seconds_total": total,
            "images_per_second": (epochs - first_epoch) * len(y) / seconds if seconds > 0 else None}
    return model, history, info
