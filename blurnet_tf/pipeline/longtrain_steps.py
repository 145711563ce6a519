"""The paper's training length, approached: the baseline, TV 1e-4 and Tik_hf trained far longer than
Table II's rows (the paper: 2,000 epochs), each epoch's cross-entropy, penalty and their gradient norms
logged, and the weights attacked like Table II after 10, 30, 100 and 300 epochs.

    runs/longtrain/models/<row>/                      model.keras, metrics.json, snapshots/epoch<N>.keras
    runs/longtrain/rp2/<row>/epoch<N>/                results.json
"""

import dataclasses
import typing

from blurnet_tf import paper
from blurnet_tf.pipeline.steps import Step, attack_command, train_command


@dataclasses.dataclass(frozen=True)
class LongTraining:
    REPORT: typing.ClassVar[str] = "longtrain_report"  # the reports module that writes this study's report
    MERGES_PARTS: typing.ClassVar[bool] = False  # its report merges each part with the committed ones

    rows: tuple = ("baseline", "tv_1e-4", "tik_hf")
    epochs: int = 300
    attacked_epochs: tuple = (10, 30, 100)  # snapshots attacked; the final model is too
    seed: int = 0
    attack_epochs: int = 30  # RP2 epochs (Table II's budget in the table2 profile)
    targets: str = "all"
    max_train_images: int = 0

    def points(self):
        return tuple(f"epoch{e}" for e in self.attacked_epochs + (self.epochs,))

    def steps(self, lay, flags_dir, data, data_dir=None):
        """This study's steps (plan.build_plan asks a Study's budget for them)."""
        return longtrain_steps(self, lay, flags_dir, data)


# One seed (the issue allows it beside the 3-seed spread at 10 epochs, results/table2); about 50-80 min of two
# cores for the three trainings (measured per-epoch costs: docs/results-blurnet.md, "The paper's training length").
LONG_TRAINING = LongTraining()


def longtrain_steps(budget, lay, flags_dir, data):
    extra = [f"--max_train_images={budget.max_train_images}"] if budget.max_train_images else []
    steps = [
        Step(
            f"train/{row}",
            "train",
            lay.model_dir(row),
            command=train_command(
                flags_dir,
                row,
                lay.model_dir(row),
                f"--epochs={budget.epochs}",
                f"--seed={budget.seed}",
                "--log_penalty_share",
                f"--snapshot_epochs={','.join(map(str, budget.attacked_epochs))}",
                *extra,
                *data,
            ),
        )
        for row in budget.rows
    ]
    for row in budget.rows:
        for point in budget.points():
            model, out = lay.epoch_model_file(row, point, budget.epochs), lay.epoch_attack_dir(row, point)
            steps.append(
                Step(
                    f"long/{row}/{point}",
                    "long",
                    out,
                    inputs=[model],
                    command=attack_command(
                        flags_dir,
                        "whitebox.flags",
                        model,
                        out,
                        f"--epochs={budget.attack_epochs}",
                        f"--lambdas={paper.RP2_LAMBDA:g}",
                        f"--seed={budget.seed}",
                        *([f"--targets={budget.targets}"] if budget.targets != "all" else []),
                        *data,
                    ),
                )
            )
    return steps
