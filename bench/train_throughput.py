"""Training throughput per compute precision: `fit` (images/s) beside the bare forward+backward
step of the same model, float32 and mixed bfloat16 interleaved, median of repeats.

    python bench/train_throughput.py [--defence baseline] [--epochs 1] [--repeats 5]
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from blurnet_tf.data import find_data_dir, load_lisa_split
from blurnet_tf.experiments.model_training import compile_for_training, epoch_dataset
from blurnet_tf.registry import build_model
from blurnet_tf.registry.precision import global_precision

from arguments import positive


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--defence", default="baseline")
    parser.add_argument("--epochs", type=positive, default=1)
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--batch_size", type=positive, default=128)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    train, _, _ = load_lisa_split(find_data_dir())
    n = len(train.labels)
    ds, steps = epoch_dataset(train.images, train.labels, args.batch_size, 0, 0, 1)
    ds = ds.cache()
    xb, yb = tf.constant(train.images[: args.batch_size]), tf.constant(train.labels[: args.batch_size])

    runners = {}
    for p in precisions:
        with global_precision(p):
            model = compile_for_training(build_model(args.defence), 1e-3, "constant", 1)
            bare = build_model(args.defence)
        opt = keras.optimizers.Adam(1e-3)

        @tf.function
        def step(bare=bare, opt=opt):
            with tf.GradientTape() as tape:
                logits = tf.cast(bare(xb, training=True), tf.float32)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)) + sum(
                    tf.cast(loss, tf.float32) for loss in bare.losses
                )
            opt.apply_gradients(zip(tape.gradient(loss, bare.trainable_variables), bare.trainable_variables))

        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)  # trace
        step()
        runners[p] = (model, step)

    rates = {p: {"fit": [], "bare": []} for p in precisions}
    for r in range(args.repeats):
        for p, (model, step) in runners.items():
            t = time.perf_counter()
            model.fit(ds.repeat(args.epochs), epochs=1, steps_per_epoch=steps * args.epochs, verbose=0)
            rates[p]["fit"].append(args.epochs * n / (time.perf_counter() - t))
            t = time.perf_counter()
            for _ in range(steps):
                step()
            rates[p]["bare"].append(steps * args.batch_size / (time.perf_counter() - t))
        print(
            f"repeat {r + 1}/{args.repeats}: "
            + ", ".join(f"{p} fit {rates[p]['fit'][-1]:.0f} img/s" for p in precisions),
            flush=True,
        )
    print(f"\n{args.defence}, median of {args.repeats} interleaved repeats:")
    print("| precision | fit img/s | bare step img/s | fit / bare |")
    print("|---|---|---|---|")
    for p in precisions:
        fit, bare = np.array(rates[p]["fit"]), np.array(rates[p]["bare"])
        print(f"| {p} | {np.median(fit):.0f} | {np.median(bare):.0f} | {np.median(fit / bare):.2f} |")
    if "float32" in precisions:
        for p in precisions[1:]:
            print(
                f"{p} fit / float32 fit: "
                f"{np.median(np.array(rates[p]['fit']) / np.array(rates['float32']['fit'])):.2f}x"
            )


if __name__ == "__main__":
    main()
