"""Training with Keras `fit`: deterministic per-epoch shuffling and randomness, checkpoints, resume.

Resume is bit-exact: a run killed and started again ends with the weights of an uninterrupted run
with the same seed. Every epoch depends only on (seed, epoch, the weights and optimizer state at
its start):
  * its batches are a stateless shuffle keyed by (seed, epoch) (`epoch_dataset`);
  * its randomness is re-seeded from (seed, epoch) when it begins (`EpochSeeds`): every Keras
    `SeedGenerator` of the model (Dropout, GaussianNoise) and Keras' global one get a state
    derived from them; and when the train step uses TF's stateful random ops (cleverhans' PGD
    random start, tf.random.normal), TF's global seed is set from them and the train function
    is traced afresh, because those ops keep their state inside the traced function's kernels,
    where no checkpoint can reach it.
Re-seeding (rather than saving every generator's state) leaves nothing to save, covers the TF
ops too, and keeps working when a layer adds a generator (tf.random.Generator objects are not
covered; training uses none). On CPU the ops themselves are
deterministic: two runs with one seed give identical weights without op determinism. The model's initial weights come
from
the seed the caller set before `build()` (the binary calls keras.utils.set_random_seed(seed)).

A run directory holds checkpoint/ (model.keras with optimizer state, state.json), written every
`checkpoint_every` epochs (default: every epoch) and at the end, as one unit: into a fresh
checkpoint.<pid>.tmp/, fsynced, then swapped in by renames (checkpoint/ -> checkpoint.old/,
tmp -> checkpoint/, checkpoint.old/ deleted), so at every instant a complete checkpoint exists
under checkpoint/ or checkpoint.old/. One writer per directory is assumed (the binary holds the
run lock). A corrupt checkpoint is moved aside and training starts from scratch; one written
with other settings is refused.
"""

import hashlib
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf
from keras.src.random.seed_generator import global_seed_generator
from tensorflow.python.eager import context as tf_context

from blurnet_tf import files, rundir
from blurnet_tf.errors import DataError, SettingError, TrainingDiverged
from blurnet_tf.experiments.paper_sgd import PaperStepDecay, paper_sgd
from blurnet_tf.experiments.training_checkpoint import EpochCheckpoint, load_checkpoint, recover_checkpoint
from blurnet_tf.experiments.training_monitors import PenaltyShare, Snapshots


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
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    x, y = tf.constant(images), tf.constant(labels)
    ds = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(one_epoch)
    ds = ds.map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE), steps


def compile_for_training(
    model, learning_rate, lr_schedule, total_steps, optimizer="adam", momentum=0.9, weight_decay=0.0, epochs=1
):
    """Adam(beta1 0.9, beta2 0.999, eps 1e-8) as in the BlurNet paper, or "sgd": the Defend++ paper's
    SGD (momentum, PyTorch-style weight decay; `paper_sgd`); loss = CE (+ the model's add_loss terms).
    lr_schedule "paper_step" divides the rate by 10 after 40% and 80% of the steps (the Defend++ paper's
    epochs 100 and 200 of 250), with total_steps // epochs steps an epoch."""
    if lr_schedule == "constant":
        rate = learning_rate
    elif lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total_steps)
    elif lr_schedule == "paper_step":
        rate = PaperStepDecay(learning_rate, max(1, total_steps // epochs), epochs)
    else:
        raise ValueError(f"unknown lr_schedule {lr_schedule!r}: use constant, cosine or paper_step")
    if optimizer == "sgd":
        opt = paper_sgd(rate, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adam" and not weight_decay:
        opt = keras.optimizers.Adam(rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    else:
        raise ValueError(f"optimizer {optimizer!r} with weight_decay {weight_decay}: use adam (no weight decay) or sgd")
    model.compile(
        optimizer=opt,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def epoch_seed(seed, epoch, stream=0):
    """A 31-bit seed for (seed, epoch, stream), the same in every process."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{stream}".encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1


# TF's stateful random ops: they keep their state inside the kernels of a traced function.
STATEFUL_RANDOM_OPS = frozenset(
    {
        "RandomUniform",
        "RandomUniformInt",
        "RandomStandardNormal",
        "TruncatedNormal",
        "ParameterizedTruncatedNormal",
        "RandomGamma",
        "RandomPoissonV2",
        "Multinomial",
        "RandomShuffle",
    }
)


def traced_stateful_random_ops():
    """Whether a function traced in this process holds one of TF's stateful random ops."""
    ctx = tf_context.context()
    return any(
        node.op in STATEFUL_RANDOM_OPS
        for name in ctx.list_function_names()
        for node in ctx.get_function_def(name).node_def
    )


class EpochSeeds(keras.callbacks.Callback):
    """Re-seeds all of the model's randomness from (seed, epoch) as each epoch begins."""

    def __init__(self, seed):
        super().__init__()
        self.seed = seed
        self.stateful_ops = None  # known once the first epoch has traced the train function

    def on_epoch_begin(self, epoch, logs=None):
        # Layer.variables lists every SeedGenerator's state (Dropout, GaussianNoise, nested models').
        states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        states.append(global_seed_generator().state)  # keras.random ops called without a seed
        for stream, state in enumerate(states):
            state.assign([epoch_seed(self.seed, epoch, stream), 0])
        if self.stateful_ops is not False:
            # A fresh trace under a new global seed restarts TF's stateful random ops from it. At
            # the first epoch the function is not traced yet, so this costs nothing; later it costs
            # ~1 s an epoch (2 CPU cores), so it is skipped when no traced function has such ops.
            tf.random.set_seed(epoch_seed(self.seed, epoch, "tf"))
            self.model.make_train_function(force=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.stateful_ops is None:
            self.stateful_ops = traced_stateful_random_ops()


def _every_layer(layer):
    """`layer` and every layer inside it, through nested models (Keras' public `layers`, recursively)."""
    yield layer
    for inner in getattr(layer, "layers", ()):
        yield from _every_layer(inner)


class AlphaWarmup(keras.callbacks.Callback):
    """Ramps every feature-map penalty's weight linearly to its alpha over the first `epochs` epochs
    (epoch e of them trains with alpha (e + 1) / epochs): a regulariser that pulls a fresh network to the
    majority class at full alpha may not once the network has learnt some features (issue 41)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def _set(self, ramp):
        from blurnet_tf.defences.regularizers import FeatureMapRegularizer

        layers = [m for m in _every_layer(self.model) if isinstance(m, FeatureMapRegularizer)]
        changed = any(layer.ramp != ramp for layer in layers)
        for layer in layers:
            layer.ramp = ramp
        return changed

    def on_epoch_begin(self, epoch, logs=None):
        if self._set(min(1.0, (epoch + 1) / self.epochs)):  # the weight is a constant of the traced steps
            self.model.make_train_function(force=True)
            self.model.make_test_function(force=True)  # val_loss with this epoch's weight too

    def on_train_end(self, logs=None):
        if self._set(1.0):
            self.model.make_test_function(force=True)


class StopOnDivergence(keras.callbacks.Callback):
    """Stops at the first non-finite loss or weight with a one-line error, before the epoch's
    checkpoint: a diverged run must not finish as a trained model (the last finished epoch stays
    resumable). The weights are checked too because a ReLU may turn NaN into 0 (oneDNN on AVX-512
    CPUs does), so a run whose weights are already NaN can still log a finite loss.
    Keras's TerminateOnNaN stops quietly (the run would end as "done") or raises a bare RuntimeError."""

    def on_train_begin(self, logs=None):
        self.variables = list(self.model.trainable_variables)
        self.finite = tf.function(lambda: tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in self.variables]))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")  # the total: any non-finite term makes it non-finite
        if loss is not None and not np.isfinite(float(loss)):
            self.stop(f"loss {float(loss)}", batch)
        finite = self.finite().numpy()
        if not finite.all():
            self.stop(f"non-finite weights in {self.variables[int(np.argmin(finite))].path}", batch)

    def stop(self, what, batch):
        raise TrainingDiverged(
            f"training diverged: {what} at epoch {self.epoch + 1}, batch {batch + 1}; "
            "check the data or lower --learning_rate"
        )


def train(
    build,
    train_data,
    out_dir,
    *,
    epochs,
    batch_size=128,
    learning_rate=1e-3,
    lr_schedule="constant",
    seed=0,
    checkpoint_every=1,
    strategy="default",
    validation_data=None,
    verbose=2,
    config=None,
    optimizer="adam",
    momentum=0.9,
    weight_decay=0.0,
    snapshot_epochs=(),
    snapshot_steps=(),
    penalty_share=False,
    alpha_warmup=0,
):
    """Trains `build()` (a compiled-later Keras model) and returns (model, history, info).

    Call keras.utils.set_random_seed(seed) before, so that `build()` draws the same initial
    weights in every run. `config` (the run's flags) is hashed; a checkpoint written under
    another config is refused. After each of `snapshot_epochs` the deployable classifier is kept as
    rundir.snapshot_file(out_dir, epoch), and after each of `snapshot_steps` (batches since the start)
    as rundir.snapshot_step_file(out_dir, step). `penalty_share`: log each epoch's cross-entropy, penalty
    and their gradient norms on the first 512 training images (training_monitors.PenaltyShare).
    `alpha_warmup`: epochs over which feature-map penalties ramp up to their alpha (AlphaWarmup; 0: none).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}: nothing would be trained")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    out_dir = pathlib.Path(out_dir)
    ckpt = recover_checkpoint(files.ensure_dir(out_dir))
    chash = rundir.settings_key(config or {})  # same hash as before for plain flag values
    history, first_epoch, seconds_before = [], 0, 0.0
    strat = make_strategy(strategy)
    x, y = train_data
    steps = int(np.ceil(len(y) / batch_size))
    with strat.scope():
        resumed = load_checkpoint(ckpt, chash)
        if resumed:
            model, state = resumed
            history, first_epoch = state["history"], state["epochs_done"]
            seconds_before = state.get("train_seconds")  # None: written before this was recorded
            print(f"resuming from {ckpt} after epoch {first_epoch}", flush=True)
        else:
            model = compile_for_training(
                build(),
                learning_rate,
                lr_schedule,
                steps * epochs,
                optimizer=optimizer,
                momentum=momentum,
                weight_decay=weight_decay,
                epochs=epochs,
            )
    beyond = [s for s in snapshot_steps if s > epochs * steps]
    if beyond:
        raise SettingError("snapshot_steps", f"{beyond} lie past the last batch ({epochs} epochs of {steps} batches)")
    lost = [
        f"epoch {e}" for e in snapshot_epochs if e <= first_epoch and not rundir.snapshot_file(out_dir, e).is_file()
    ]
    lost += [
        f"step {s}"
        for s in snapshot_steps
        if s <= first_epoch * steps and not rundir.snapshot_step_file(out_dir, s).is_file()
    ]
    if lost:  # those weights are gone: only a run from scratch passes through them again
        raise DataError(
            out_dir,
            f"the snapshots after {', '.join(lost)} were not kept and training is past them "
            f"(epoch {first_epoch}); train into a new directory to keep them",
        )
    start = time.time()
    if first_epoch < epochs:
        ds, steps = epoch_dataset(x, y, batch_size, seed, first_epoch, epochs)
        callbacks = [
            *([AlphaWarmup(alpha_warmup)] if alpha_warmup else []),
            EpochSeeds(seed),
            StopOnDivergence(),
            *([PenaltyShare(x[:512], y[:512])] if penalty_share else []),
            Snapshots(out_dir, snapshot_epochs, snapshot_steps, steps, validation_data),
            EpochCheckpoint(out_dir, checkpoint_every, epochs, chash, history, seconds_before),
            keras.callbacks.TensorBoard(log_dir=str(out_dir / "tensorboard")),
        ]
        # Defend++'s alternating phases: DefendPP.fit adds its schedule's callback itself.
        model.fit(
            ds,
            epochs=epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps,
            validation_data=validation_data,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )  # epoch_dataset shuffles; without this Keras warns it ignores shuffle=True
    seconds = time.time() - start
    # Seconds in fit over every run of this directory up to its last checkpoint (None when an
    # earlier run did not record them).
    total = (files.read_json(ckpt / "state.json") or {}).get("train_seconds")
    info = {
        "epochs": epochs,
        "resumed_from_epoch": first_epoch,
        "train_seconds_this_run": seconds,
        "train_seconds_total": total,
        "images_per_second": (epochs - first_epoch) * len(y) / seconds if seconds > 0 else None,
    }
    return model, history, info
