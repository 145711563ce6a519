"""The accuracy-robustness trade-off as pipeline steps: every defence family trained at each value of
its strength knob under every seed, the baseline along its own training, and each model attacked
like Table II (white-box RP2, λ 0.002, every target). Each step is the command line a user would run.

    runs/tradeoff/models/<family>/<point>/seed<s>/   model.keras, metrics.json (the baseline: snapshots/)
    runs/tradeoff/rp2/<family>/<point>/seed<s>/      results.json

The steps go family by family (the baseline first), so a run cut short leaves whole families.
"""

import dataclasses
import typing

from blurnet_tf import paper, rundir
from blurnet_tf.pipeline.steps import Step, attack_command, train_command

BASELINE = rundir.BASELINE


@dataclasses.dataclass(frozen=True)
class Frontier:
    """One defence family's strength knob: the Table II flagfile it starts from, the flag it sweeps
    and the values (as the flag takes them)."""

    family: str
    flagfile: str
    knob: str
    values: tuple
    zero_is_baseline: bool = True  # knob 0 is the plain baseline: its curve starts at the baseline's model

    def points(self):
        return tuple(f"{self.knob}{v}" for v in self.values)


@dataclasses.dataclass(frozen=True)
class TradeoffBudget:
    REPORT: typing.ClassVar[str] = "tradeoff_report"  # the reports module that writes this study's report
    MERGES_PARTS: typing.ClassVar[bool] = True  # its report merges each part with the committed ones

    frontiers: tuple  # Frontier per defence family
    seeds: tuple = (0, 1, 2)  # training seeds; each model's RP2 noise uses the same seed
    train_epochs: int = 10
    adv_train_epochs: int = 10
    attack_epochs: int = 30
    baseline_steps: tuple = ()  # the baseline's curve: its weights after these batches...
    baseline_epochs: tuple = ()  # ...and these epochs (the final model is a point too)
    targets: str = "all"
    max_train_images: int = 0

    def families(self):
        return (BASELINE,) + tuple(f.family for f in self.frontiers)

    def baseline_points(self):
        return (
            tuple(f"step{s}" for s in self.baseline_steps)
            + tuple(f"epoch{e}" for e in self.baseline_epochs)
            + (f"epoch{self.train_epochs}",)
        )

    def steps(self, lay, flags_dir, data, data_dir=None):
        """This study's steps (plan.build_plan asks a Study's budget for them)."""
        return tradeoff_steps(self, lay, flags_dir, data)


# The frontiers' grids, chosen from a first coarse measurement (seed 0, 10 epochs): legit accuracy from
# the baseline's ~99% down to at most 80%. The conv grid covers the paper's α (0.1) and the slides' α/K
# (K = 64 first-layer maps: 0.0015625).
TRADEOFF = TradeoffBudget(
    # TV: 0.2 and 0.25 added after seeds 0-1 collapsed to the majority class (14%) at 0.3-0.4.
    frontiers=(
        Frontier("tv", "tv_1e-4", "alpha", ("0.1", "0.2", "0.25", "0.3", "0.35", "0.4")),
        # Tik_hf: 15 and 20 added after seed 1 collapsed at 10 and every seed at 30.
        Frontier("tik_hf", "tik_hf", "alpha", ("1", "10", "15", "20", "30", "100")),
        Frontier("conv_7", "conv_7", "alpha", ("0.0015625", "0.1", "1", "3"), zero_is_baseline=False),
        Frontier("gaussian_aug", "gaussian_aug_0.3", "sigma", ("0.3", "0.6", "1.0")),
        Frontier("adv_train", "adv_train", "pgd_eps", ("0.03137254901960784", "0.12549019607843137")),
    ),
    # An epoch is 29 batches of 128: the baseline passes 65% after epoch 1 and 97% after epoch 2.
    baseline_steps=(10, 15, 20, 25, 33, 37, 41, 45, 50, 54),
    baseline_epochs=(1, 2, 3, 5),
)


def tradeoff_steps(budget, lay, flags_dir, data):
    """Train every (family, point, seed), then attack each model (a baseline point: its snapshot)."""
    extra = [f"--max_train_images={budget.max_train_images}"] if budget.max_train_images else []
    targets = [f"--targets={budget.targets}"] if budget.targets != "all" else []

    def attack(family, point, seed, model):
        out = lay.frontier_attack_dir(family, point, seed)
        return Step(
            f"frontier/{family}/{point}/seed{seed}",
            "frontier",
            out,
            inputs=[model],
            command=attack_command(
                flags_dir,
                "whitebox.flags",
                model,
                out,
                f"--epochs={budget.attack_epochs}",
                f"--lambdas={paper.RP2_LAMBDA:g}",
                f"--seed={seed}",
                *targets,
                *data,
            ),
        )

    steps = []
    for seed in budget.seeds:
        out = lay.frontier_model_dir(BASELINE, "training", seed)
        steps.append(
            Step(
                f"train/{BASELINE}/seed{seed}",
                "train",
                out,
                command=train_command(
                    flags_dir,
                    "baseline",
                    out,
                    f"--epochs={budget.train_epochs}",
                    f"--seed={seed}",
                    *(
                        [f"--snapshot_steps={','.join(map(str, budget.baseline_steps))}"]
                        if budget.baseline_steps
                        else []
                    ),
                    *(
                        [f"--snapshot_epochs={','.join(map(str, budget.baseline_epochs))}"]
                        if budget.baseline_epochs
                        else []
                    ),
                    *extra,
                    *data,
                ),
            )
        )
    for seed in budget.seeds:
        steps += [
            attack(BASELINE, p, seed, lay.baseline_point_model(p, seed, budget.train_epochs))
            for p in budget.baseline_points()
        ]
    for f in budget.frontiers:
        epochs = budget.adv_train_epochs if f.flagfile == "adv_train" else budget.train_epochs
        for seed in budget.seeds:
            for value, point in zip(f.values, f.points()):
                out = lay.frontier_model_dir(f.family, point, seed)
                steps.append(
                    Step(
                        f"train/{f.family}/{point}/seed{seed}",
                        "train",
                        out,
                        command=train_command(
                            flags_dir,
                            f.flagfile,
                            out,
                            f"--{f.knob}={value}",
                            f"--epochs={epochs}",
                            f"--seed={seed}",
                            *extra,
                            *data,
                        ),
                    )
                )
        steps += [
            attack(f.family, p, seed, lay.frontier_model_dir(f.family, p, seed) / rundir.MODEL_FILE)
            for seed in budget.seeds
            for p in f.points()
        ]
    return steps
