"""Does a sticker optimised in expectation over viewing conditions survive the stationary test better?

    python bench/physical_grid.py [--model original] [--targets all] [--epochs 300] [--samples 4]
                                  [--out results/physical_pilot]

RP2 (Table II settings: rectangles, λ 0.002, lr 0.1, the 40 victims) run twice on --model: digital, and in
expectation over attacks.PhysicalConditions() with --samples views a step (issue 44). Both stickers are then
scored on the held-out attacks.STATIONARY_GRID: per condition, the share of victims whose prediction under
that condition differs from the clean sign's under the same condition, and the share sent to the target.

Writes <out>/physical_grid.json (per target and condition, seconds, CPU, commit).
"""

import argparse
import pathlib
import time

import numpy as np

from arguments import positive, targets
from blurnet_tf import files

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="original")
    parser.add_argument("--targets", type=targets, default="all")
    parser.add_argument("--epochs", type=positive, default=300)
    parser.add_argument("--samples", type=positive, default=4)
    parser.add_argument("--out", default="results/physical_pilot")
    a = parser.parse_args()

    from blurnet_tf.attacks import STATIONARY_GRID, PhysicalConditions, rp2, see
    from blurnet_tf.data import STOP, find_data_dir, load_mask, load_victims
    from blurnet_tf.errors import DataError
    from blurnet_tf.evaluation.metrics import predict_classes
    from blurnet_tf.registry import load_model

    data_dir = find_data_dir()
    try:
        model = load_model(a.model, data_dir)
    except DataError as exc:
        parser.error(f"argument --model: {exc}")
    victims, _ = load_victims(data_dir)
    mask = load_mask(data_dir, "rectangles")
    classes = model.output_shape[-1]
    chosen = [t for t in range(classes) if t != STOP] if a.targets == "all" else a.targets
    if not set(chosen) <= set(range(classes)) - {STOP}:
        parser.error(f"argument --targets: expected classes 0..{classes - 1} other than stop ({STOP}), got {a.targets}")
    clean = {c.name: predict_classes(model, see(victims, c).numpy()) for c in STATIONARY_GRID}
    result = {}
    for name, physical in (("digital", None), ("eot", PhysicalConditions(samples=a.samples))):
        started = time.time()
        r = rp2(model, victims, mask, chosen, lam=0.002, epochs=a.epochs, seed=0, physical=physical)
        seconds = time.time() - started
        cells = {}
        for c in STATIONARY_GRID:
            seen = see(r.adversarial[0].reshape(-1, *victims.shape[1:]), c).numpy()
            pred = predict_classes(model, seen).reshape(len(chosen), -1)
            cells[c.name] = {
                "moved": [round(float(np.mean(p != clean[c.name])), 4) for p in pred],
                "targeted": [round(float(np.mean(p == t)), 4) for p, t in zip(pred, chosen)],
            }
        result[name] = {
            "seconds": round(seconds, 1),
            "on_photographs": [round(float(np.mean(p != r.clean_predictions)), 4) for p in r.predictions[0]],
            "grid": cells,
            "grid_mean_moved": round(float(np.mean([np.mean(v["moved"]) for v in cells.values()])), 4),
        }
        print(
            f"{name}: {seconds:.0f} s; moved on the photographs "
            f"{100 * np.mean(result[name]['on_photographs']):.1f}%, over the grid "
            f"{100 * result[name]['grid_mean_moved']:.1f}%",
            flush=True,
        )
        for c in STATIONARY_GRID:
            print(f"  {c.name:>34}: {100 * np.mean(cells[c.name]['moved']):5.1f}%", flush=True)
    out = ROOT / a.out
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "what": "digital vs EOT RP2 stickers on the held-out stationary grid (issue 44's pilot)",
        "settings": {
            "model": a.model,
            "targets": chosen,
            "epochs": a.epochs,
            "lambda": 0.002,
            "mask": "rectangles",
            "samples": a.samples,
            "conditions": PhysicalConditions(samples=a.samples).__dict__,
            "grid": [c.__dict__ | {"name": c.name} for c in STATIONARY_GRID],
        },
        "clean_accuracy_by_condition": {k: round(float(np.mean(v == STOP)), 4) for k, v in clean.items()},
        "results": result,
        **files.provenance(ROOT),
    }
    path = out / "physical_grid.json"
    files.write_json(path, record)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
