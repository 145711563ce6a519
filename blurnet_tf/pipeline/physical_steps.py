"""RP2's physical threat model as pipeline steps (issue 44): every row trained under every seed, attacked twice
with white-box RP2 (the digital sticker, flags/attacks/whitebox.flags, and the sticker optimised in expectation
over viewing conditions, whitebox_eot.flags), and both stickers scored on the held-out stationary grid.

    runs/physical/models/<row>/seed<s>/              model.keras, metrics.json
    runs/physical/rp2/<row>/<digital|eot>/seed<s>/   results.json (and the noise)
    runs/physical/stationary/<row>/seed<s>/          results.json (experiments.stationary_scores)

Steps go seed by seed, so a run cut short leaves whole seeds (`--seeds` runs a part).
"""

from __future__ import annotations

import dataclasses
import typing

from blurnet_tf import paper, rundir
from blurnet_tf.experiments.stationary_scores import StationaryTest
from blurnet_tf.pipeline.steps import Step, attack_command, train_command

STICKERS = (("digital", "whitebox.flags"), ("eot", "whitebox_eot.flags"))


@dataclasses.dataclass(frozen=True)
class PhysicalBudget:
    REPORT: typing.ClassVar[str] = "physical_report"  # the reports module that writes this study's report
    MERGES_PARTS: typing.ClassVar[bool] = True  # its report merges each part with the committed ones

    rows: tuple[str, ...] = ("baseline", "conv_7", "tv_1e-4", "tik_hf", "defendpp")  # the comparator first
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    train_epochs: int = 10  # Table II's budget measured flat (the table2 profile)
    attack_epochs: int = paper.RP2_EPOCHS
    targets: str = "1,7,12"  # the paper's target 12 among them (the EOT attack costs 4 views a step)
    precision: str = "mixed_bfloat16"  # one precision for every arm (the bf16 gate of issue 41's pilot)
    max_train_images: int = 0  # tests

    def steps(self, lay, flags_dir, data, data_dir=None):
        """This study's steps (plan.build_plan asks a Study's budget for them)."""
        return physical_steps(self, lay, flags_dir, data, data_dir)


def physical_steps(budget: PhysicalBudget, lay: rundir.Layout, flags_dir, data: list[str], data_dir=None) -> list[Step]:
    extra = [f"--max_train_images={budget.max_train_images}"] if budget.max_train_images else []
    steps = []
    for seed in budget.seeds:
        for row in budget.rows:
            model = lay.frontier_model_dir(row, f"epoch{budget.train_epochs}", seed)
            steps.append(
                Step(
                    f"train/{row}/seed{seed}",
                    "train",
                    model,
                    command=train_command(
                        flags_dir, row, model, f"--epochs={budget.train_epochs}", f"--seed={seed}", *extra, *data
                    ),
                )
            )
            attacks = []
            for sticker, flagfile in STICKERS:
                out = lay.physical_attack_dir(row, sticker, seed)
                attacks.append((sticker, out))
                steps.append(
                    Step(
                        f"physical/{row}/{sticker}/seed{seed}",
                        "physical",
                        out,
                        inputs=[model / rundir.MODEL_FILE],
                        command=attack_command(
                            flags_dir,
                            flagfile,
                            model,
                            out,
                            f"--epochs={budget.attack_epochs}",
                            f"--targets={budget.targets}",
                            f"--precision={budget.precision}",
                            f"--seed={seed}",
                            "--save_images=0",
                            *data,
                        ),
                    )
                )
            steps.append(
                Step(
                    f"stationary/{row}/seed{seed}",
                    "stationary",
                    lay.stationary_dir(row, seed),
                    experiment=StationaryTest(str(model), tuple((s, str(d)) for s, d in attacks), data_dir=data_dir),
                    inputs=[model / rundir.MODEL_FILE] + [d / rundir.RESULTS_FILE for _, d in attacks],
                )
            )
    return steps


PHYSICAL = PhysicalBudget()
