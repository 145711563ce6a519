"""Table I: stickers optimised on a model (white-box, λ 0.002) moved to the same weights with a
fixed box blur inserted on the input or on the first-layer feature maps."""

import dataclasses

from blurnet_tf import paper, rundir
from blurnet_tf.data import SPEED_LIMIT_45


@dataclasses.dataclass(frozen=True)
class BlurTransfer:
    source: str  # the row's name, e.g. "baseline" or "original"
    model: str  # its model spec (run directory or "original")
    whitebox_dir: str  # the white-box run whose stickers are moved
    kernels: tuple = (3, 5)
    lam: float = paper.RP2_LAMBDA
    data_dir: str | None = None

    def run(self, out):
        from blurnet_tf.data import STOP, load_test_split
        from blurnet_tf.defences import insert_blur
        from blurnet_tf.evaluation import metrics
        from blurnet_tf.evaluation.sticker_metrics import aggregate, per_target_rows
        from blurnet_tf.experiments.rp2_stickers import load_victim_setting, stored_adversarials

        data_dir, victims, mask, model = load_victim_setting(self.model, self.data_dir)
        test_x, test_y = load_test_split(data_dir, *rundir.trained_split(self.model))
        targets, adv, _ = stored_adversarials(self.whitebox_dir, victims, mask, self.lam)
        variants = {"none": model}
        for where in ("input", "l1"):
            for k in self.kernels:
                variants[f"{where}_blur_{k}"] = insert_blur(model, where, k)
        rows = {}
        for name, net in variants.items():
            clean = metrics.predict_classes(net, victims)
            adv_pred = metrics.predict_classes(net, adv.reshape(-1, *victims.shape[1:])).reshape(len(targets), -1)
            per_target = per_target_rows(victims, clean, adv, adv_pred, targets, self.lam)
            rows[name] = {
                "victim_accuracy": metrics.accuracy(clean, STOP),
                "legit_accuracy": metrics.accuracy(metrics.predict_classes(net, test_x), test_y),
                "asr_target_12": next((r["asr"] for r in per_target if r["target"] == SPEED_LIMIT_45), None),
                **aggregate(per_target, STOP)[f"lambda={self.lam:g}"],
                "rows": per_target,
            }
        values = {"source": self.source, "lambda": self.lam, "variants": rows}
        return rundir.write_result(self, out, values)
