"""Figs. 1, 2 and 4: spectra of a clean and a stickered stop sign (RP2 on a model, λ 0.002, target
speedLimit45), of its first- and second-layer feature maps, and of their 3x3-blurred difference.
Stores the images and maps (arrays.npz) and their high-frequency fractions; the report draws them."""

import dataclasses

import numpy as np

from blurnet_tf import paper, rundir
from blurnet_tf.data import SPEED_LIMIT_45
from blurnet_tf.evaluation.spectra import high_frequency_fraction

SHOWN = 4  # feature maps shown: the most active ones on the clean sign (dead maps say nothing)


@dataclasses.dataclass(frozen=True)
class SpectraMaps:
    model: str
    whitebox_dir: str
    victim: int = 0
    lam: float = paper.RP2_LAMBDA
    data_dir: str | None = None

    def run(self, out):
        import tensorflow as tf

        from blurnet_tf.defences import blur_kernel
        from blurnet_tf.experiments.rp2_stickers import load_victim_setting, stored_adversarials
        from blurnet_tf.models.lisa_cnn import FIRST_LAYER, SECOND_LAYER, layer_output_model

        _, victims, mask, model = load_victim_setting(self.model, self.data_dir)
        targets, adv, _ = stored_adversarials(self.whitebox_dir, victims, mask, self.lam)
        clean_img = victims[self.victim]
        target = SPEED_LIMIT_45 if SPEED_LIMIT_45 in targets else targets[0]
        adv_img = adv[targets.index(target), self.victim]
        chw = lambda a: np.moveaxis(a, -1, 0)  # noqa: E731
        summary = {
            "victim": self.victim,
            "target": target,
            "lambda": self.lam,
            "fig1_high_frequency_fraction": {
                "clean": high_frequency_fraction(chw(clean_img)),
                "stickered": high_frequency_fraction(chw(adv_img)),
                "sticker_only": high_frequency_fraction(chw(adv_img - clean_img)),
            },
        }
        arrays = {"clean": chw(clean_img), "stickered": chw(adv_img)}
        for fig, layer in (("fig2", FIRST_LAYER), ("fig4", SECOND_LAYER)):
            maps = layer_output_model(model, layer)(np.stack([clean_img, adv_img]), training=False).numpy()
            k = tf.constant(np.repeat(blur_kernel(3)[:, :, None, None], maps.shape[-1], axis=2), tf.float32)
            blurred = tf.nn.depthwise_conv2d(maps, k, [1, 1, 1, 1], "SAME").numpy()
            clean_m, adv_m = chw(maps[0]), chw(maps[1])
            chans = sorted(np.argsort(-np.square(clean_m).sum(axis=(1, 2)))[:SHOWN].tolist())
            diff, blurred_diff = adv_m - clean_m, chw(blurred[1] - blurred[0])
            arrays.update(
                {
                    f"{fig}_clean": clean_m[chans],
                    f"{fig}_adversarial": adv_m[chans],
                    f"{fig}_difference": diff[chans],
                    f"{fig}_blurred_difference": blurred_diff[chans],
                    f"{fig}_channels": np.asarray(chans),
                }
            )
            summary[f"{fig}_{layer}"] = {
                "map_size": list(maps.shape[1:3]),
                "difference_high_frequency_fraction": high_frequency_fraction(diff),
                "blurred_difference_high_frequency_fraction": high_frequency_fraction(blurred_diff),
                "clean_high_frequency_fraction": high_frequency_fraction(clean_m),
            }
        summary["layers"] = {"fig2": FIRST_LAYER, "fig4": SECOND_LAYER}
        return rundir.write_result(self, out, summary, arrays)
