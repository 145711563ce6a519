"""Callbacks that watch training without changing it: the weights kept along the way (Snapshots) and
the share of the feature-map penalty in the loss and its gradient (PenaltyShare)."""

import pathlib

import keras
import numpy as np
import tensorflow as tf

from blurnet_tf import files, rundir


class Snapshots(keras.callbacks.Callback):
    """Saves the deployable classifier after each of `epochs` (1-based) and after each of `steps`
    (batches since the start of training: the baseline's curve inside its first epochs), atomically,
    with its accuracy on `validation_data` beside it (<snapshot>.json); a snapshot already there is kept
    (a resumed run reaches the same weights)."""

    def __init__(self, out_dir, epochs=(), steps=(), steps_per_epoch=1, validation_data=None):
        super().__init__()
        self.out_dir, self.epochs, self.steps = pathlib.Path(out_dir), set(epochs), set(steps)
        self.steps_per_epoch, self.validation_data, self.epoch = steps_per_epoch, validation_data, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps_per_epoch + batch + 1
        if step in self.steps:
            self._save(rundir.snapshot_step_file(self.out_dir, step), step)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            self._save(rundir.snapshot_file(self.out_dir, epoch + 1), (epoch + 1) * self.steps_per_epoch)

    def _save(self, path, step):
        from blurnet_tf.defences import classifier_of
        from blurnet_tf.registry import save_model

        classifier = classifier_of(self.model)
        if not path.is_file():
            save_model(classifier, files.ensure_dir(path.parent) / path.name)
        info = path.with_suffix(".json")
        if self.validation_data is not None and not info.is_file():
            x, y = self.validation_data
            predicted = np.concatenate(
                [np.argmax(classifier(x[i : i + 500], training=False), -1) for i in range(0, len(y), 500)]
            )
            files.write_json(
                info,
                {
                    "step": step,
                    "epochs": step / self.steps_per_epoch,
                    "legit_accuracy": float(np.mean(predicted == np.asarray(y))),
                    "test_images": int(len(y)),
                },
            )


class PenaltyShare(keras.callbacks.Callback):
    """At each epoch's end, on a fixed batch in inference mode: the cross-entropy, the model's add_loss
    penalty, and the L2 norm of each one's gradient over the trainable weights, added to the epoch's logs
    (so the history in metrics.json keeps them). Runs before the checkpoint callback; changes no weight."""

    def __init__(self, images, labels):
        super().__init__()
        self.images, self.labels = tf.constant(images), tf.constant(labels)

    def on_epoch_end(self, epoch, logs=None):
        weights = self.model.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            logits = self.model(self.images, training=False)
            ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(self.labels, logits, from_logits=True))
            penalty = (
                tf.add_n([tf.cast(v, tf.float32) for v in self.model.losses]) if self.model.losses else tf.constant(0.0)
            )
        norms = [
            tf.linalg.global_norm([g for g in tape.gradient(term, weights) if g is not None] or [tf.zeros(())])
            for term in (ce, penalty)
        ]
        del tape
        if logs is not None:
            logs.update(
                {
                    "monitor_ce": float(ce),
                    "monitor_penalty": float(penalty),
                    "monitor_grad_ce": float(norms[0]),
                    "monitor_grad_penalty": float(norms[1]),
                }
            )
