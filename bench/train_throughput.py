"""Training throughput of `fit` (images/s) beside the bare forward+backward step of the same model.

    python bench/train_throughput.py [--defence baseline] [--epochs 3]
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from blurnet_tf.data import find_data_dir, load_lisa_split
from blurnet_tf.registry import build_model
from blurnet_tf.experiments.model_training import compile_for_training, epoch_dataset


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--defence", default="baseline")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=128)
    args = parser.parse_args()
    train, _, _ = load_lisa_split(find_data_dir())
    n = len(train.labels)

    model = compile_for_training(build_model(args.defence), 1e-3, "constant", 1)
    ds, steps = epoch_dataset(train.images, train.labels, args.batch_size, 0, 0, args.epochs + 1)
    model.fit(ds.take(steps), epochs=1, verbose=0)  # trace
    t = time.perf_counter()
    model.fit(ds.skip(steps), epochs=args.epochs, steps_per_epoch=steps, verbose=0)
    fit_rate = args.epochs * n / (time.perf_counter() - t)

    bare = build_model(args.defence)
    opt = keras.optimizers.Adam(1e-3)
    xb = tf.constant(train.images[:args.batch_size])
    yb = tf.constant(train.labels[:args.batch_size])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = bare(xb, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)) + sum(bare.losses)
        opt.apply_gradients(zip(tape.gradient(loss, bare.trainable_variables), bare.trainable_variables))

    step()
    reps = 3 * steps
    t = time.perf_counter()
    for _ in range(reps):
        step()
    bare_rate = reps * args.batch_size / (time.perf_counter() - t)
    print(f"{args.defence}: fit {fit_rate:.0f} img/s, bare forward+backward step {bare_rate:.0f} img/s, "
          f"ratio {fit_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
