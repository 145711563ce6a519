"""In-process steps: Table I transfer and randomized smoothing (re-using stored stickers), the
spectra of Figs. 1, 2 and 4, the Pixel Deflection evaluation and the Defend++ reconstructions. Each is a callable taking
the output directory."""

import dataclasses
import json
import os
import pathlib

import numpy as np

from blurnet_tf import files
from blurnet_tf.data import SPEED_LIMIT_45 as RP2_TARGET  # the RP2 paper's target
from blurnet_tf.evaluation.spectra import high_frequency_fraction

TABLE1_LAMBDA = 0.002


def _load(lay, row, data_dir):
    from blurnet_tf.data import find_data_dir, load_mask, load_victims
    from blurnet_tf.defences import classifier_of
    from blurnet_tf.registry import load_model

    data_dir = find_data_dir(data_dir)
    victims, _ = load_victims(data_dir)
    return data_dir, victims, load_mask(data_dir, "rectangles"), classifier_of(load_model(lay.model(row), data_dir))


def _stored_adversarials(attack_dir, victims, mask, lam):
    """The adversarial victims of every target of a white-box run, rebuilt from its noise files."""
    from blurnet_tf.evaluation.metrics import apply_sticker

    result = json.loads((attack_dir / "results.json").read_text())
    targets = sorted({r["target"] for r in result["rows"] if abs(r["lambda"] - lam) < 1e-12})
    noise_dir = attack_dir / "noise"
    adv = np.stack([apply_sticker(victims, mask, np.load(noise_dir / f"lambda{lam:g}_target{t}.npy"),
                                  result["flags"]["noise_clip"]) for t in targets])
    return targets, adv, result


class TransferToBlur:
    """Table I: stickers optimised on `source` (white-box, lambda 0.002) moved to the same weights
    with a fixed box blur inserted on the input or on the first-layer maps."""

    def __init__(self, lay, source, kernels, data_dir=None):
        self.lay, self.source, self.kernels, self.data_dir = lay, source, tuple(kernels), data_dir

    def __call__(self, out):
        from blurnet_tf.data import STOP, load_test_split, trained_split
        from blurnet_tf.defences import insert_blur
        from blurnet_tf.evaluation import metrics
        from blurnet_tf.evaluation.sticker_metrics import aggregate, per_target_rows

        data_dir, victims, mask, model = _load(self.lay, self.source, self.data_dir)
        test_x, test_y = load_test_split(data_dir, *trained_split(self.lay.model(self.source)))
        targets, adv, _ = _stored_adversarials(self.lay.attack("whitebox", self.source), victims, mask, TABLE1_LAMBDA)
        variants = {"none": model}
        for where in ("input", "l1"):
            for k in self.kernels:
                variants[f"{where}_blur_{k}"] = insert_blur(model, where, k)
        rows = {}
        for name, net in variants.items():
            clean = metrics.predict_classes(net, victims)
            adv_pred = metrics.predict_classes(net, adv.reshape(-1, *victims.shape[1:])).reshape(len(targets), -1)
            per_target = per_target_rows(victims, clean, adv, adv_pred, targets, TABLE1_LAMBDA)
            rows[name] = {"victim_accuracy": metrics.accuracy(clean, STOP),
                          "legit_accuracy": metrics.accuracy(metrics.predict_classes(net, test_x), test_y),
                          "asr_target_12": next((r["asr"] for r in per_target if r["target"] == RP2_TARGET), None),
                          **aggregate(per_target, STOP)[f"lambda={TABLE1_LAMBDA:g}"], "rows": per_target}
        files.write_json(out / "results.json", {"source": self.source, "lambda": TABLE1_LAMBDA, "variants": rows})


class SmoothingEvaluation:
    """Randomized smoothing rows of Table II: the white-box stickers of a Gaussian-augmented model
    classified by its smoothed version (majority of n noisy copies), clean and attacked."""

    def __init__(self, lay, row, sigma, n, data_dir=None):
        self.lay, self.row, self.sigma, self.n, self.data_dir = lay, row, sigma, n, data_dir

    def __call__(self, out):
        from blurnet_tf.data import STOP, load_test_split, trained_split
        from blurnet_tf.defences import smoothed_predict
        from blurnet_tf.evaluation import metrics
        from blurnet_tf.evaluation.sticker_metrics import aggregate, per_target_rows

        data_dir, victims, mask, model = _load(self.lay, self.row, self.data_dir)
        test_x, test_y = load_test_split(data_dir, *trained_split(self.lay.model(self.row)))
        attack_dir = self.lay.attack("whitebox", self.row)
        lambdas = json.loads((attack_dir / "results.json").read_text())["flags"]["lambdas"]
        clean, _ = smoothed_predict(model, victims, self.sigma, self.n)
        rows = []
        for lam in (float(v) for v in lambdas):
            targets, adv, _ = _stored_adversarials(attack_dir, victims, mask, lam)
            pred, _ = smoothed_predict(model, adv.reshape(-1, *victims.shape[1:]), self.sigma, self.n, seed=1)
            rows += per_target_rows(victims, clean, adv, pred.reshape(len(targets), -1), targets, lam)
        legit, _ = smoothed_predict(model, test_x, self.sigma, self.n, seed=2)
        files.write_json(out / "results.json", {
            "model": self.row, "sigma": self.sigma, "samples": self.n,
            "legit_accuracy": metrics.accuracy(legit, test_y), "victim_accuracy": metrics.accuracy(clean, STOP),
            "rows": rows, "aggregate": aggregate(rows, STOP)})


class SpectraFigures:
    """Figs. 1, 2, 4: spectra of a clean and a stickered stop sign (RP2 on `row`, lambda 0.002,
    target speedLimit45), of its first- and second-layer maps, and of the 3x3-blurred difference."""

    SHOWN = 4  # feature maps shown: the most active ones on the clean sign (dead maps say nothing)
    VICTIM = 0

    def __init__(self, lay, row, data_dir=None):
        self.lay, self.row, self.data_dir = lay, row, data_dir

    def __call__(self, out):
        import tensorflow as tf

        from blurnet_tf.defences import blur_kernel
        from blurnet_tf.models.lisa_cnn import FIRST_LAYER, SECOND_LAYER, layer_output_model
        from blurnet_tf.reports import figures

        _, victims, mask, model = _load(self.lay, self.row, self.data_dir)
        targets, adv, _ = _stored_adversarials(self.lay.attack("whitebox", self.row), victims, mask, TABLE1_LAMBDA)
        clean_img = victims[self.VICTIM]
        target = RP2_TARGET if RP2_TARGET in targets else targets[0]
        adv_img = adv[targets.index(target), self.VICTIM]
        out = pathlib.Path(out)
        summary = {"victim": self.VICTIM, "target": target, "lambda": TABLE1_LAMBDA}
        figures.image_spectra(np.moveaxis(clean_img, -1, 0), np.moveaxis(adv_img, -1, 0), out / "fig1_image_spectra.png")
        summary["fig1_high_frequency_fraction"] = {
            "clean": high_frequency_fraction(np.moveaxis(clean_img, -1, 0)),
            "stickered": high_frequency_fraction(np.moveaxis(adv_img, -1, 0)),
            "sticker_only": high_frequency_fraction(np.moveaxis(adv_img - clean_img, -1, 0))}
        for fig, layer in (("fig2", FIRST_LAYER), ("fig4", SECOND_LAYER)):
            maps = layer_output_model(model, layer)(np.stack([clean_img, adv_img]), training=False).numpy()
            k = tf.constant(np.repeat(blur_kernel(3)[:, :, None, None], maps.shape[-1], axis=2), tf.float32)
            blurred = tf.nn.depthwise_conv2d(maps, k, [1, 1, 1, 1], "SAME").numpy()
            clean_m, adv_m = np.moveaxis(maps[0], -1, 0), np.moveaxis(maps[1], -1, 0)
            chans = sorted(np.argsort(-np.square(clean_m).sum(axis=(1, 2)))[:self.SHOWN].tolist())
            diff, blurred_diff = adv_m - clean_m, np.moveaxis(blurred[1] - blurred[0], -1, 0)
            figures.feature_map_spectra(clean_m[chans], adv_m[chans], diff[chans], blurred_diff[chans], chans, layer,
                                        out / f"{fig}_{layer}_spectra.png")
            summary[f"{fig}_{layer}"] = {"map_size": list(maps.shape[1:3]),
                                         "difference_high_frequency_fraction": high_frequency_fraction(diff),
                                         "blurred_difference_high_frequency_fraction":
                                             high_frequency_fraction(blurred_diff),
                                         "clean_high_frequency_fraction": high_frequency_fraction(clean_m)}
        files.write_json(out / "results.json", summary)


class PixelDeflectionEvaluation:
    """Pixel Deflection around `row` (trained without the validation tracks): the parameter search
    on the validation split, then the paper's tables on the test split and the 40 victims, then
    the adaptive BPDA + EOT attacks."""

    GRID = {"deflections": (4, 8, 16, 32, 64, 128), "window": (1, 2, 3, 5, 8), "sigma": (0.01, 0.02, 0.04, 0.08)}
    START = {"deflections": 16, "window": 2, "sigma": 0.04}  # the paper's K / r scaled to 32x32, its sigma

    def __init__(self, lay, row, budget, rp2_epochs, data_dir=None):
        self.lay, self.row, self.budget, self.rp2_epochs, self.data_dir = lay, row, budget, rp2_epochs, data_dir

    def __call__(self, out):
        import time

        from blurnet_tf.attacks import rp2
        from blurnet_tf.data import NUM_CLASSES, STOP, hold_out_validation, load_lisa_split
        from blurnet_tf.evaluation import pixel_deflection as pde
        from blurnet_tf.evaluation.metrics import correctly_classified, l2_dissimilarity, predict_classes

        b, timings = self.budget, {}
        data_dir, victims, mask, model = _load(self.lay, self.row, self.data_dir)
        trained = json.loads((self.lay.root / "models" / self.row / "metrics.json").read_text())["flags"]
        train, test, _ = load_lisa_split(data_dir, trained["test_fraction"], trained["split_seed"])
        if not trained.get("validation_fraction"):
            raise ValueError(f"{self.row} was trained on every training track: no validation split to search on")
        _, val = hold_out_validation(train, trained["validation_fraction"], trained["split_seed"] + 1)
        t = time.time()
        vx, vy = correctly_classified(model, val.images, val.labels, b.search_images)
        params, search_log = pde.search_parameters(model, vx, vy, pde.fgsm(model, vx, vy), self.GRID, self.START)
        timings["search"] = time.time() - t

        t = time.time()
        x, y = correctly_classified(model, test.images, test.labels, b.test_images)
        adv = pde.non_adaptive_attacks(model, x, y, b)
        correct = predict_classes(model, victims) == STOP
        stop = victims[correct] if correct.any() else victims  # all 40 (recorded) when none is right
        targets = [c for c in range(NUM_CLASSES) if c != STOP]
        stickers = rp2(model, stop, mask, targets, lam=0.002, epochs=self.rp2_epochs).adversarial[0]
        attacked = {"clean": (x, y), **{k: (a, y) for k, a in adv.items()},
                    "clean victims": (stop, np.full(len(stop), STOP)),
                    "RP2 stickers (17 targets)": (stickers.reshape(-1, *stop.shape[1:]),
                                                  np.full(stickers.shape[0] * len(stop), STOP))}
        l2 = {k: l2_dissimilarity(x, a) for k, a in adv.items()}
        l2["RP2 stickers (17 targets)"] = float(np.mean([l2_dissimilarity(stop, s) for s in stickers]))
        timings["non_adaptive_attacks"] = time.time() - t
        t = time.time()
        table = pde.evaluate(model, attacked, params, b)
        timings["defended_evaluation"] = time.time() - t

        t = time.time()
        ax = x[:min(len(x), 200)]
        ay = y[:len(ax)]
        pgd = pde.adaptive_pgd(model, ax, ay, params, b)
        rp2_targets = list(b.adaptive_rp2_targets or targets)
        eot_stickers = pde.adaptive_rp2(model, stop, mask, params, b, rp2_targets)
        adaptive_sets = {"BPDA+EOT PGD": (pgd, ay), "BPDA+EOT RP2": (
            eot_stickers.reshape(-1, *stop.shape[1:]), np.full(eot_stickers.shape[0] * len(stop), STOP))}
        adaptive = {}
        for name, extra in (("no defence", None), ("PD+WD (single)", {}),
                            (f"PD+WD (Ens-{b.ensemble})", {"ensemble": b.ensemble})):
            predict = (lambda im: predict_classes(model, im)) if extra is None else \
                pde.PixelDeflection(model, **{**params, **extra, "seed": 3}).predict
            adaptive[name] = {k: pde.accuracy(predict, ims, labels) for k, (ims, labels) in adaptive_sets.items()}
        l2_adaptive = {"BPDA+EOT PGD": l2_dissimilarity(ax, pgd),
                       "BPDA+EOT RP2": float(np.mean([l2_dissimilarity(stop, s) for s in eot_stickers]))}
        timings["adaptive"] = time.time() - t
        files.write_json(out / "results.json", {
            "model": self.row, "parameters": params, "search": search_log, "grid": self.GRID, "start": self.START,
            "budget": dataclasses.asdict(b), "test_images": len(x), "victims": len(stop),
            "victims_correct": int(correct.sum()),
            "accuracy": table, "l2": l2, "adaptive_accuracy": adaptive, "adaptive_l2": l2_adaptive,
            "adaptive_rp2_targets": rp2_targets, "seconds": timings, "not_run": pde.NOT_RUN})


class DefendppReconstructions:
    """Defend++'s Figs. 6 and 8: the auto-encoder's reconstructions of clean and FGSM images, and
    R = D_rc / D_ra, the distance from the reconstruction of an attacked image to the clean image
    over its distance to the attacked one (R < 1: the auto-encoder removed most of the attack).

    rows: (dataset, run directory) pairs; FGSM uses ε 0.2 on MNIST (Defend++ §4.1) and 8/255 on LISA.
    """

    EPS = {"mnist": 0.2, "lisa": 8 / 255}
    IMAGES = 500

    def __init__(self, rows, data_dir=None):
        self.rows, self.data_dir = [(d, pathlib.Path(p)) for d, p in rows], data_dir

    def __call__(self, out):
        from blurnet_tf.data import find_data_dir, load_test_split, trained_split
        from blurnet_tf.evaluation.metrics import correctly_classified
        from blurnet_tf.evaluation.mnist_attack_suite import AttackBudget, adversarial
        from blurnet_tf.registry import load_model
        from blurnet_tf.reports import figures

        data_dir = find_data_dir(self.data_dir)
        out = pathlib.Path(out)
        summary = {}
        for dataset, run in self.rows:
            images, labels = load_test_split(data_dir, *trained_split(run))
            model, autoencoder = load_model(run), load_model(run / "autoencoder.keras")
            x, y = correctly_classified(model, images, labels, self.IMAGES)
            adv = adversarial("fgsm", model, x, y, AttackBudget(fgsm_eps=self.EPS[dataset]))
            rec_clean = autoencoder.predict(x, verbose=0)[0]
            rec_adv = autoencoder.predict(adv, verbose=0)[0]
            d_rc = np.linalg.norm((rec_adv - x).reshape(len(x), -1), axis=1)
            d_ra = np.linalg.norm((rec_adv - adv).reshape(len(x), -1), axis=1)
            ratio = d_rc / np.maximum(d_ra, 1e-12)
            name = f"{dataset}_{run.name}"
            figures.reconstructions(x[:8], rec_clean[:8], adv[:8], rec_adv[:8], ratio, name, out / f"{name}.png")
            summary[name] = {
                "dataset": dataset, "model": os.fspath(run), "images": int(len(x)), "fgsm_eps": self.EPS[dataset],
                "ratio_mean": float(ratio.mean()), "ratio_median": float(np.median(ratio)),
                "ratio_max": float(ratio.max()), "fraction_below_1": float(np.mean(ratio < 1)),
                "reconstruction_error_clean": float(np.mean(np.square(rec_clean - x))),
                "histogram": np.histogram(ratio, bins=20, range=(0, 2))[0].tolist(),
                "figure": f"{name}.png"}
        files.write_json(out / "results.json", summary)
