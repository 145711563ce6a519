"""Throughput of Pixel Deflection (images/s), whole defence and each stage, beside the bare
classifier's prediction measured in the same run.

    python bench/deflection_speed.py [--model original] [--images 512] [--deflections 100 --window 10]
"""

import argparse
import time

import numpy as np

from blurnet_tf.data import find_data_dir, load_lisa_split
from blurnet_tf.defences import classifier_of
from blurnet_tf.defences.pixel_deflection import PixelDeflection, deflect, jpeg, robust_activation_map, wavelet_denoise
from blurnet_tf.registry import load_model

from arguments import positive


def rate(fn, n, repeat=3):
    fn()  # warm-up (tracing)
    best = min(_timed(fn) for _ in range(repeat))
    return n / best


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="original")
    parser.add_argument("--images", type=positive, default=512)
    parser.add_argument("--deflections", type=positive, default=100)
    parser.add_argument("--window", type=positive, default=10)
    args = parser.parse_args()
    data_dir = find_data_dir()
    _, test, _ = load_lisa_split(data_dir)
    x = test.images[: args.images]
    model = classifier_of(load_model(args.model, data_dir))
    maps = robust_activation_map(model, x)
    rng = np.random.default_rng(0)
    pd = PixelDeflection(model, deflections=args.deflections, window=args.window)
    ens = PixelDeflection(model, deflections=args.deflections, window=args.window, ensemble=10)
    n = len(x)
    rows = [
        ("bare classifier predict (reference)", rate(lambda: model.predict(x, batch_size=512, verbose=0), n)),
        ("robust activation map", rate(lambda: robust_activation_map(model, x), n)),
        ("deflection", rate(lambda: deflect(x, maps, args.deflections, args.window, rng), n)),
        ("wavelet denoise, scikit-image per image", rate(lambda: wavelet_denoise(x, backend="skimage"), n)),
        ("wavelet denoise, batched TensorFlow", rate(lambda: wavelet_denoise(x, backend="tensorflow"), n)),
        ("JPEG round trip", rate(lambda: jpeg(x), n)),
        ("PD + WD + classifier (single)", rate(lambda: pd.predict_classes(x), n)),
        ("Ens-10", rate(lambda: ens.predict_classes(x), n, repeat=1)),
    ]
    ref = rows[0][1]
    print(f"{'stage':<42} {'images/s':>10} {'vs bare':>8}")
    for name, r in rows:
        print(f"{name:<42} {r:>10.0f} {r / ref:>8.3f}")


if __name__ == "__main__":
    main()
