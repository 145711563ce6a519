"""The experiment plan behind `python -m blurnet_tf.cli.reproduce`: every table and figure as steps.

Each attack or training step is the command line a user would run for that one experiment
(`python -m blurnet_tf.cli.train --flagfile=flags/models/<row>.flags ...`), so every number in the
report can be re-run alone. The `quick` profile shrinks budgets and rows; `full` is the paper's.
"""

import dataclasses
import os
import pathlib

from blurnet_tf import rundir
from blurnet_tf.evaluation.deflection_protocol import PDBudget
from blurnet_tf.pipeline.steps import Step
from blurnet_tf.rundir import ORIGINAL, Layout

TABLE2_ROWS = ("baseline", "gaussian_aug_0.1", "gaussian_aug_0.2", "gaussian_aug_0.3", "adv_train",
               "conv_3", "conv_5", "conv_7", "tv_1e-4", "tv_1e-5", "tik_hf", "tik_pseudo")
DEFENDPP_ROW = "defendpp"  # Defend++ on the LISA-CNN: a new white-box row beside BlurNet's
# Defend++'s MNIST comparison (its Table 2) and ablation (its Table 1), one flagfile each.
MNIST_ROWS = ("mnist_baseline", "mnist_fgsm_train", "mnist_defendpp", "mnist_defendpp_gn",
              "mnist_defendpp_no_lowpass", "mnist_defendpp_hourglass")
CONV_ROWS = ("conv_3", "conv_5", "conv_7")
REGULARISED_ROWS = ("tv_1e-4", "tv_1e-5", "tik_hf", "tik_pseudo")
PD_ROW = "baseline_holdout"  # the baseline trained without Pixel Deflection's validation tracks


@dataclasses.dataclass(frozen=True)
class MnistBudget:
    """Defend++ on MNIST: which rows, their training and the attack budgets (blurnet_tf.cli.mnist_attacks)."""
    rows: tuple = MNIST_ROWS
    epochs: int | None = None   # None: the flagfile's (30)
    images: int = 1000          # test images attacked
    bim_steps: int = 100
    cw_search: int = 5
    cw_steps: int = 20
    ddn_steps: int = 100
    max_train_images: int = 0


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    rows: tuple                 # trained Table II rows
    train_epochs: int | None    # None: the flagfile's (30)
    adv_train_epochs: int | None
    attack_epochs: int
    lambdas: tuple              # white-box sweep
    dct_dims: tuple             # Fig. 3 sweep on conv_7 (16 is Table III's)
    table1_kernels: tuple
    table5_regularisers: tuple
    smoothing_samples: int = 100
    targets: str = "all"        # attack targets (tests use a few)
    max_train_images: int = 0   # 0 = all (tests use a few)
    pixel_deflection: PDBudget | None = None
    mnist: MnistBudget | None = None


PROFILES = {
    "quick": Profile("quick", rows=("baseline", "gaussian_aug_0.2", "adv_train", "conv_5", "conv_7", "tv_1e-4",
                                    "tik_hf", DEFENDPP_ROW),
                     train_epochs=5, adv_train_epochs=2, attack_epochs=80, lambdas=("0.002",), dct_dims=(8, 16),
                     table1_kernels=(3, 5), table5_regularisers=("tv", "tik_hf"),
                     pixel_deflection=PDBudget(test_images=100, cw_steps=100, cw_search=4, adaptive_pgd_steps=10,
                                               adaptive_rp2_targets=(12, 1, 7), adaptive_rp2_epochs=50,
                                               search_images=150),
                     mnist=MnistBudget(epochs=5, images=300, bim_steps=40, cw_search=3, ddn_steps=50)),
    "full": Profile("full", rows=TABLE2_ROWS + (DEFENDPP_ROW,), train_epochs=None, adv_train_epochs=None, attack_epochs=300,
                    lambdas=("0.002", "0.02", "0.2"), dct_dims=(4, 8, 12, 16, 24, 32), table1_kernels=(3, 5, 7),
                    table5_regularisers=("tv", "tik_hf", "tik_pseudo"),
                    # BPDA+EOT RP2 runs the numpy defence 4x per image-step: 5 targets keep it to minutes.
                    pixel_deflection=PDBudget(adaptive_rp2_targets=(1, 3, 7, 10, 12)), mnist=MnistBudget()),
    # Seconds-scale budgets that still run every stage: the tests' end-to-end run.
    "smoke": Profile("smoke", rows=("baseline", "gaussian_aug_0.2", "adv_train", "conv_5", "conv_7", "tv_1e-4",
                                    "tik_hf", DEFENDPP_ROW),
                     train_epochs=1, adv_train_epochs=1, attack_epochs=5, lambdas=("0.002", "0.02"), dct_dims=(8, 16),
                     table1_kernels=(3,), table5_regularisers=("tv",), smoothing_samples=10, targets="5,12",
                     max_train_images=300,
                     pixel_deflection=PDBudget(test_images=20, cw_steps=5, cw_search=1, eot_samples=2,
                                               adaptive_pgd_steps=2, adaptive_rp2_targets=(12,), adaptive_rp2_epochs=3,
                                               ensemble=2, search_images=20),
                     mnist=MnistBudget(rows=("mnist_baseline", "mnist_defendpp"), epochs=1, images=20, bim_steps=3,
                                       cw_search=1, cw_steps=3, ddn_steps=3, max_train_images=300)),
}


def build_plan(profile, work_dir, data_dir=None, flags_dir="flags"):
    """The ordered steps of a profile. Experiments are imported lazily so planning needs no TF."""
    from blurnet_tf.experiments.blur_transfer import BlurTransfer
    from blurnet_tf.experiments.deflection_study import DeflectionStudy
    from blurnet_tf.experiments.defendpp_reconstructions import DefendppReconstructions
    from blurnet_tf.experiments.smoothing_votes import SmoothingVotes
    from blurnet_tf.experiments.spectra_maps import SpectraMaps

    lay = Layout(work_dir)
    flags_dir = pathlib.Path(flags_dir)
    data = [f"--data_dir={data_dir}"] if data_dir else []
    steps = []

    trained = profile.rows + ((PD_ROW,) if profile.pixel_deflection else ())
    for row in trained:
        epochs = profile.adv_train_epochs if row == "adv_train" else profile.train_epochs
        steps.append(Step(f"train/{row}", "train", lay.model_dir(row), command=[
            "blurnet_tf.cli.train", f"--flagfile={flags_dir / 'models' / f'{row}.flags'}", f"--out={lay.model(row)}",
            *([f"--epochs={epochs}"] if epochs else []),
            *([f"--max_train_images={profile.max_train_images}"] if profile.max_train_images else []), *data]))

    def attack(stage, name, row, flagfile, *extra):
        out = lay.result_dir(stage, name)
        return Step(f"{stage}/{name}", stage, out, inputs=lay.model_inputs(row), command=[
            "blurnet_tf.cli.attack", f"--flagfile={flags_dir / 'attacks' / flagfile}", f"--model={lay.model(row)}",
            f"--out={out}", *extra, *([f"--targets={profile.targets}"] if profile.targets != "all" else []), *data])

    def whitebox_inputs(row):
        return lay.model_inputs(row) + [lay.results("whitebox", row)]

    rp2_budget = [f"--epochs={profile.attack_epochs}"]
    whitebox_rows = (ORIGINAL,) + profile.rows
    for row in whitebox_rows:
        steps.append(attack("whitebox", row, row, "whitebox.flags", *rp2_budget,
                            f"--lambdas={','.join(profile.lambdas)}"))

    for source in (ORIGINAL, "baseline"):
        steps.append(Step(f"transfer/{source}", "transfer", lay.result_dir("transfer", source),
                          experiment=BlurTransfer(source, lay.model(source), os.fspath(lay.result_dir("whitebox", source)),
                                                  tuple(profile.table1_kernels), data_dir=data_dir),
                          inputs=whitebox_inputs(source)))

    for row in (r for r in profile.rows if r.startswith("gaussian_aug_")):
        sigma = row.removeprefix("gaussian_aug_")
        steps.append(Step(f"smoothing/{sigma}", "smoothing", lay.result_dir("smoothing", sigma),
                          experiment=SmoothingVotes(row, lay.model(row), os.fspath(lay.result_dir("whitebox", row)),
                                                    float(sigma), profile.smoothing_samples, data_dir),
                          inputs=whitebox_inputs(row)))

    for row in (r for r in profile.rows if r in CONV_ROWS):
        dims = profile.dct_dims if row == "conv_7" else (16,)
        for dim in dims:
            steps.append(attack("lowfreq", f"{row}/dct{dim}", row, "lowfreq.flags", *rp2_budget, f"--dct_dim={dim}"))
    for row in (r for r in profile.rows if r in REGULARISED_ROWS):
        steps.append(attack("adaptive", row, row, "adaptive.flags", *rp2_budget))
    if "adv_train" in profile.rows:
        for reg in profile.table5_regularisers:
            steps.append(attack("adaptive_adv_train", reg, "adv_train", "adaptive.flags", *rp2_budget,
                                f"--regulariser={reg}"))
    for row in whitebox_rows:
        steps.append(attack("pgd", row, row, "pgd.flags"))

    if profile.pixel_deflection:
        steps.append(Step("pixel_deflection/baseline", "pixel_deflection", lay.root / "pixel_deflection",
                          experiment=DeflectionStudy(PD_ROW, lay.model(PD_ROW), profile.pixel_deflection,
                                                     profile.attack_epochs, data_dir=data_dir),
                          inputs=lay.model_inputs(PD_ROW)))
    if profile.mnist:
        steps += _mnist_steps(profile.mnist, lay, flags_dir, data)
    if DEFENDPP_ROW in profile.rows or profile.mnist:
        runs = ((("mnist", os.fspath(lay.mnist_model_dir("mnist_defendpp"))),) if profile.mnist else ()) + (
            (("lisa", lay.model(DEFENDPP_ROW)),) if DEFENDPP_ROW in profile.rows else ())
        steps.append(Step("defendpp/reconstructions", "defendpp", lay.root / "defendpp_figures",
                          experiment=DefendppReconstructions(runs, data_dir=data_dir),
                          inputs=[pathlib.Path(p) / rundir.AUTOENCODER_FILE for _, p in runs]))
    if "baseline" in profile.rows:
        steps.append(Step("figures/spectra", "figures", lay.root / "figures",
                          experiment=SpectraMaps(lay.model("baseline"), os.fspath(lay.result_dir("whitebox", "baseline")),
                                                 data_dir=data_dir),
                          inputs=whitebox_inputs("baseline")))
    return steps


def _mnist_steps(budget, lay, flags_dir, data):
    """Defend++ on MNIST: train every row, then attack it (FGSM, BIM, C&W, DDN)."""
    steps = []
    for row in budget.rows:
        steps.append(Step(f"train/{row}", "train", lay.mnist_model_dir(row), command=[
            "blurnet_tf.cli.train", f"--flagfile={flags_dir / 'models' / f'{row}.flags'}", f"--out={lay.mnist_model_dir(row)}",
            *([f"--epochs={budget.epochs}"] if budget.epochs else []),
            *([f"--max_train_images={budget.max_train_images}"] if budget.max_train_images else []), *data]))
    for row in budget.rows:
        out = lay.mnist_robustness_dir(row)
        steps.append(Step(f"defendpp/{row}", "defendpp", out, inputs=[lay.mnist_model_dir(row) / rundir.MODEL_FILE],
                          command=["blurnet_tf.cli.mnist_attacks", f"--model={lay.mnist_model_dir(row)}", f"--out={out}",
                                   f"--images={budget.images}", f"--bim_steps={budget.bim_steps}",
                                   f"--cw_search={budget.cw_search}", f"--cw_steps={budget.cw_steps}",
                                   f"--ddn_steps={budget.ddn_steps}", *data]))
    return steps
