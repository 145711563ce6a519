"""RP2 engine speed per compute precision, measured against references timed in the same run.

    python bench/rp2_engine_speed.py [--epochs 20] [--repeats 5] [--precisions float32,mixed_bfloat16]

Each repeat times, for every precision in turn (interleaved, so load drifts hit all alike): the
bare forward + input-gradient of the model on the 17 targets x 40 victims batch (the ceiling) and
the RP2 engine on the same sweep. Prints medians over repeats of: image-steps/s, the ratio engine
/ its own precision's ceiling, the bf16 / float32 engine speed, the speed-up over a per-target
eager Python loop shaped like the original TF1 code (float32), and GFLOP/s against tf.matmul's.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from blurnet_tf.attacks import rp2
from blurnet_tf.data import STOP, find_data_dir, load_mask, load_victims
from blurnet_tf.models import load_original_lisa_cnn
from blurnet_tf.registry.precision import with_precision

from arguments import positive


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def model_flops(model, batch):
    """Forward FLOPs (2 x multiply-adds) of the conv and dense layers for one batch."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            kh, kw, c_in, _ = layer.kernel.shape
            total += 2 * h * w * c_out * kh * kw * c_in
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * np.prod(layer.kernel.shape)
    return total * batch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=positive, default=20)
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--ceiling_steps", type=positive, default=10)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument(
        "--eager_targets", type=positive, default=2, help="targets timed in the eager loop (extrapolated to 17)"
    )
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    data_dir = find_data_dir()
    base = load_original_lisa_cnn(data_dir)
    models = {p: base if p == "float32" else with_precision(base, p) for p in precisions}
    victims, _ = load_victims(data_dir)
    mask = load_mask(data_dir, "rectangles")
    targets = [t for t in range(18) if t != STOP]
    batch = len(targets) * len(victims)
    x = tf.constant(np.tile(victims, (len(targets), 1, 1, 1)))
    y = tf.constant(np.repeat(targets, len(victims)))

    def ceiling_fn(model):
        @tf.function
        def forward_input_gradient(images):
            with tf.GradientTape() as tape:
                tape.watch(images)
                logits = tf.cast(model(images, training=False), tf.float32)
                loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            return tape.gradient(loss, images)

        forward_input_gradient(x)
        return lambda: [forward_input_gradient(x).numpy() for _ in range(args.ceiling_steps)]

    ceilings = {p: ceiling_fn(m) for p, m in models.items()}
    for m in models.values():
        rp2(m, victims, mask, targets, lam=0.002, epochs=2)  # trace once
    times = {p: {"ceiling": [], "engine": []} for p in precisions}
    for r in range(args.repeats):
        for p, m in models.items():
            times[p]["ceiling"].append(timed(ceilings[p]) / args.ceiling_steps)
            times[p]["engine"].append(
                timed(lambda: rp2(m, victims, mask, targets, lam=0.002, epochs=args.epochs)) / args.epochs
            )
        print(
            f"repeat {r + 1}/{args.repeats}: "
            + ", ".join(f"{p} engine {batch / times[p]['engine'][-1]:.0f} img-steps/s" for p in precisions),
            flush=True,
        )

    # The original's structure: one target per run, a Python step per epoch, eager execution.
    model = base

    def eager_target(target):
        noise = tf.Variable(tf.random.uniform(victims.shape[1:]))
        opt = keras.optimizers.Adam(0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        label = tf.fill([len(victims)], target)
        for _ in range(args.epochs):
            with tf.GradientTape() as tape:
                masked = mask * tf.clip_by_value(noise, -20, 20)
                logits = model(tf.clip_by_value(victims + masked, 0, 1), training=False)
                loss = tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(label, logits, from_logits=True)
                ) + 0.002 * tf.sqrt(tf.reduce_sum(tf.square(masked)) + 1e-12)
            opt.apply_gradients([(tape.gradient(loss, noise), noise)])

    eager_target(targets[0])
    eager = timed(lambda: [eager_target(t) for t in targets[: args.eager_targets]]) / args.epochs
    eager_per_sweep_step = eager * len(targets) / args.eager_targets
    a = tf.random.normal((2048, 2048))
    matmul = tf.function(lambda m: tf.matmul(m, m))
    matmul(a)
    matmul_s = min(timed(lambda: [matmul(a).numpy() for _ in range(10)]) for _ in range(3)) / 10
    matmul_gflops = 2 * 2048**3 / matmul_s / 1e9

    med = {p: {k: float(np.median(v)) for k, v in t.items()} for p, t in times.items()}
    print(
        f"\nbatch: {len(targets)} targets x {len(victims)} images = {batch} image-steps per epoch; "
        f"{args.epochs} RP2 epochs; median of {args.repeats} interleaved repeats"
    )
    print("| precision | ceiling img-steps/s | engine img-steps/s | engine / ceiling | GFLOP/s (engine) |")
    print("|---|---|---|---|---|")
    for p in precisions:
        ratio = np.median(np.array(times[p]["ceiling"]) / np.array(times[p]["engine"]))
        print(
            f"| {p} | {batch / med[p]['ceiling']:.0f} | {batch / med[p]['engine']:.0f} | {ratio:.2f} | "
            f"{3 * model_flops(base, batch) / med[p]['engine'] / 1e9:.0f} |"
        )
    if "float32" in precisions and len(precisions) > 1:
        for p in precisions[1:]:
            speed = np.median(np.array(times["float32"]["engine"]) / np.array(times[p]["engine"]))
            print(f"{p} engine / float32 engine speed: {speed:.2f}x  (goal >= 1.8x)")
    print(
        f"eager per-target loop (original structure, float32): {batch / eager_per_sweep_step:.0f} image-steps/s; "
        f"float32 engine speed-up {eager_per_sweep_step / med[precisions[0]]['engine']:.1f}x  (goal >= 3x)"
    )
    print(f"tf.matmul 2048^2: {matmul_gflops:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
