"""RP2 engine speed, measured against references timed in the same run.

    python bench/rp2.py [--epochs 50]

Prints: (1) the engine's image-steps/s on the 17 targets x 40 victims sweep divided by the bare
forward + input-gradient throughput of the same model on the same 680-image batch (the ceiling);
(2) the speed-up over a per-target eager Python loop shaped like the original TF1 code (one
target at a time, one Python step per epoch); (3) achieved GFLOP/s against tf.matmul's.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from blurnet_tf.attacks import rp2
from blurnet_tf.data import STOP, find_data_dir, load_mask, load_victims
from blurnet_tf.models import load_original_lisa_cnn


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


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
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--eager_targets", type=int, default=2, help="targets timed in the eager loop (extrapolated to 17)")
    args = parser.parse_args()
    data_dir = find_data_dir()
    model = load_original_lisa_cnn(data_dir)
    victims, _ = load_victims(data_dir)
    mask = load_mask(data_dir, "rectangles")
    targets = [t for t in range(18) if t != STOP]
    batch = len(targets) * len(victims)

    x = tf.constant(np.tile(victims, (len(targets), 1, 1, 1)))
    y = tf.constant(np.repeat(targets, len(victims)))

    @tf.function
    def forward_input_gradient(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, model(images, training=False), from_logits=True))
        return tape.gradient(loss, images)

    forward_input_gradient(x)
    steps = 20
    ceiling = best_of(lambda: [forward_input_gradient(x) for _ in range(steps)]) / steps

    rp2(model, victims, mask, targets, lam=0.002, epochs=2)  # trace once
    engine = best_of(lambda: rp2(model, victims, mask, targets, lam=0.002, epochs=args.epochs), 2) / args.epochs

    # The original's structure: one target per run, a Python step per epoch, eager execution.
    def eager_target(target):
        noise = tf.Variable(tf.random.uniform(victims.shape[1:]))
        opt = keras.optimizers.Adam(0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        label = tf.fill([len(victims)], target)
        for _ in range(args.epochs):
            with tf.GradientTape() as tape:
                masked = mask * tf.clip_by_value(noise, -20, 20)
                logits = model(tf.clip_by_value(victims + masked, 0, 1), training=False)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(label, logits, from_logits=True)) \
                    + 0.002 * tf.sqrt(tf.reduce_sum(tf.square(masked)) + 1e-12)
            opt.apply_gradients([(tape.gradient(loss, noise), noise)])

    eager_target(targets[0])
    eager = best_of(lambda: [eager_target(t) for t in targets[:args.eager_targets]], 1) / args.epochs
    eager_per_sweep_step = eager * len(targets) / args.eager_targets

    a = tf.random.normal((2048, 2048))
    matmul = tf.function(lambda m: tf.matmul(m, m))
    matmul(a)
    matmul_s = best_of(lambda: [matmul(a).numpy() for _ in range(10)]) / 10
    matmul_gflops = 2 * 2048 ** 3 / matmul_s / 1e9
    # forward + input gradient ~ 3x the forward FLOPs (forward, backward through activations and weights-free grads ~2x)
    engine_gflops = 3 * model_flops(model, batch) / engine / 1e9

    print(f"batch: {len(targets)} targets x {len(victims)} images = {batch} image-steps per epoch")
    print(f"ceiling  (forward + input gradient, tf.function): {batch / ceiling:10.0f} image-steps/s")
    print(f"engine   (rp2, {args.epochs} epochs in one tf.function): {batch / engine:10.0f} image-steps/s")
    print(f"eager per-target loop (original structure):     {batch / eager_per_sweep_step:10.0f} image-steps/s")
    print(f"ratio engine / ceiling:            {ceiling / engine:.2f}   (goal >= 0.90)")
    print(f"speed-up engine / eager loop:      {eager_per_sweep_step / engine:.1f}x  (goal >= 3x)")
    print(f"GFLOP/s engine ~{engine_gflops:.0f} vs tf.matmul 2048^2 {matmul_gflops:.0f}  (ratio {engine_gflops / matmul_gflops:.2f})")


if __name__ == "__main__":
    main()
