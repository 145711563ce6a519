"""AutoAttack-strength L∞ and L2 (Croce & Hein, ICML 2020) through ART 1.20: APGD-CE, APGD-T with the
DLR loss and Square, every parameter set to AutoAttack's standard version, because ART's defaults differ
(eps 0.3, eps_step 0.1, 5 random starts) and its `AutoAttack` class imports `multiprocess`, which our
pins lack. The norms are RobustBench's threat models: "Linf" (ε 8/255 on CIFAR-10) and "L2" (ε 0.5).

  APGD-CE   100 iterations, 1 start, first step 2ε; ART implements the momentum 0.75 and the step
            halving at the checkpoints;
  APGD-T    the DLR loss towards each of the `target_classes` (9) classes the clean model ranks next,
            100 iterations each;
  Square    5,000 queries, p_init 0.8 (score-based: no gradient, so masked gradients cannot hide).
FAB-T (AutoAttack's fourth) is left out: ART 1.20's FAB has no TensorFlow path. An image counts as
broken when any attack breaks it (the worst case over attacks, as AutoAttack reports).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import numpy as np
import tensorflow as tf

from blurnet_tf.art_logging import import_art
from blurnet_tf.attacks.art_attacks import art_classifier
from blurnet_tf.attacks.input_arrays import checked_images, checked_labels
from blurnet_tf.attacks.attack_result import AttackResult, settings_of
from blurnet_tf.attacks.global_state import quiet_logger, seeded
from blurnet_tf.attacks.logits_model import logits_fn
from blurnet_tf.ranges import is_count, is_number

AttackName = Literal["apgd-ce", "apgd-t", "square"]
ATTACKS = get_args(AttackName)
Norm = Literal["Linf", "L2"]
NORMS = get_args(Norm)
DEFAULT_EPS = {"Linf": 8 / 255, "L2": 0.5}  # RobustBench's CIFAR-10 budgets


def autoattack(
    model: Callable[..., tf.Tensor],
    x: np.ndarray,
    y: np.ndarray,
    *,
    norm: Norm = "Linf",
    eps: float | None = None,
    steps: int = 100,
    target_classes: int = 9,
    square_queries: int = 5000,
    attacks: Sequence[AttackName] = ATTACKS,
    seed: int = 0,
    batch_size: int | None = None,
) -> AttackResult:
    """AutoAttack-strength attack in RobustBench's threat model `norm`: APGD-CE, APGD-T (DLR loss) and Square.

    Every setting is AutoAttack's standard version (the module docstring lists them); an image counts as
    broken when any attack breaks it.

    Parameters
    ----------
    model : Callable[..., tf.Tensor]
        A Keras model or any callable from images [N, H, W, C] in [0, 1] to logits [N, classes].
    x : np.ndarray
        [N, H, W, C] images in [0, 1].
    y : np.ndarray
        [N] integer labels.
    norm : Norm
        "Linf" or "L2" (RobustBench's names).
    eps : float or None
        The budget ε in that norm; None: RobustBench's (8/255 for Linf, 0.5 for L2).
    steps : int
        Iterations of each APGD run (100).
    target_classes : int
        How many of the classes the clean model ranks next APGD-T targets, one run each (9).
    square_queries : int
        Square's query budget (5,000).
    attacks : Sequence[AttackName]
        Which of "apgd-ce", "apgd-t" and "square" to run, in that order (all three).
    seed : int
        Seeds ART's random starts and squares (NumPy's and TensorFlow's global generators, given back after).
    batch_size : int or None
        Images per ART batch (None: all at once). The attacks are per image, but their random starts are drawn
        batch by batch, so another batch size gives other (equally strong) draws.

    Returns
    -------
    AttackResult
        The first adversarial any attack found per image (the image itself where none did), success
        [N] (misclassified, read off the model), the perturbation's norm in `norm` (0 where the attack failed)
        and the settings (ε resolved).

    Raises
    ------
    ValueError
        If `norm` or an attack is unknown, or ε is not a positive number.
    """
    if norm not in NORMS:
        raise ValueError(f"norm: unknown {norm!r}; choose from {', '.join(NORMS)}")
    eps = DEFAULT_EPS[norm] if eps is None else eps
    if batch_size is not None and not (type(batch_size) is int and batch_size >= 1):
        raise ValueError(f"batch_size: expected an integer >= 1 or None, got {batch_size!r}")
    return _autoattack(
        model,
        x,
        y,
        2 if norm == "L2" else np.inf,
        eps,
        steps,
        target_classes,
        square_queries,
        attacks,
        seed,
        batch_size,
    )


def autoattack_linf(
    model: Callable[..., tf.Tensor],
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float = 8 / 255,
    steps: int = 100,
    target_classes: int = 9,
    square_queries: int = 5000,
    attacks: Sequence[AttackName] = ATTACKS,
    seed: int = 0,
) -> AttackResult:
    """Deprecated (goes in 0.4.0): `autoattack(model, x, y, norm="Linf", ...)`, the same attack and settings."""
    import warnings

    from blurnet_tf.deprecation import REMOVED_IN

    warnings.warn(
        f"autoattack_linf() is deprecated and goes in {REMOVED_IN}; use autoattack(..., norm='Linf')",
        DeprecationWarning,
        stacklevel=2,
    )
    return _autoattack(model, x, y, np.inf, eps, steps, target_classes, square_queries, attacks, seed)


def _autoattack(
    model: Callable[..., tf.Tensor],
    x: np.ndarray,
    y: np.ndarray,
    p: float,
    eps: float,
    steps: int,
    target_classes: int,
    square_queries: int,
    attacks: Sequence[AttackName],
    seed: int,
    batch_size: int | None = None,
) -> AttackResult:
    """The three attacks in the p-norm (np.inf or 2) at ε; the public functions' docstrings say the rest."""
    import_art()
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

    eps = _check_settings(p, eps, steps, target_classes, square_queries, attacks, seed)
    settings = settings_of(
        "autoattack",
        norm="L2" if p == 2 else "Linf",
        eps=eps,
        steps=steps,
        target_classes=target_classes,
        square_queries=square_queries,
        attacks=tuple(attacks),
        seed=seed,
        batch_size=batch_size,
    )
    f = logits_fn(model)

    def batch(n: int) -> int:
        return min(batch_size, n) if batch_size else n

    x = checked_images(x)
    y = checked_labels(y, len(x)).astype(np.int64)
    logits = np.asarray(f(tf.constant(x)))
    classes = logits.shape[1]
    if logits.shape != (len(x), classes) or classes < 2:
        raise ValueError(f"model: expected logits [N, classes >= 2] for {len(x)} images, got {logits.shape}")
    if y.max() >= classes:
        raise ValueError(f"y: expected classes 0..{classes - 1}, got up to {y.max()}")
    classifier = art_classifier(model, nb_classes=classes, input_shape=x.shape[1:])
    best = x.copy()
    broken = np.argmax(logits, 1) != y

    def keep(adv):
        hit = (np.argmax(np.asarray(f(tf.constant(adv))), 1) != y) & ~broken
        best[hit] = adv[hit]
        broken[hit] = True

    with seeded(seed), quiet_logger("art"):  # ART draws its random starts and squares from NumPy's global generator
        if "apgd-ce" in attacks:
            keep(
                AutoProjectedGradientDescent(
                    classifier,
                    norm=p,
                    eps=eps,
                    eps_step=2 * eps,
                    max_iter=steps,
                    nb_random_init=1,
                    batch_size=batch(len(x)),
                    loss_type="cross_entropy",
                    verbose=False,
                ).generate(x, y=np.eye(classes)[y])
            )
        if "apgd-t" in attacks:
            others = logits.copy()
            others[np.arange(len(y)), y] = -np.inf
            ranked = np.argsort(-others, axis=1)  # the other classes, most likely first
            for k in range(min(target_classes, classes - 1)):
                todo = ~broken
                if not todo.any():
                    break
                targets = ranked[:, k]
                apgd = AutoProjectedGradientDescent(
                    classifier,
                    norm=p,
                    eps=eps,
                    eps_step=2 * eps,
                    max_iter=steps,
                    targeted=True,
                    nb_random_init=1,
                    batch_size=batch(int(todo.sum())),
                    loss_type="difference_logits_ratio",
                    verbose=False,
                )
                adv = x.copy()
                adv[todo] = apgd.generate(x[todo], y=np.eye(classes)[targets[todo]])
                keep(adv)
        if "square" in attacks and (~broken).any():
            todo = ~broken
            adv = x.copy()
            adv[todo] = SquareAttack(
                classifier,
                norm=p,
                max_iter=square_queries,
                eps=eps,
                p_init=0.8,
                nb_restarts=1,
                batch_size=batch(int(todo.sum())),
                verbose=False,
            ).generate(x[todo], y=np.eye(classes)[y[todo]])
            keep(adv)
    success = np.argmax(np.asarray(f(tf.constant(best))), 1) != y
    delta = (best - x).reshape(len(x), -1)
    norm = np.abs(delta).max(axis=1) if p == np.inf else np.linalg.norm(delta, axis=1)
    return AttackResult(best, success, np.where(success, norm, 0.0).astype(np.float32), settings)


def _check_settings(
    p: float, eps: object, steps: object, target_classes: object, square_queries: object, attacks: object, seed: object
) -> float:
    """ε as a float, or one ValueError naming the setting out of its range (before any model call)."""
    if not (is_number(eps) and 0 < float(eps) and (p == 2 or float(eps) <= 1)):  # type: ignore[arg-type]
        raise ValueError(f"eps: expected a positive number{'' if p == 2 else ' <= 1 (images in [0, 1])'}, got {eps!r}")
    for name, value in (("steps", steps), ("target_classes", target_classes), ("square_queries", square_queries)):
        if not is_count(value):
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    if isinstance(attacks, str) or not isinstance(attacks, Sequence) or not attacks:
        raise ValueError(f"attacks: expected a non-empty sequence of {', '.join(ATTACKS)}, got {attacks!r}")
    unknown = set(attacks) - set(ATTACKS)
    if unknown:
        raise ValueError(f"attacks: unknown {sorted(unknown)}; choose from {', '.join(ATTACKS)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed <= 2**32 - 1:
        raise ValueError(f"seed: expected an integer in 0..{2**32 - 1}, got {seed!r}")
    return float(eps)  # type: ignore[arg-type]
