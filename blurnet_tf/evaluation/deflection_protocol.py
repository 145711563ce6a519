"""Pixel Deflection evaluated as its paper did (attacks made on the bare classifier, then
defended) and against an adaptive BPDA + EOT attacker (PGD and RP2 through the defence).

As in Prakash et al. (Table 2), accuracy is measured on images the bare classifier gets right,
so "no defence" on clean images is 100%.
"""

import dataclasses

import numpy as np

from blurnet_tf import paper

# The attacks and the defence are imported where they run: the plan reads PDBudget without TensorFlow.

EPS = paper.LINF_EPS


@dataclasses.dataclass(frozen=True)
class PDBudget:
    test_images: int = 500  # correctly classified test images attacked
    bim_steps: int = 10
    cw_steps: int = 200
    cw_search: int = 5
    deepfool_steps: int = 50  # Moosavi-Dezfooli et al.'s maximum
    deepfool_classes: int | None = None  # None: all (ART's top-k shortcut failed on our baseline)
    jsma_gamma: float = 0.145  # Papernot et al.'s largest fraction of changed features
    lbfgs_steps: int = 100  # L-BFGS-B iterations per constant (cleverhans: 1000; measured cost)
    lbfgs_search: int = 5  # constants tried per image (cleverhans' binary search steps)
    eot_samples: int = 4
    adaptive_pgd_steps: int = 20
    adaptive_rp2_targets: tuple | None = None  # None: all 17
    adaptive_rp2_epochs: int = 300
    ensemble: int = 10
    search_images: int = 300


def fgsm(model, x, y):
    """FGSM L∞ ε 8/255 on the bare classifier (cleverhans tf2)."""
    from blurnet_tf.attacks.linf_gradient import linf_attack

    return linf_attack(model, x, eps=EPS, y=y).adversarial


def non_adaptive_attacks(model, x, y, budget, seed=0, progress=None):
    """The paper's six attacks on the bare classifier: FGSM, BIM (IGSM) at ε 8/255 (cleverhans tf2),
    C&W L2 and L-BFGS (ours), DeepFool and JSMA (ART). JSMA and L-BFGS are targeted: one random
    other class per image (seeded). progress(name) is called after each attack."""
    from blurnet_tf.attacks.art_attacks import deepfool, jsma, random_targets
    from blurnet_tf.attacks.carlini_wagner import carlini_wagner_l2
    from blurnet_tf.attacks.lbfgs import lbfgs_attack
    from blurnet_tf.attacks.linf_gradient import linf_attack, madry_step

    targets = random_targets(y, model.output_shape[-1], seed)
    attacks = {
        "FGSM": lambda: fgsm(model, x, y),
        "BIM": lambda: (
            linf_attack(
                model, x, eps=EPS, steps=budget.bim_steps, step_size=madry_step(EPS, budget.bim_steps), y=y
            ).adversarial
        ),
        "C&W L2": lambda: (
            carlini_wagner_l2(model, x, y, steps=budget.cw_steps, binary_search_steps=budget.cw_search).adversarial
        ),
        "DeepFool": lambda: (
            deepfool(model, x, steps=budget.deepfool_steps, nb_grads=budget.deepfool_classes).adversarial
        ),
        "JSMA": lambda: jsma(model, x, targets, gamma=budget.jsma_gamma).adversarial,
        "L-BFGS": lambda: (
            lbfgs_attack(model, x, targets, search_steps=budget.lbfgs_search, steps=budget.lbfgs_steps).adversarial
        ),
    }
    out = {}
    for name, attack in attacks.items():
        out[name] = attack()
        if progress is not None:
            progress(name)
    return out


def defended_accuracy(predict, images, labels):
    return float(np.mean(predict(images) == labels))


def search_parameters(classifier, val_x, val_y, val_adv, grid, base):
    """The paper's linear search, one parameter at a time in the order of `grid`, on the
    validation split: the objective is the mean of clean and FGSM-attacked accuracy of the
    single-run defence. Returns (best parameters, every point tried)."""
    from blurnet_tf.defences.pixel_deflection import PixelDeflection

    best, log = dict(base), []
    for name, values in grid.items():
        scores = {}
        for v in values:
            params = {**best, name: v}
            pd = PixelDeflection(classifier, **params)
            clean, adv = (
                defended_accuracy(pd.predict_classes, val_x, val_y),
                defended_accuracy(pd.predict_classes, val_adv, val_y),
            )
            scores[v] = (clean + adv) / 2
            log.append({**params, "clean": clean, "fgsm": adv, "objective": scores[v]})
        best[name] = max(scores, key=scores.get)
    return best, log


ABLATIONS = {  # the paper's Table 3 / Table 4 columns
    "PD": {"denoiser": "none"},
    "WD": {"deflections": 0},
    "PD+WD": {},
    "JPEG": {"deflections": 0, "denoiser": "jpeg"},
    "PD+JPEG": {"denoiser": "jpeg"},
}
THRESHOLDS = {"Hard": {"threshold_mode": "hard"}, "VisuShrink": {"threshold_method": "VisuShrink"}, "BayesShrink": {}}


def evaluate(classifier, attacked, params, budget, seed=0):
    """Accuracy tables: {defence: {attack: accuracy}} for no defence, PD+WD single and Ens-n,
    the ablation and the thresholds. attacked: {attack: (images, labels)}."""
    from blurnet_tf.defences.pixel_deflection import PixelDeflection
    from blurnet_tf.evaluation.metrics import predict_classes

    configs = {
        "no defence": None,
        "PD+WD (single)": {},
        f"PD+WD (Ens-{budget.ensemble})": {"ensemble": budget.ensemble},
    }
    configs.update({f"ablation: {k}": v for k, v in ABLATIONS.items()})
    configs.update({f"threshold: {k}": v for k, v in THRESHOLDS.items()})
    table = {}
    for name, extra in configs.items():
        predict = (
            (lambda t: predict_classes(classifier, t))
            if extra is None
            else PixelDeflection(classifier, **{**params, **extra, "seed": seed}).predict_classes
        )
        table[name] = {attack: defended_accuracy(predict, x, y) for attack, (x, y) in attacked.items()}
    return table


def adaptive_pgd(classifier, x, y, params, budget):
    """PGD L∞ ε 8/255 through BPDA + EOT (gradients of the mean prediction over m defences)."""
    from blurnet_tf.attacks.linf_gradient import linf_attack, madry_step
    from blurnet_tf.defences.pixel_deflection import PixelDeflection

    pd = PixelDeflection(classifier, **params, seed=1)
    return linf_attack(
        pd.eot_model(budget.eot_samples),
        x,
        eps=EPS,
        steps=budget.adaptive_pgd_steps,
        step_size=madry_step(EPS, budget.adaptive_pgd_steps),
        y=y,
    ).adversarial


def adaptive_rp2(classifier, victims, mask, params, budget, targets):
    """RP2 (λ 0.002, rectangles) through BPDA + EOT; returns adversarial victims [T, N, ...]."""
    from blurnet_tf.attacks import rp2
    from blurnet_tf.defences.pixel_deflection import PixelDeflection

    pd = PixelDeflection(classifier, **params, seed=2)
    result = rp2(
        pd.eot_model(budget.eot_samples),
        victims,
        mask,
        targets,
        lam=paper.RP2_LAMBDA,
        epochs=budget.adaptive_rp2_epochs,
    )
    return result.adversarial[0]
