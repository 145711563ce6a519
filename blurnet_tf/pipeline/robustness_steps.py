"""The evaluation reviewers ask for, on every model of the reproduction: each Table II row, the LISA
Defend++ row and Pixel Deflection's classifier trained once (seed 0, Table II's 10 epochs), then put
through `benchmark()`: PGD-10 as Table IV ran it, AutoAttack-strength L∞ and the attack-strength checks.

    runs/robustness/models/<row>/        model.keras, metrics.json
    runs/robustness/benchmark/<row>/     results.json (flat records, the benchmark() schema)
    runs/robustness/crosscheck/baseline/ results.json (PGD with many restarts: a second implementation)
    runs/robustness/adaptive/<row>/<attack>/  results.json (Table III / V's adaptive RP2 through the checks)
    runs/robustness/{models,benchmark}/mnist_*/  Defend++ on MNIST at its own ε 0.2, through the same benchmark()
"""

import dataclasses
import typing
import os

from blurnet_tf import rundir
from blurnet_tf.pipeline.steps import Step, train_command

BASELINE, PIXEL_DEFLECTION = rundir.BASELINE, rundir.PIXEL_DEFLECTION
# Table III's adaptive attacks on their rows, Table V's on the adversarially trained model: (row, mode, regulariser).
ADAPTIVE = (
    ("conv_3", "lowfreq", None),
    ("conv_5", "lowfreq", None),
    ("conv_7", "lowfreq", None),
    ("tv_1e-4", "adaptive", None),
    ("tv_1e-5", "adaptive", None),
    ("tik_hf", "adaptive", None),
    ("tik_pseudo", "adaptive", None),
    ("adv_train", "adaptive", "tv"),
    ("adv_train", "adaptive", "tik_hf"),
    ("adv_train", "adaptive", "tik_pseudo"),
)


@dataclasses.dataclass(frozen=True)
class RobustnessBudget:
    REPORT: typing.ClassVar[str] = "robustness_report"  # the reports module that writes this study's report
    MERGES_PARTS: typing.ClassVar[bool] = False  # its report merges each part with the committed ones

    rows: tuple  # trained rows, benchmarked bare (the baseline among them)
    pd_row: str = "baseline_holdout"  # the classifier behind Pixel Deflection
    # The parameters the paper's linear search chose on the validation tracks (results/full-pixel-deflection).
    pd_parameters: tuple = (128, 2, 0.08)
    seed: int = 0
    train_epochs: int = 10
    square_queries: int = 5000
    check_rp2_epochs: int = 30
    check_targets: tuple = (1, 7, 12)
    max_train_images: int = 0
    crosscheck_restarts: int = 10  # cleverhans PGD restarts beside AutoAttack on the baseline
    adaptive: tuple = ADAPTIVE  # (row, mode, regulariser) checked under Table III / V's adaptive RP2
    mnist_rows: tuple = ()  # Defend++'s MNIST rows (the first its undefended source), official split
    mnist_epochs: int = 5  # the mnist profile's
    mnist_images: int = 500  # official test images benchmarked

    def benchmarked(self):
        return self.rows + (PIXEL_DEFLECTION,)

    def steps(self, lay, flags_dir, data, data_dir=None):
        """This study's steps (plan.build_plan asks a Study's budget for them)."""
        return robustness_steps(self, lay, flags_dir, data, data_dir)


def robustness_steps(budget, lay, flags_dir, data, data_dir):
    from blurnet_tf.experiments.row_benchmark import AdaptiveChecks, MnistRowBenchmark, RestartCrossCheck, RowBenchmark

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
                f"--epochs={budget.train_epochs}",
                f"--seed={budget.seed}",
                *extra,
                *data,
            ),
        )
        for row in budget.rows + (budget.pd_row,)
    ]
    source = os.fspath(lay.model_dir(BASELINE))
    for row in budget.benchmarked():
        trained = budget.pd_row if row == PIXEL_DEFLECTION else row
        model = os.fspath(lay.model_dir(trained))
        steps.append(
            Step(
                f"benchmark/{row}",
                "benchmark",
                lay.benchmark_dir(row),
                inputs=[
                    lay.model_dir(trained) / rundir.MODEL_FILE,
                    *([] if row == BASELINE else [lay.model_dir(BASELINE) / rundir.MODEL_FILE]),
                ],
                experiment=RowBenchmark(
                    row,
                    model,
                    source=None if row == BASELINE else source,
                    pixel_deflection=budget.pd_parameters if row == PIXEL_DEFLECTION else (),
                    seed=budget.seed,
                    square_queries=budget.square_queries,
                    check_rp2_epochs=budget.check_rp2_epochs,
                    check_targets=budget.check_targets,
                    data_dir=data_dir,
                ),
            )
        )
    baseline = lay.model_dir(BASELINE) / rundir.MODEL_FILE
    steps.append(
        Step(
            f"crosscheck/{BASELINE}",
            "crosscheck",
            lay.crosscheck_dir(BASELINE),
            inputs=[baseline],
            experiment=RestartCrossCheck(BASELINE, source, restarts=budget.crosscheck_restarts, data_dir=data_dir),
        )
    )
    extra = [f"--max_train_images={budget.max_train_images}"] if budget.max_train_images else []
    for row in budget.mnist_rows:
        steps.append(
            Step(
                f"train/{row}",
                "train",
                lay.model_dir(row),
                command=train_command(
                    flags_dir,
                    row,
                    lay.model_dir(row),
                    f"--epochs={budget.mnist_epochs}",
                    f"--seed={budget.seed}",
                    "--mnist_split=official",
                    *extra,
                    *data,
                ),
            )
        )
    for row in budget.mnist_rows:
        source = budget.mnist_rows[0] if row != budget.mnist_rows[0] else None
        steps.append(
            Step(
                f"benchmark/{row}",
                "benchmark",
                lay.benchmark_dir(row),
                inputs=[lay.model_dir(r) / rundir.MODEL_FILE for r in (row, source) if r],
                experiment=MnistRowBenchmark(
                    row,
                    os.fspath(lay.model_dir(row)),
                    source=source and os.fspath(lay.model_dir(source)),
                    images=budget.mnist_images,
                    seed=budget.seed,
                    square_queries=budget.square_queries,
                    data_dir=data_dir,
                ),
            )
        )
    for row, mode, regulariser in (a for a in budget.adaptive if a[0] in budget.rows):
        out = lay.adaptive_dir(row, mode, regulariser)
        steps.append(
            Step(
                f"adaptive/{out.relative_to(lay.root / 'adaptive')}",
                "adaptive_checks",
                out,
                inputs=[lay.model_dir(row) / rundir.MODEL_FILE],
                experiment=AdaptiveChecks(
                    row,
                    os.fspath(lay.model_dir(row)),
                    mode,
                    regulariser,
                    seed=budget.seed,
                    check_rp2_epochs=budget.check_rp2_epochs,
                    check_targets=budget.check_targets,
                    data_dir=data_dir,
                ),
            )
        )
    return steps
