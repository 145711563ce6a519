"""The Defend++ paper's optimiser (§4.1, MNIST): SGD, momentum 0.9, weight decay 5e-4, batch 256,
learning rate 0.01 divided by 10 every 100 epochs up to 250.

Weight decay is PyTorch's (the paper's code base): `wd * w` is added to the gradient before the
momentum update, i.e. an L2 term (wd / 2) ||w||² in the loss, on every trainable variable
(biases, batch-norm scales and a Defend++ decoder included, as `torch.optim.SGD(model.parameters(),
weight_decay=5e-4)` does). Keras' own `weight_decay` argument is decoupled (w -= lr * wd * w after
the step, outside the momentum), which at momentum 0.9 decays about 10x less; L2 kernel
regularisers would miss the other variables and change the reported loss. Hence `CoupledSGD`.
Keras' momentum form (v = m v - lr g; w += v) equals PyTorch's (b = m b + g; w -= lr b) while the
rate is constant; after a drop PyTorch rescales the whole buffer at once, Keras within ~10 steps.

`PaperStepDecay` keeps the schedule's shape for any epoch budget E: the rate divides by 10 after 40%
and again after 80% of the training steps (epochs 100 and 200 of the paper's 250). Counting in steps,
not whole epochs, keeps the 40 / 40 / 20 shape for budgets a CPU affords (E = 1 or 3), where whole
epochs would give 0 / 100 / 0 or 33 / 33 / 33.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PAPER_EPOCHS = 250
PAPER_DROPS = (100, 200)  # epochs at which the paper divides the rate by 10


def drop_steps(epochs: int, steps_per_epoch: int) -> tuple[int, int]:
    """The 0-based steps from which the rate is divided by 10, then by 100."""
    first, second = (round(epochs * steps_per_epoch * d / PAPER_EPOCHS) for d in PAPER_DROPS)
    return first, second


@keras.saving.register_keras_serializable("blurnet_tf")
class PaperStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """initial, initial/10 from step drop_steps(E, S)[0], initial/100 from drop_steps(E, S)[1]
    (S steps an epoch; the optimizer's step count is the step)."""

    def __init__(self, initial_learning_rate: float, steps_per_epoch: int, epochs: int, factor: float = 0.1) -> None:
        self.initial_learning_rate, self.factor = float(initial_learning_rate), float(factor)
        self.steps_per_epoch, self.epochs = int(steps_per_epoch), int(epochs)
        if self.steps_per_epoch < 1 or self.epochs < 1:
            raise ValueError(f"steps_per_epoch and epochs must be >= 1, got {steps_per_epoch}, {epochs}")

    def rate_at_step(self, step: int) -> float:
        return self.initial_learning_rate * self.factor ** sum(step >= d for d in self.drops)

    @property
    def drops(self) -> tuple[int, int]:
        return drop_steps(self.epochs, self.steps_per_epoch)

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "int64")
        drops = sum(ops.cast(ops.greater_equal(step, d), "float32") for d in self.drops)
        return self.initial_learning_rate * ops.power(ops.cast(self.factor, "float32"), drops)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "factor": self.factor,
        }


@keras.saving.register_keras_serializable("blurnet_tf")
class CoupledSGD(keras.optimizers.SGD):
    """keras.optimizers.SGD with PyTorch-style (coupled) weight decay `coupled_weight_decay`."""

    def __init__(self, learning_rate: Any = 0.01, coupled_weight_decay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.coupled_weight_decay = float(coupled_weight_decay)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.coupled_weight_decay:
            gradient = ops.add(
                ops.cast(gradient, variable.dtype),
                ops.multiply(ops.cast(self.coupled_weight_decay, variable.dtype), variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "coupled_weight_decay": self.coupled_weight_decay}


def paper_sgd(learning_rate: Any, momentum: float = 0.9, weight_decay: float = 5e-4) -> CoupledSGD:
    """The paper's optimiser around a rate or schedule (the paper: 0.01 under PaperStepDecay)."""
    return CoupledSGD(learning_rate, coupled_weight_decay=weight_decay, momentum=momentum)
