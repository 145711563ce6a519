"""build_model(defence, dataset, **params): every model from one place, with the papers' values.

LISA: the LISA-CNN with any defence (Table II, Defend++). MNIST: the small residual classifier,
for Defend++'s comparison (baseline, FGSM or PGD training, Gaussian augmentation, Defend++), or
with architecture="mnist_resnet18" the paper's ResNet-18.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from blurnet_tf.defences.adversarial_training import AdversarialTraining
from blurnet_tf.defences.blur import BlurDepthwiseConv2D
from blurnet_tf.defences.defendpp import PAPER_LOW_PASS_WEIGHT, DefendPP
from blurnet_tf.defences.regularizers import FeatureMapRegularizer
from blurnet_tf.models.lisa_cnn import cnn_model
from blurnet_tf.models.mnist_resnet import mnist_resnet
from blurnet_tf.models.mnist_resnet18 import mnist_resnet18
from blurnet_tf.paper import PAPER_ALPHA, PAPER_CONV_ALPHA
from blurnet_tf.registry.defence_params import DATASET_ARCHITECTURES, DEFENCE_PARAMS, DEFENCES


DATASETS: dict[str, Callable[..., keras.Model]] = {"lisa": cnn_model, "mnist": mnist_resnet}
# Classifiers by name; a dataset builds its DATASETS one unless another of its own is named.
ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "lisa_cnn": cnn_model,
    "mnist_resnet": mnist_resnet,
    "mnist_resnet18": mnist_resnet18,
}
# The blur and feature-map defences tap the LISA-CNN's first layer by name.
_LISA_ONLY = ("input_blur", "l1_blur", "conv", "tv", "tik_hf", "tik_pseudo")
PAPER_FGSM_EPS = {"lisa": 8 / 255, "mnist": 0.2}  # Defend++ §4.1 uses ε 0.2 on MNIST


def _blur(kernel_size, blur_kernel, blur_sigma, trainable, alpha=0.0, name=None):
    return BlurDepthwiseConv2D(
        kernel_size, init=blur_kernel or "box", sigma=blur_sigma, alpha=alpha, trainable=trainable, name=name
    )


def build_model(
    defence: str = "baseline", dataset: str = "lisa", architecture: str | None = None, **params: Any
) -> keras.Model:
    """Build an untrained model: a dataset's classifier with a defence.

    Unset (None) parameters take the paper's values (PAPER_CONV_ALPHA, PAPER_ALPHA, PAPER_FGSM_EPS,
    Defend++'s PAPER_LOW_PASS_WEIGHT); architecture None builds the dataset's default classifier (DATASETS).

    Parameters
    ----------
    defence : str
        One of DEFENCES; the blur and feature-map ones are LISA-only. Default "baseline".
    dataset : str
        "lisa" or "mnist"; default "lisa".
    architecture : str or None
        A classifier of the dataset (DATASET_ARCHITECTURES, e.g. "mnist_resnet18"); None: its default.
    **params : Any
        The defence's parameters (DEFENCE_PARAMS[defence]); None takes the paper's value.

    Returns
    -------
    keras.Model
        The untrained model (a DefendPP or AdversarialTraining wrapper for those defences).

    Raises
    ------
    ValueError
        If the defence, dataset or architecture is unknown, a LISA-only defence is asked of another
        dataset, a parameter is not the defence's, or conv's kernel_size has no paper alpha and none is given.
    """
    if defence not in DEFENCE_PARAMS:
        raise ValueError(f"unknown defence {defence!r}; choose from {', '.join(DEFENCES)}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    if architecture is not None and architecture not in DATASET_ARCHITECTURES[dataset]:
        raise ValueError(
            f"unknown {dataset} architecture {architecture!r}; choose from {', '.join(DATASET_ARCHITECTURES[dataset])}"
        )
    if dataset != "lisa" and defence in _LISA_ONLY:
        raise ValueError(f"{defence} is defined on the LISA-CNN's first layer; it has no {dataset} version")
    unknown = set(params) - set(DEFENCE_PARAMS[defence])
    if unknown:
        raise ValueError(f"{defence} does not take {sorted(unknown)}; it takes {DEFENCE_PARAMS[defence]}")
    p = {k: v for k, v in params.items() if v is not None}
    k = p.get("kernel_size", 3)
    base = ARCHITECTURES[architecture] if architecture else DATASETS[dataset]
    if defence == "baseline":
        return base()
    if defence == "defendpp":
        return DefendPP(
            base(),
            decoder=p.get("decoder", "pyramid"),
            low_pass_weight=p.get("low_pass_weight", PAPER_LOW_PASS_WEIGHT),
            reconstruction_weight=p.get("reconstruction_weight", 1.0),
            gn_sigma=p.get("gn_sigma", 0.0),
            schedule=p.get("schedule", "joint"),
            alternating_cycles=p.get("alternating_cycles", 2),
            alternating_epochs=p.get("alternating_epochs", 1),
            name="defendpp",
        )
    if defence == "fgsm_train":
        eps = p.get("fgsm_eps", PAPER_FGSM_EPS[dataset])
        return AdversarialTraining(base(), eps=eps, eps_iter=eps, nb_iter=1, rand_init=False, name="fgsm_train")
    if defence == "input_blur":
        return cnn_model(input_layers=[_blur(k, p.get("blur_kernel"), p.get("blur_sigma"), False, name="input_blur")])
    if defence == "l1_blur":
        return cnn_model(l1_layers=[_blur(k, p.get("blur_kernel"), p.get("blur_sigma"), False, name="l1_blur")])
    if defence == "conv":
        alpha = p.get("alpha", PAPER_CONV_ALPHA.get(k))
        if alpha is None:
            raise ValueError(f"conv with kernel_size={k}: the paper gives no alpha; pass alpha")
        return cnn_model(l1_layers=[_blur(k, p.get("blur_kernel"), p.get("blur_sigma"), True, alpha, name="l1_conv")])
    if defence in PAPER_ALPHA:
        extra = {
            "tik_hf": {"window": p.get("tik_window", 3)},
            "tik_pseudo": {"mode": p.get("tik_pseudo_mode", "elementwise")},
        }.get(defence, {})
        return cnn_model(
            l1_layers=[
                FeatureMapRegularizer(
                    defence, p.get("alpha", PAPER_ALPHA[defence]), extra, name=f"{defence}_regulariser"
                )
            ]
        )
    if defence == "gaussian_aug":
        # GaussianNoise is active in training only and draws fresh noise every batch.
        return base(input_layers=[keras.layers.GaussianNoise(p.get("sigma", 0.1), name="gaussian_aug")])
    return AdversarialTraining(
        base(),
        eps=p.get("pgd_eps", 8 / 255),
        eps_iter=p.get("pgd_step"),
        nb_iter=p.get("pgd_steps", 7),
        name="adv_train",
    )
