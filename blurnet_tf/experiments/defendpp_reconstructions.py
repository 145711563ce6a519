"""Defend++'s Figs. 6 and 8: the auto-encoder's reconstructions of clean and FGSM images, and
R = D_rc / D_ra, the distance from the reconstruction of an attacked image to the clean image
over its distance to the attacked one (R < 1: the auto-encoder removed most of the attack).
Stores R and eight examples per model (arrays.npz); the report draws the figures."""

import dataclasses
import os
import pathlib

import numpy as np

from blurnet_tf import paper, rundir

EPS = {"mnist": paper.MNIST_FGSM_EPS, "lisa": paper.LINF_EPS}  # Defend++ §4.1 on MNIST; BlurNet's on LISA
SHOWN = 8


@dataclasses.dataclass(frozen=True)
class DefendppReconstructions:
    runs: tuple  # (dataset, run directory) pairs of Defend++ models
    images: int = 500
    data_dir: str | None = None

    def run(self, out):
        from blurnet_tf.data import find_data_dir, load_test_split
        from blurnet_tf.evaluation.metrics import correctly_classified
        from blurnet_tf.evaluation.mnist_attack_suite import AttackBudget, adversarial
        from blurnet_tf.registry import load_model

        data_dir = find_data_dir(self.data_dir)
        summary, arrays = {}, {}
        for dataset, run in ((d, pathlib.Path(p)) for d, p in self.runs):
            images, labels = load_test_split(data_dir, *rundir.trained_split(run))
            model, autoencoder = load_model(run), load_model(run / rundir.AUTOENCODER_FILE)
            x, y = correctly_classified(model, images, labels, self.images)
            adv = adversarial("fgsm", model, x, y, AttackBudget(fgsm_eps=EPS[dataset]))
            rec_clean = autoencoder.predict(x, verbose=0)[0]
            rec_adv = autoencoder.predict(adv, verbose=0)[0]
            d_rc = np.linalg.norm((rec_adv - x).reshape(len(x), -1), axis=1)
            d_ra = np.linalg.norm((rec_adv - adv).reshape(len(x), -1), axis=1)
            ratio = d_rc / np.maximum(d_ra, 1e-12)
            name = f"{dataset}_{run.name}"
            for key, value in (
                ("clean", x),
                ("reconstructed_clean", rec_clean),
                ("fgsm", adv),
                ("reconstructed_fgsm", rec_adv),
            ):
                arrays[f"{name}/{key}"] = value[:SHOWN]
            arrays[f"{name}/ratio"] = ratio
            summary[name] = {
                "dataset": dataset,
                "model": os.fspath(run),
                "images": int(len(x)),
                "fgsm_eps": EPS[dataset],
                "ratio_mean": float(ratio.mean()),
                "ratio_median": float(np.median(ratio)),
                "ratio_max": float(ratio.max()),
                "fraction_below_1": float(np.mean(ratio < 1)),
                "reconstruction_error_clean": float(np.mean(np.square(rec_clean - x))),
                "histogram": np.histogram(ratio, bins=20, range=(0, 2))[0].tolist(),
                "figure": f"{name}.png",
            }
        return rundir.write_result(self, out, summary, arrays)
