"""Table II's randomized-smoothing rows: the white-box stickers of a Gaussian-augmented model
classified by its smoothed version (majority of n noisy copies), clean and attacked."""

import dataclasses

from blurnet_tf import rundir


@dataclasses.dataclass(frozen=True)
class SmoothingVotes:
    row: str
    model: str
    whitebox_dir: str
    sigma: float
    samples: int = 100
    data_dir: str | None = None

    def run(self, out):
        from blurnet_tf.data import STOP, load_test_split
        from blurnet_tf.defences import smoothed_predict
        from blurnet_tf.evaluation import metrics
        from blurnet_tf.evaluation.sticker_metrics import aggregate, per_target_rows
        from blurnet_tf.experiments.rp2_stickers import load_victim_setting, stored_adversarials

        data_dir, victims, mask, model = load_victim_setting(self.model, self.data_dir)
        test_x, test_y = load_test_split(data_dir, *rundir.trained_split(self.model))
        whitebox = rundir.StickerRecord.read(f"{self.whitebox_dir}/{rundir.RESULTS_FILE}")
        clean, _ = smoothed_predict(model, victims, self.sigma, self.samples)
        rows = []
        for lam in (float(v) for v in whitebox.flags["lambdas"]):
            targets, adv, _ = stored_adversarials(self.whitebox_dir, victims, mask, lam)
            pred, _ = smoothed_predict(model, adv.reshape(-1, *victims.shape[1:]), self.sigma, self.samples, seed=1)
            rows += per_target_rows(victims, clean, adv, pred.reshape(len(targets), -1), targets, lam)
        legit, _ = smoothed_predict(model, test_x, self.sigma, self.samples, seed=2)
        return rundir.write_result(
            self,
            out,
            {
                "model": self.row,
                "sigma": self.sigma,
                "samples": self.samples,
                "legit_accuracy": metrics.accuracy(legit, test_y),
                "victim_accuracy": metrics.accuracy(clean, STOP),
                "rows": rows,
                "aggregate": aggregate(rows, STOP),
            },
        )
