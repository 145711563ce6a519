"""Defend++ on MNIST as pipeline steps: train every row, attack it, the transfer pairs and the
reconstruction-weight curve (each step the command line a user would run)."""

import dataclasses

from blurnet_tf import rundir
from blurnet_tf.paper import DEFENDPP_ATTACKS, DEFENDPP_CHECKS, DEFENDPP_TRANSFERRED
from blurnet_tf.pipeline.steps import Step, train_command

# Defend++'s MNIST comparison (its Table 2) and ablation (its Table 1), one flagfile each.
MNIST_ROWS = (
    "mnist_baseline",
    "mnist_fgsm_train",
    "mnist_defendpp",
    "mnist_defendpp_gn",
    "mnist_defendpp_no_lowpass",
    "mnist_defendpp_hourglass",
)
# Defend++ Table 2 as the paper ran it: ResNet-18, the official 60,000 / 10,000 split, its SGD schedule.
PAPER_MNIST_ROWS = ("mnist_baseline_resnet18", "mnist_defendpp_resnet18", "mnist_defendpp_gn_resnet18")


@dataclasses.dataclass(frozen=True)
class MnistBudget:
    """Defend++ on MNIST: which rows, their training and the attack budgets (blurnet_tf.cli.mnist_attacks)."""

    rows: tuple = MNIST_ROWS
    epochs: int | None = None  # None: the flagfile's (30)
    images: int = 1000  # test images attacked
    bim_steps: int = 100
    cw_search: int = 5
    cw_steps: int = 20
    ddn_steps: int = 100
    max_train_images: int = 0
    official_split: bool = False  # the small-net rows train on the 60,000 too (else: the test-set split)
    paper_rows: tuple = ()  # ResNet-18 rows (flagfiles: the paper's 250 epochs)
    paper_epochs: int | None = None  # their epochs here; None: the flagfiles' 250
    paper_images: int | None = None  # test images attacked on them; None: `images`
    transfer: tuple = ()  # (source row, target row): DEFENDPP_TRANSFERRED made on source, scored on target
    reconstruction_weights: tuple = ()  # the small Defend++ retrained at each weight: the ablation curve


def mnist_steps(budget, lay, flags_dir, data):
    """Defend++ on MNIST: train every row, then attack it (FGSM, BIM, C&W, DDN, Fig. 7's FGSM curve and
    the attack-strength checks); the transfer pairs; the reconstruction-weight curve."""

    def train(row, flagfile, epochs, *extra):
        return Step(
            f"train/{row}",
            "train",
            lay.mnist_model_dir(row),
            command=train_command(
                flags_dir,
                flagfile,
                lay.mnist_model_dir(row),
                *([f"--epochs={epochs}"] if epochs else []),
                *extra,
                *([f"--max_train_images={budget.max_train_images}"] if budget.max_train_images else []),
                *data,
            ),
        )

    def attack(row, out_name, attacks, images, *extra):
        out = lay.mnist_robustness_dir(out_name)
        return Step(
            f"defendpp/{out_name}",
            "defendpp",
            out,
            inputs=[lay.mnist_model_dir(row) / rundir.MODEL_FILE],
            command=[
                "blurnet_tf.cli.mnist_attacks",
                f"--model={lay.mnist_model_dir(row)}",
                f"--out={out}",
                f"--attacks={','.join(attacks)}",
                f"--images={images}",
                f"--bim_steps={budget.bim_steps}",
                f"--cw_search={budget.cw_search}",
                f"--cw_steps={budget.cw_steps}",
                f"--ddn_steps={budget.ddn_steps}",
                *extra,
                *data,
            ],
        )

    curve = [(f"mnist_defendpp_rw{w:g}", w) for w in budget.reconstruction_weights]
    split = ["--mnist_split=official"] if budget.official_split else []
    steps = [train(row, row, budget.epochs, *split) for row in budget.rows]
    steps += [train(row, row, budget.paper_epochs) for row in budget.paper_rows]
    steps += [train(row, "mnist_defendpp", budget.epochs, *split, f"--reconstruction_weight={w:g}") for row, w in curve]
    everything = DEFENDPP_ATTACKS + DEFENDPP_CHECKS
    steps += [attack(row, row, everything, budget.images) for row in budget.rows]
    steps += [attack(row, row, everything, budget.paper_images or budget.images) for row in budget.paper_rows]
    for source, target in budget.transfer:
        images = budget.paper_images if target in budget.paper_rows and budget.paper_images else budget.images
        steps.append(
            attack(
                target,
                transfer_name(source, target),
                DEFENDPP_TRANSFERRED,
                images,
                f"--source_model={lay.mnist_model_dir(source)}",
            )
        )
        steps[-1].inputs.append(lay.mnist_model_dir(source) / rundir.MODEL_FILE)
    steps += [attack(row, row, ("clean", "fgsm", "bim"), budget.images) for row, _ in curve]
    return steps


def transfer_name(source, target):
    """The robustness directory of attacks made on `source` and scored on `target`."""
    return f"{target}_from_{source}"
