"""The original RP2 runs re-done with our engine, our curve printed beside the reference log's.

python bench/rp2_fidelity.py [--mask rectangles|octagon] [--epochs 300]
"""

import argparse

from blurnet_tf.attacks import rp2
from blurnet_tf.data import SPEED_LIMIT_45, find_data_dir, load_mask, load_victims
from blurnet_tf.evaluation.reference_logs import parse_reference_log
from blurnet_tf.models import load_original_lisa_cnn

from arguments import positive


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mask", default="rectangles", choices=["rectangles", "octagon"])
    parser.add_argument("--epochs", type=positive, default=300)
    args = parser.parse_args()
    data_dir = find_data_dir()
    log = parse_reference_log(data_dir, args.mask)
    f = log["flags"]
    result = rp2(
        load_original_lisa_cnn(data_dir),
        load_victims(data_dir)[0],
        load_mask(data_dir, args.mask),
        [f["target_class"]],
        lam=f["attack_lambda"],
        epochs=args.epochs,
        lr=f["optimization_rate"],
        noise_clip=f["noise_clip_max"],
        seed=f["tf_seed"] % 2**31,
    )
    print(f"{args.mask}: lambda {f['attack_lambda']}, lr {f['optimization_rate']}, target {f['target_class']}")
    print(f"{'epoch':>5} {'loss(ours)':>10} {'loss(log)':>10} {'%mis(ours)':>10} {'%mis(log)':>10}")
    for e in list(range(0, 20)) + list(range(20, args.epochs, 20)) + [args.epochs - 1]:
        if e < len(log["loss"]):
            print(
                f"{e:5d} {result.history['loss'][e, 0, 0]:10.5f} {log['loss'][e]:10.5f} "
                f"{result.history['misclassified'][e, 0, 0]:10.1f} {log['misclassified'][e]:10.1f}"
            )
    hits = int((result.predictions[0, 0] == SPEED_LIMIT_45).sum())
    print(f"final: {hits}/40 classified as target {f['target_class']}")


if __name__ == "__main__":
    main()
