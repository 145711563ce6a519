"""Pixel Deflection around a classifier trained without the validation tracks: the paper's
parameter search on those tracks, its tables on the test split and the 40 victims (attacks made
on the bare classifier, then defended), then the adaptive BPDA + EOT attacks."""

import dataclasses
import time

import numpy as np

from blurnet_tf import paper, rundir
from blurnet_tf.errors import DataError
from blurnet_tf.experiments import attack_progress
from blurnet_tf.evaluation.deflection_protocol import PDBudget

GRID = (("deflections", (4, 8, 16, 32, 64, 128)), ("window", (1, 2, 3, 5, 8)), ("sigma", (0.01, 0.02, 0.04, 0.08)))
START = (("deflections", 16), ("window", 2), ("sigma", 0.04))  # the paper's K / r scaled to 32x32, its sigma


@dataclasses.dataclass(frozen=True)
class DeflectionStudy:
    row: str
    model: str
    budget: PDBudget = PDBudget()
    rp2_epochs: int = paper.RP2_EPOCHS
    grid: tuple = GRID
    start: tuple = START
    data_dir: str | None = None

    def run(self, out):
        from blurnet_tf.attacks import rp2
        from blurnet_tf.data import NUM_CLASSES, STOP, hold_out_validation, load_lisa_split
        from blurnet_tf.defences.pixel_deflection import PixelDeflection
        from blurnet_tf.evaluation import deflection_protocol as pde
        from blurnet_tf.evaluation.metrics import correctly_classified, l2_dissimilarity, predict_classes
        from blurnet_tf.experiments.rp2_stickers import load_victim_setting

        b, timings, grid, start = self.budget, {}, dict(self.grid), dict(self.start)
        data_dir, victims, mask, model = load_victim_setting(self.model, self.data_dir)
        trained = rundir.read_model(self.model).flags
        if not trained.get("validation_fraction"):
            raise DataError(self.model, "trained on every training track: no validation split to search on")
        train, test, _ = load_lisa_split(data_dir, trained["test_fraction"], trained["split_seed"])
        _, val = hold_out_validation(
            train, trained["validation_fraction"], paper.validation_seed(trained["split_seed"])
        )
        t = time.time()
        vx, vy = correctly_classified(model, val.images, val.labels, b.search_images)
        params, search_log = pde.search_parameters(model, vx, vy, pde.fgsm(model, vx, vy), grid, start)
        timings["search"] = time.time() - t

        t = time.time()
        x, y = correctly_classified(model, test.images, test.labels, b.test_images)
        progress = attack_progress.bar(6, "Pixel Deflection: attacks on the bare classifier", unit="attack")
        adv = pde.non_adaptive_attacks(model, x, y, b, progress=lambda name: progress.update(1))
        progress.close()
        correct = predict_classes(model, victims) == STOP
        stop = victims[correct] if correct.any() else victims  # all 40 (recorded) when none is right
        targets = [c for c in range(NUM_CLASSES) if c != STOP]
        stickers = rp2(model, stop, mask, targets, lam=paper.RP2_LAMBDA, epochs=self.rp2_epochs).adversarial[0]
        stop_labels = lambda n: np.full(n, STOP)  # noqa: E731
        attacked = {
            "clean": (x, y),
            **{k: (a, y) for k, a in adv.items()},
            "clean victims": (stop, stop_labels(len(stop))),
            "RP2 stickers (17 targets)": (
                stickers.reshape(-1, *stop.shape[1:]),
                stop_labels(stickers.shape[0] * len(stop)),
            ),
        }
        l2 = {k: l2_dissimilarity(x, a) for k, a in adv.items()}
        l2["RP2 stickers (17 targets)"] = float(np.mean([l2_dissimilarity(stop, s) for s in stickers]))
        timings["non_adaptive_attacks"] = time.time() - t
        t = time.time()
        table = pde.evaluate(model, attacked, params, b)
        timings["defended_evaluation"] = time.time() - t

        t = time.time()
        ax, ay = x[: min(len(x), 200)], y[: min(len(x), 200)]
        pgd = pde.adaptive_pgd(model, ax, ay, params, b)
        rp2_targets = list(b.adaptive_rp2_targets or targets)
        eot_stickers = pde.adaptive_rp2(model, stop, mask, params, b, rp2_targets)
        adaptive_sets = {
            "BPDA+EOT PGD": (pgd, ay),
            "BPDA+EOT RP2": (eot_stickers.reshape(-1, *stop.shape[1:]), stop_labels(eot_stickers.shape[0] * len(stop))),
        }
        adaptive = {}
        for name, extra in (
            ("no defence", None),
            ("PD+WD (single)", {}),
            (f"PD+WD (Ens-{b.ensemble})", {"ensemble": b.ensemble}),
        ):
            predict = (
                (lambda im: predict_classes(model, im))
                if extra is None
                else PixelDeflection(model, **{**params, **extra, "seed": 3}).predict_classes
            )
            adaptive[name] = {
                k: pde.defended_accuracy(predict, ims, labels) for k, (ims, labels) in adaptive_sets.items()
            }
        l2_adaptive = {
            "BPDA+EOT PGD": l2_dissimilarity(ax, pgd),
            "BPDA+EOT RP2": float(np.mean([l2_dissimilarity(stop, s) for s in eot_stickers])),
        }
        timings["adaptive"] = time.time() - t
        return rundir.write_result(
            self,
            out,
            {
                "model": self.row,
                "parameters": params,
                "search": search_log,
                "grid": grid,
                "start": start,
                "budget": dataclasses.asdict(b),
                "test_images": len(x),
                "victims": len(stop),
                "victims_correct": int(correct.sum()),
                "accuracy": table,
                "l2": l2,
                "adaptive_accuracy": adaptive,
                "adaptive_l2": l2_adaptive,
                "adaptive_rp2_targets": rp2_targets,
                "seconds": timings,
            },
        )
