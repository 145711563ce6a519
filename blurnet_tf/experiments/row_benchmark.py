"""One model of the reproduction through `benchmark()` (the function the CLI and a user's own model go
through): the 40 victims, Table IV's PGD-10 (ε 8/255, step 0.01, from the image), AutoAttack-strength
L∞ at the same ε, and the attack-strength checks (evaluation.attack_strength). The transfer check is
crafted on `source` (the undefended baseline). A Pixel Deflection row is attacked through BPDA + EOT
with APGD-CE and APGD-T only: AutoAttack's version for randomised defences ("rand") leaves Square out."""

import dataclasses
import time

from blurnet_tf import paper, rundir


@dataclasses.dataclass(frozen=True)
class RowBenchmark:
    row: str
    model: str  # run directory or model file
    source: str | None = None  # the transfer check's source (None: no transfer check)
    pixel_deflection: tuple = ()  # (deflections, window, sigma): the classifier behind the defence
    eot_samples: int = 4  # defences averaged per forward pass (BPDA + EOT)
    seed: int = 0
    square_queries: int = 5000
    check_rp2_epochs: int = 30
    check_targets: tuple = (1, 7, 12)  # RP2 checks: three of the 17 targets (as the adaptive PD runs)
    data_dir: str | None = None

    def run(self, out):
        import numpy as np

        from blurnet_tf.data import STOP
        from blurnet_tf.evaluation.robustness_benchmark import benchmark
        from blurnet_tf.experiments.rp2_stickers import lisa_classifier, load_victim_setting

        data_dir, victims, mask, classifier = load_victim_setting(self.model, self.data_dir)
        model = classifier
        if self.pixel_deflection:
            from blurnet_tf.defences.pixel_deflection import PixelDeflection

            deflections, window, sigma = self.pixel_deflection
            model = PixelDeflection(
                classifier, deflections=int(deflections), window=int(window), sigma=float(sigma), seed=self.seed
            ).eot_model(self.eot_samples)
        source = lisa_classifier(self.source, data_dir) if self.source else None
        strongest = ("apgd-ce", "apgd-t") if self.pixel_deflection else ("apgd-ce", "apgd-t", "square")
        started = time.time()
        records = benchmark(
            model,
            victims,
            np.full(len(victims), STOP),
            threat_models=("clean", "linf", "autoattack", "checks"),
            targets=list(self.check_targets),
            mask=mask,
            seeds=(self.seed,),
            linf_eps=paper.LINF_EPS,
            linf_steps=paper.PGD_STEPS,
            linf_step=paper.PGD_STEP,
            linf_random_start=False,
            square_queries=self.square_queries,
            source=source,
            autoattack_attacks=strongest,
            check_rp2_epochs=self.check_rp2_epochs,
            name=self.row,
        )
        return rundir.write_result(
            self,
            out,
            {
                "row": self.row,
                "records": records,
                "seconds": time.time() - started,
                "paper_pgd10_asr": paper.TABLE4["asr"],
            },
        )


@dataclasses.dataclass(frozen=True)
class RestartCrossCheck:
    """A second implementation beside AutoAttack (ART): cleverhans PGD at the same ε with many random
    restarts, through the same benchmark(); it should leave no fewer victims robust than AutoAttack."""

    row: str
    model: str
    restarts: int = 10
    steps: int = 50
    data_dir: str | None = None

    def run(self, out):
        import numpy as np

        from blurnet_tf.data import STOP
        from blurnet_tf.evaluation.robustness_benchmark import benchmark
        from blurnet_tf.experiments.rp2_stickers import load_victim_setting

        _, victims, _, classifier = load_victim_setting(self.model, self.data_dir)
        started = time.time()
        records = benchmark(
            classifier,
            victims,
            np.full(len(victims), STOP),
            threat_models=("clean", "linf"),
            seeds=tuple(range(self.restarts)),
            linf_eps=paper.LINF_EPS,
            linf_steps=self.steps,
            name=self.row,
        )
        return rundir.write_result(self, out, {"row": self.row, "records": records, "seconds": time.time() - started})


@dataclasses.dataclass(frozen=True)
class AdaptiveChecks:
    """Table III / V's adaptive RP2 through the attack-strength checks: the low-frequency attack (eq. 8) on a
    conv row, the regulariser-aware one (eq. 9-11) on a TV / Tik row or the adversarially trained model.
    Both RP2 checks (whole-image λ 0 reaches 99%; 30 epochs no weaker than 10) then run that attack."""

    row: str
    model: str
    mode: str  # "lowfreq" or "adaptive"
    regulariser: str | None = None  # adaptive: None = the model's own
    dct_dim: int = 16
    seed: int = 0
    check_rp2_epochs: int = 30
    check_targets: tuple = (1, 7, 12)
    data_dir: str | None = None

    def run(self, out):
        import numpy as np

        from blurnet_tf.data import STOP
        from blurnet_tf.evaluation.attack_strength import strength_checks
        from blurnet_tf.experiments.rp2_stickers import attack_extra_loss, attack_transform, load_victim_setting

        _, victims, mask, classifier = load_victim_setting(self.model, self.data_dir)
        started = time.time()
        found = strength_checks(
            classifier,
            victims,
            np.full(len(victims), STOP),
            eps=paper.LINF_EPS,
            mask=mask,
            targets=list(self.check_targets),
            rp2_epochs=self.check_rp2_epochs,
            rp2_lambda=paper.RP2_LAMBDA,
            seed=self.seed,
            rp2_transform=attack_transform(self),
            rp2_extra_loss=attack_extra_loss(self, classifier),
        )
        return rundir.write_result(
            self, out, {"row": self.row, "attack": self.attack, "checks": found, "seconds": time.time() - started}
        )

    @property
    def attack(self):
        return f"lowfreq dct{self.dct_dim}" if self.mode == "lowfreq" else f"adaptive {self.regulariser or 'own'}"


@dataclasses.dataclass(frozen=True)
class MnistRowBenchmark:
    """A Defend++ MNIST model (or the undefended one beside it) through `benchmark()` at Defend++'s own L∞
    budget (ε 0.2, its FGSM / BIM radius): PGD-100 from the image as its BIM ran, AutoAttack-strength L∞
    (APGD-CE, APGD-T, Square) and the attack-strength checks (no sticker: MNIST has no RP2 mask), on the
    first `images` official test images."""

    row: str
    model: str  # run directory or model file
    source: str | None = None  # the transfer check's source (None: no transfer check)
    eps: float = paper.MNIST_FGSM_EPS
    steps: int = 100
    images: int = 500
    seed: int = 0
    square_queries: int = 5000
    data_dir: str | None = None

    def run(self, out):
        from blurnet_tf.data import find_data_dir
        from blurnet_tf.data.mnist import load_mnist_official
        from blurnet_tf.defences import classifier_of
        from blurnet_tf.evaluation.robustness_benchmark import benchmark
        from blurnet_tf.registry import MNIST_MODEL, load_model

        model = classifier_of(load_model(self.model, expect=MNIST_MODEL))
        source = None if self.source is None else classifier_of(load_model(self.source, expect=MNIST_MODEL))
        x, y = load_mnist_official(find_data_dir(self.data_dir))["test"]
        started = time.time()
        records = benchmark(
            model,
            x[: self.images],
            y[: self.images],
            threat_models=("clean", "linf", "autoattack", "checks"),
            seeds=(self.seed,),
            linf_eps=self.eps,
            linf_steps=self.steps,
            linf_random_start=False,
            square_queries=self.square_queries,
            source=source,
            name=self.row,
        )
        return rundir.write_result(self, out, {"row": self.row, "records": records, "seconds": time.time() - started})
