"""Table IV: untargeted PGD L∞ on the 40 victims (BlurNet §IV-E: ε 8/255, step 0.01, 10 steps)."""

import dataclasses
import math
import pathlib
import time

from blurnet_tf import files, locks, paper, rundir
from blurnet_tf.paper import PRECISIONS
from blurnet_tf.errors import SettingError


@dataclasses.dataclass(frozen=True)
class PgdAttack:
    model: str
    pgd_eps: float = paper.LINF_EPS
    pgd_step: float = paper.PGD_STEP
    pgd_steps: int = paper.PGD_STEPS
    seed: int = 0  # the training seed of `model` (PGD itself starts at the image)
    precision: str = "float32"  # the attacked model's compute; scoring is always float32
    data_dir: str | None = None

    def __post_init__(self):
        if not (math.isfinite(self.pgd_eps) and 0 < self.pgd_eps <= 1):
            raise SettingError("pgd_eps", f"expected a radius in (0, 1], got {self.pgd_eps}")
        if not (math.isfinite(self.pgd_step) and 0 < self.pgd_step <= self.pgd_eps):
            raise SettingError("pgd_step", f"expected a step in (0, pgd_eps={self.pgd_eps:.4g}], got {self.pgd_step}")
        if self.precision not in PRECISIONS:
            raise SettingError("precision", f"expected one of {', '.join(PRECISIONS)}")
        if self.pgd_steps < 1:
            raise SettingError("pgd_steps", f"expected an integer >= 1, got {self.pgd_steps}")

    def run(self, out, save_images=4, log=print, overwrite=False):
        from blurnet_tf.attacks.linf_gradient import linf_attack
        from blurnet_tf.evaluation import metrics
        from blurnet_tf.experiments.rp2_stickers import load_victim_setting

        out = pathlib.Path(out)
        locks.claim_dir(out, rundir.ATTACK_WRITER, overwrite)
        with locks.RunLock(out):
            started = time.time()
            _, victims, _, model = load_victim_setting(self.model, self.data_dir)
            locks.mark_owner(out, rundir.ATTACK_WRITER)
            clean = metrics.predict_classes(model, victims)
            from blurnet_tf.registry.precision import with_precision

            attacked = model if self.precision == "float32" else with_precision(model, self.precision)
            adv = linf_attack(
                attacked, victims, eps=self.pgd_eps, steps=self.pgd_steps, step_size=self.pgd_step
            ).adversarial
            pred = metrics.predict_classes(model, adv)
            result = {
                "asr": metrics.attack_success_rate(clean, pred),
                "l2": metrics.l2_dissimilarity(victims, adv),
                "success": (clean != pred).astype(int).tolist(),
                "paper": {"asr": paper.TABLE4["asr"], "l2_range": list(paper.TABLE4["l2_range"])},
            }
            for i, image in enumerate(adv[:save_images]):
                files.save_png(out / "images" / f"pgd_{i}.png", image)
            log(f"PGD eps {self.pgd_eps:.4f}: ASR {result['asr']:.3f}, L2 {result['l2']:.3f}")
            record = rundir.PgdRecord(
                flags={"mode": "pgd", **dataclasses.asdict(self)},
                pgd=result,
                seed=self.seed,
                versions=files.package_versions(),
                wall_seconds=time.time() - started,
            )
            return record.write(out / rundir.RESULTS_FILE) and record
