"""Attacks, each a function of a model (a Keras model or any callable from images in [0, 1] to logits,
called through `logits_fn`) and images, no I/O: RP2
(white-box, transfer, low-frequency, adaptive), FGSM / BIM / PGD (cleverhans), C&W L2, DDN,
L-BFGS, and DeepFool / JSMA through ART; RP2 in expectation over viewing conditions (physical.py)."""

from blurnet_tf.attacks.attack_result import AttackResult
from blurnet_tf.attacks.autoattack_linf import autoattack, autoattack_linf  # noqa: F401  (deprecated, not in __all__)
from blurnet_tf.attacks.art_attacks import art_classifier, deepfool, jsma, random_targets
from blurnet_tf.attacks.carlini_wagner import carlini_wagner_l2
from blurnet_tf.attacks.ddn import ddn
from blurnet_tf.attacks.lbfgs import lbfgs_attack
from blurnet_tf.attacks.linf_gradient import linf_attack, madry_step
from blurnet_tf.attacks.logits_model import logits_fn
from blurnet_tf.attacks.physical import STATIONARY_GRID, Condition, PhysicalConditions, sample_views, see
from blurnet_tf.attacks.rp2 import RP2Result, low_frequency, rp2

__all__ = [
    "RP2Result",
    "low_frequency",
    "rp2",
    "PhysicalConditions",
    "Condition",
    "STATIONARY_GRID",
    "see",
    "sample_views",
    "linf_attack",
    "madry_step",
    "carlini_wagner_l2",
    "ddn",
    "lbfgs_attack",
    "art_classifier",
    "deepfool",
    "jsma",
    "random_targets",
    "logits_fn",
    "AttackResult",
    "autoattack",
]  # (autoattack_linf: deprecated, importable until 0.4.0)
