"""FGSM, BIM and PGD in L∞, from cleverhans 4 (tf2), behind one call.

    x_adv = Π_{‖x_adv − x‖∞ ≤ ε, [0,1]} (x_adv + α · sign ∇ J(f(x_adv), y)),  `steps` times

steps=1 with α = ε is FGSM (Goodfellow et al.); steps > 1 without a random start is BIM
(Kurakin et al.); with one, PGD (Madry et al.). `model` is any callable from images to logits;
Keras models run in inference mode. The result is an AttackResult, as every attack's but RP2's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

from blurnet_tf.attacks.attack_result import AttackResult, predicted, scored, settings_of
from blurnet_tf.attacks.global_state import seeded
from blurnet_tf.attacks.logits_model import logits_fn

if TYPE_CHECKING:
    import tensorflow as tf


def linf_attack(
    model: Callable[..., tf.Tensor],
    x: np.ndarray,
    *,
    eps: float,
    steps: int = 1,
    step_size: float | None = None,
    y: np.ndarray | None = None,
    rand_init: bool = False,
    seed: int | None = None,
) -> AttackResult:
    """FGSM, BIM or PGD in L∞ (cleverhans 4), chosen by `steps`, `step_size` and `rand_init`.

    One full step (steps=1, step_size ε, no random start) is FGSM; more steps are BIM, or PGD with
    a random start. Adversarial images stay in [0, 1].

    Parameters
    ----------
    model : Callable[..., tf.Tensor]
        A Keras model (run in inference mode) or any callable from images [N, H, W, C] to logits [N, classes].
    x : np.ndarray
        [N, H, W, C] images in [0, 1].
    eps : float
        The L∞ budget ε.
    steps : int
        Number of steps (1: FGSM).
    step_size : float | None
        The step α (None: ε; see madry_step).
    y : np.ndarray | None
        [N] the labels to move away from (default: the model's predictions).
    rand_init : bool
        Start from a random point in the ε-ball (PGD).
    seed : int | None
        Seeds the random start (TensorFlow's global seed, given back after the call); None: the caller's.

    Returns
    -------
    AttackResult
        [N, H, W, C] adversarial images (every one, fooling or not), success [N] (the model's prediction on
        them is not `y`, or not its prediction on `x` when y is None), the L2 norm of each successful
        perturbation (0 where it failed; the L∞ one is at most ε) and the settings (step_size resolved).
    """
    logits = logits_fn(model)
    settings = settings_of(
        "linf_attack",
        eps=eps,
        steps=steps,
        step_size=eps if step_size is None else step_size,
        rand_init=rand_init,
        seed=seed,
    )
    if steps == 1 and not rand_init and (step_size is None or step_size == eps):  # one full step: FGSM
        adv = fast_gradient_method(logits, x, eps, np.inf, clip_min=0.0, clip_max=1.0, y=y, sanity_checks=False)
    else:
        with seeded(seed if rand_init else None):  # cleverhans draws the start from TensorFlow's global seed
            adv = projected_gradient_descent(
                logits,
                x,
                eps,
                eps if step_size is None else step_size,
                steps,
                np.inf,
                clip_min=0.0,
                clip_max=1.0,
                y=y,
                rand_init=rand_init,
                sanity_checks=False,
            )
    # Scored after the attack, so that a model drawing random numbers (an EOT stand-in) is attacked as before.
    return scored(logits, x, adv.numpy(), predicted(logits, x) if y is None else y, settings=settings)


def madry_step(eps: float, steps: int) -> float:
    """Madry et al.'s PGD step size 2.5 ε / steps, at most ε.

    Capped at ε because cleverhans refuses a larger one.

    Parameters
    ----------
    eps : float
        The L∞ budget ε.
    steps : int
        Number of steps.

    Returns
    -------
    float
        min(ε, 2.5 ε / steps).
    """
    return min(eps, 2.5 * eps / steps)
