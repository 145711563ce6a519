"""What Defend++ as the paper ran it costs here: ResNet-18 (no defence and Defend++) SGD steps on
batches of 256 MNIST images, and the input-gradient throughput every attack is made of; median of
repeats, then the full profile's ResNet-18 budget priced from them.

    python bench/mnist_resnet18_cost.py [--repeats 5] [--steps 3]
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from blurnet_tf.data import find_data_dir
from blurnet_tf.data.mnist import load_mnist_official
from blurnet_tf.experiments.model_training import compile_for_training
from blurnet_tf.pipeline.plan import PROFILES
from blurnet_tf.registry import build_model

from arguments import positive

BATCH = 256
ATTACK_BATCH = 100


def _median_seconds(fn, repeats):
    fn()  # traces and warms up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--steps", type=positive, default=3, help="training steps per timed repeat")
    args = parser.parse_args()
    sets = load_mnist_official(find_data_dir())
    x, y = sets["train"][0][:BATCH], sets["train"][1][:BATCH]
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    step_seconds = {}
    for defence in ("baseline", "defendpp"):
        model = compile_for_training(
            build_model(defence, "mnist", architecture="mnist_resnet18"),
            0.01,
            "paper_step",
            235,
            optimizer="sgd",
            weight_decay=5e-4,
            epochs=1,
        )
        step_seconds[defence] = (
            _median_seconds(lambda: model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0), args.repeats)
            / args.steps
        )
    classifier = build_model("baseline", "mnist", architecture="mnist_resnet18")
    xa, ya = tf.constant(sets["test"][0][:ATTACK_BATCH]), tf.constant(sets["test"][1][:ATTACK_BATCH])

    @tf.function
    def input_gradient(images, labels):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, classifier(images, training=False))
        return tape.gradient(loss, images)

    gradient_rate = ATTACK_BATCH / _median_seconds(lambda: input_gradient(xa, ya).numpy(), args.repeats)

    budget = PROFILES["full"].mnist
    epoch_min = {d: 60000 / BATCH * s / 60 for d, s in step_seconds.items()}
    # Gradient steps per image of one row's attacks: FGSM 1, BIM, C&W, DDN, Fig. 7's curve 1, the
    # checks' gradient 1 + unbounded BIM + 5 BIMs; the transfer steps (FGSM, BIM, curve) apart.
    per_image = (
        1 + budget.bim_steps + budget.cw_search * budget.cw_steps + budget.ddn_steps + 1 + 1 + 6 * budget.bim_steps
    )
    attack_min = budget.paper_images * per_image / gradient_rate / 60
    print(
        f"ResNet-18 SGD step, batch {BATCH}: no defence {step_seconds['baseline']:.2f} s, "
        f"Defend++ {step_seconds['defendpp']:.2f} s (median of {args.repeats} x {args.steps} steps)"
    )
    print(
        f"  an epoch of the 60,000: no defence {epoch_min['baseline']:.0f} min, "
        f"Defend++ {epoch_min['defendpp']:.0f} min; "
        f"the paper's 250 epochs: {250 * epoch_min['baseline'] / 60 / 24:.1f} / "
        f"{250 * epoch_min['defendpp'] / 60 / 24:.1f} days"
    )
    print(f"input gradient (the attacks' unit), batch {ATTACK_BATCH}: {gradient_rate:.0f} images/s")
    print(
        f"  one row's attacks in the full profile ({budget.paper_images} images x {per_image} gradient steps): "
        f"{attack_min:.0f} min"
    )
    rows = len(budget.paper_rows)
    total = (budget.paper_epochs * (epoch_min["baseline"] + 2 * epoch_min["defendpp"]) + rows * attack_min) / 60
    print(f"the full profile's {rows} ResNet-18 rows ({budget.paper_epochs} epoch each): about {total:.1f} h")


if __name__ == "__main__":
    main()
