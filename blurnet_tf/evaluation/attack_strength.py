"""Attack-strength checks for any model: is a robustness number the model's, or an attack weakened by
it? (Athalye et al., ICML 2018, §3.1 and §5; Carlini et al., "On evaluating adversarial robustness",
2019, §4-5). Each check is a yes/no with the numbers behind it:

  gradients_nonzero   the first step's input gradient is finite everywhere and not all zero on
                      more than 99% of the images (masked or shattered gradients show up here);
  unbounded_pgd       PGD over the whole [0, 1] box (ε = 1) fools ≥ 99% of the correctly classified images;
  monotone_eps        PGD's success does not fall as ε grows along `eps_grid` (one image of slack: the
                      random starts differ per ε);
  transfer_weaker     PGD crafted on `source` and scored on the model succeeds no more often than white-box
                      PGD at the same ε (one image of slack); skipped without a source;
  unrestricted_rp2    RP2 with λ = 0 and the whole image as its mask moves ≥ 99% of the predictions
                      (needs `targets`);
  monotone_rp2        RP2 (λ `rp2_lambda`, `mask`) moves no fewer predictions after `rp2_epochs` than
                      after a third of them (one image per target of slack; needs `mask` and `targets`).

`rp2_transform` / `rp2_extra_loss` check an adaptive RP2 instead of the plain one (BlurNet's Table III /
V: the low-frequency transform of eq. 8, a regulariser of eq. 9-11 added to the attack loss); both RP2
checks then run that attack. `rp2_physical` checks RP2 in expectation over viewing conditions (issue 44):
both RP2 checks run it, and read its success on fresh views of each image, clean and adversarial alike.

Success is "the prediction moved off the label" for PGD and "moved off the clean prediction" for RP2
(the paper's ASR), over the (target, image) pairs whose clean prediction is not the target already.
Thresholds are fixed here, not per model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from blurnet_tf.attacks import PhysicalConditions, linf_attack, logits_fn, rp2, sample_views
from blurnet_tf.evaluation.input_checks import check_inputs, check_source
from blurnet_tf.ranges import is_count, is_number
from blurnet_tf.evaluation.metrics import predict_classes

ZERO_GRADIENT_MAX = 0.01  # share of images whose input gradient is exactly zero
UNBOUNDED_SUCCESS_MIN = 0.99  # share an unbounded attack must fool
CHECKS = ("gradients_nonzero", "unbounded_pgd", "monotone_eps", "transfer_weaker", "unrestricted_rp2", "monotone_rp2")


def _moved(run) -> float | None:
    """RP2's share of (target, image) pairs whose prediction moved, pairs already at their target left out
    (None: no pair left)."""
    clean = run.clean_predictions[None]
    pairs = run.targets[:, None] != clean
    return float(np.mean((run.predictions[0] != clean)[pairs])) if pairs.any() else None


def _moved_in_view(model, run, x: np.ndarray, physical: PhysicalConditions, seed: int) -> float | None:
    """_moved, read on views: each adversarial image and its clean image seen under the same k conditions,
    drawn with a seed the attack never used."""
    view_seed = tf.constant([seed + 1, 2**30], tf.int32)  # the attack's are (seed, epoch < 2**30)
    k, (targets, n) = physical.samples, run.adversarial.shape[1:3]
    clean = predict_classes(model, sample_views(tf.constant(x), physical, view_seed).numpy()).reshape(k, 1, n)
    adversarial = run.adversarial[0].reshape(targets * n, *x.shape[1:])  # each target's copy: the same views
    seen = predict_classes(model, sample_views(adversarial, physical, view_seed, copies=targets).numpy())
    keep = np.broadcast_to(run.targets[:, None] != run.clean_predictions[None], (k, targets, n))
    moved = seen.reshape(k, targets, n) != clean
    return float(np.mean(moved[keep])) if keep.any() else None


def _gradients(f, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Each image's input gradient of its cross-entropy; None where none reaches the input (rounding)."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant(y), logits=f(xt))
    grad = tape.gradient(loss, xt)
    return None if grad is None else np.asarray(grad)


def strength_checks(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float = 8 / 255,
    eps_grid: Sequence[float] = (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255),
    steps: int = 50,
    source: Any = None,
    mask: np.ndarray | None = None,
    targets: Sequence[int] | None = None,
    rp2_epochs: int = 30,
    rp2_lambda: float = 0.002,
    seed: int = 0,
    rp2_transform: Callable[[tf.Tensor], tf.Tensor] | None = None,
    rp2_extra_loss: Callable[[tf.Tensor], tf.Tensor] | None = None,
    rp2_physical: PhysicalConditions | None = None,
) -> dict[str, Any]:
    """Run the attack-strength checks (CHECKS, described in the module docstring) on a model.

    PGD takes `steps` steps of 2.5 ε / steps from a random start. Thresholds are fixed (ZERO_GRADIENT_MAX,
    UNBOUNDED_SUCCESS_MIN, one image of slack); without a correctly classified image no attack check runs.

    Parameters
    ----------
    model : Any
        A Keras model or a callable from images [N, H, W, C] to logits [N, classes].
    x : np.ndarray
        Images [N, H, W, C] in [0, 1].
    y : np.ndarray
        Integer labels [N].
    eps : float
        ε of the transfer_weaker comparison; default 8/255.
    eps_grid : sequence of float
        The rising ε of monotone_eps; default 1/255, 2/255, 4/255, 8/255, 16/255.
    steps : int
        PGD's steps; default 50.
    source : Any
        Like `model`, the transfer attack's source (images [N, H, W, C] to logits); None skips transfer_weaker.
    mask : np.ndarray or None
        RP2's 0/1 sticker mask [H, W, C] of monotone_rp2; None skips that check.
    targets : sequence of int or None
        RP2's target classes; None skips both RP2 checks.
    rp2_epochs : int
        RP2's epochs (monotone_rp2 compares a third of them with all); default 30.
    rp2_lambda : float
        RP2's λ of monotone_rp2 (unrestricted_rp2 uses λ = 0); default 0.002.
    seed : int
        Seed of PGD's random starts and RP2's noise; default 0.
    rp2_transform : callable or None
        An adaptive RP2's map of the masked noise [L, T, H, W, C] (BlurNet's Table III / V: the
        low-frequency transform of eq. 8); both RP2 checks then run that attack.
    rp2_extra_loss : callable or None
        A scalar of the first-layer maps [L*T*N, H', W', K] added to the RP2 loss (a regulariser of
        eq. 9-11; needs a Keras model); both RP2 checks then run that attack.
    rp2_physical : PhysicalConditions or None
        RP2 in expectation over viewing conditions (issue 44); both RP2 checks then run that attack and read
        its success on views drawn afresh from the same conditions (the clean image under the same view
        as the reference), not on the photographs.

    Returns
    -------
    dict
        {"checks": {name: True / False / None (not run)}, "passed": all run checks held, "images",
        "correct", and the measured numbers: zero_gradient_fraction, eps_grid, pgd_success,
        unbounded_pgd_success, whitebox_success / transfer_success, unrestricted_rp2_success,
        rp2_epochs / rp2_success, where run}.

    Raises
    ------
    ValueError
        Naming the argument, if x, y, mask, targets, model or source do not fit, or a number is out of
        its range (eps and eps_grid finite and > 0, steps and rp2_epochs integers >= 1, rp2_lambda >= 0).

    References
    ----------
    Athalye et al., ICML 2018, §3.1 and §5; Carlini et al., "On evaluating adversarial robustness", 2019, §4-5.
    """
    for arg, value, ok, expected in (
        ("eps", eps, (is_number(eps) and eps > 0), "a finite number > 0"),
        (
            "eps_grid",
            eps_grid,
            len(eps_grid) > 0 and all((is_number(e) and e > 0) for e in eps_grid),
            "finite numbers > 0",
        ),
        ("steps", steps, is_count(steps), "an integer >= 1"),
        ("rp2_epochs", rp2_epochs, is_count(rp2_epochs), "an integer >= 1"),
        (
            "rp2_lambda",
            rp2_lambda,
            (is_number(rp2_lambda) and rp2_lambda > 0) or rp2_lambda == 0,
            "a finite number >= 0",
        ),
    ):
        if not ok:  # before any work: steps=0 would divide by zero, a negative ε "pass"
            raise ValueError(f"{arg}: expected {expected}, got {value!r}")
    x, y, classes = check_inputs(model, x, y, mask, targets, constant_ok=True)  # flagged by the checks below
    if source is not None:
        check_source(source, x, classes)
    f = logits_fn(model)
    out: dict[str, Any] = {"images": int(len(y))}
    checks: dict[str, bool | None] = dict.fromkeys(CHECKS)

    grads = _gradients(f, x, y)
    reaches = grads is not None
    grads = (np.zeros_like(x) if grads is None else grads).reshape(len(x), -1)
    out["zero_gradient_fraction"] = float(np.mean(np.abs(grads).max(axis=1) == 0))
    checks["gradients_nonzero"] = bool(np.isfinite(grads).all() and out["zero_gradient_fraction"] < ZERO_GRADIENT_MAX)

    correct = predict_classes(model, x) == y
    out["correct"] = int(correct.sum())
    xc, yc = x[correct], y[correct]
    slack = 1.0 / max(len(yc), 1)

    def pgd_success(e, on=model):
        if on is model and not reaches:  # no gradient reaches the input: PGD cannot move the images
            return 0.0
        adv = linf_attack(
            on, xc, eps=e, steps=steps, step_size=min(e, 2.5 * e / steps), y=yc, rand_init=True, seed=seed
        ).adversarial
        return float(np.mean(predict_classes(model, adv) != yc))  # scored on `model`, whichever model attacked

    out["eps_grid"], out["pgd_success"] = [float(e) for e in eps_grid], []
    if not len(yc):  # no correctly classified image: nothing to attack, every attack check is "not run"
        return {**out, "checks": checks, "passed": checks["gradients_nonzero"]}
    out["unbounded_pgd_success"] = pgd_success(1.0)
    checks["unbounded_pgd"] = out["unbounded_pgd_success"] >= UNBOUNDED_SUCCESS_MIN
    out["pgd_success"] = [pgd_success(e) for e in out["eps_grid"]]
    checks["monotone_eps"] = all(b >= a - slack for a, b in zip(out["pgd_success"], out["pgd_success"][1:]))
    if source is not None:
        out["whitebox_success"], out["transfer_success"] = pgd_success(eps), pgd_success(eps, on=source)
        checks["transfer_weaker"] = out["transfer_success"] <= out["whitebox_success"] + slack
    if targets is not None:
        targets = [int(t) for t in targets]
        adaptive = {"transform": rp2_transform, "extra_loss": rp2_extra_loss, "physical": rp2_physical}
        whole = rp2(
            model, xc, np.ones(x.shape[1:], np.float32), targets, lam=0.0, epochs=rp2_epochs, seed=seed, **adaptive
        )
        moved = _moved if rp2_physical is None else lambda run: _moved_in_view(model, run, xc, rp2_physical, seed)
        out["unrestricted_rp2_success"] = moved(whole)
        if out["unrestricted_rp2_success"] is not None:  # None: every image is already at every target
            checks["unrestricted_rp2"] = out["unrestricted_rp2_success"] >= UNBOUNDED_SUCCESS_MIN
        if mask is not None:
            short, full = max(1, rp2_epochs // 3), rp2_epochs
            out["rp2_epochs"] = [short, full]
            out["rp2_success"] = []
            for epochs in (short, full):
                run = rp2(model, xc, mask, targets, lam=rp2_lambda, epochs=epochs, seed=seed, **adaptive)
                out["rp2_success"].append(moved(run))
            if None not in out["rp2_success"]:
                checks["monotone_rp2"] = out["rp2_success"][1] >= out["rp2_success"][0] - slack
    out["checks"] = {k: (None if v is None else bool(v)) for k, v in checks.items()}
    out["passed"] = all(v for v in out["checks"].values() if v is not None)
    return out
