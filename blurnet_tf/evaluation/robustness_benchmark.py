"""benchmark(): the evaluation our reports give the papers' models, for any Keras classifier (or
callable images -> logits) on the user's own data, as flat records (RobustBench's `benchmark` is the
model). The CLI (`python -m blurnet_tf.cli.benchmark`) writes the same records.

Threat models (each judged on the images the model classifies correctly, as the papers do):
  clean    accuracy on every image;
  linf     PGD L∞ (cleverhans) at `linf_eps`, Madry's step 2.5ε/steps, one random start per seed; an
           image counts as robust only if it survives every start: robust accuracy and ASR;
  l2       DDN, minimum-norm L2: the median norm that flips an image (inf where none was found) and
           the share flipped;
  sticker  RP2 (eq. 1, λ `rp2_lambda`) with `mask` towards each of `targets`, its noise seeded by each
           seed: per target the share of images whose prediction moved (the paper's ASR), with the
           average and worst over targets;
  autoattack  AutoAttack-strength L∞ at `linf_eps` (APGD-CE, APGD-T, Square; attacks.autoattack_linf),
           one run per seed, an image robust only if it survives every run: robust accuracy and ASR;
  checks   the attack-strength checks (evaluation.attack_strength): one record per check (1 held,
           0 failed) and `checks_passed`; the transfer check needs `source`, the RP2 ones `targets`
           (and `mask`).
Intervals: Wilson 95% over images (a single seed), or the hierarchical bootstrap over seeds, targets and
images for the sticker's average ASR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import math

import numpy as np
import tensorflow as tf

from blurnet_tf.attacks import autoattack_linf, ddn, linf_attack, logits_fn, madry_step, rp2
from blurnet_tf.evaluation import intervals
from blurnet_tf.evaluation.attack_strength import strength_checks

THREAT_MODELS = ("clean", "linf", "l2", "sticker", "autoattack", "checks")


def check_inputs(model, images, labels, mask=None, targets=None) -> tuple[np.ndarray, np.ndarray, int]:
    """(images float32, labels int, classes), or one ValueError naming the argument that is wrong."""
    x = np.asarray(images)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images: expected a float array [N, H, W, C], got {x.dtype} {x.shape}")
    if x.size == 0 or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("images: expected finite values in [0, 1] (divide 8-bit images by 255)")
    y = np.asarray(labels)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels: expected {len(x)} integer class indices, got {y.dtype} {y.shape}")
    try:
        out = np.asarray(logits_fn(model)(tf.constant(x[:2], tf.float32)))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's model is reported as its input mismatch
        raise ValueError(f"model: cannot be called on images shaped {x.shape[1:]} ({type(exc).__name__})") from None
    if out.ndim != 2:
        raise ValueError(f"model: expected logits [N, classes], got an output shaped {out.shape}")
    classes = out.shape[1]
    if np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("model: returns probabilities (rows sum to 1); pass the model without its softmax (logits)")
    if y.min() < 0 or y.max() >= classes:
        raise ValueError(f"labels: expected classes 0..{classes - 1}, got {y.min()}..{y.max()}")
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != x.shape[1:] or not np.isin(m, (0, 1)).all():
            raise ValueError(f"mask: expected 0 and 1 shaped like one image {x.shape[1:]}, got {m.dtype} {m.shape}")
    if targets is not None:
        t = np.atleast_1d(np.asarray(targets))
        if not np.issubdtype(t.dtype, np.integer) or t.min() < 0 or t.max() >= classes:
            raise ValueError(f"targets: expected classes 0..{classes - 1}, got {t.tolist()}")
    return x.astype(np.float32), y.astype(np.int64), classes


def benchmark(model: Any, images: np.ndarray, labels: np.ndarray, *, threat_models: Sequence[str] = ("clean", "linf", "l2"),
              targets: Sequence[int] | None = None, mask: np.ndarray | None = None, seeds: Sequence[int] = (0,),
              n_examples: int | None = None, linf_eps: float = 8 / 255, linf_steps: int = 50,
              linf_step: float | None = None, linf_random_start: bool = True, ddn_steps: int = 100,
              rp2_epochs: int = 300, rp2_lambda: float = 0.002, square_queries: int = 5000,
              autoattack_attacks: Sequence[str] = ("apgd-ce", "apgd-t", "square"), source: Any = None,
              check_rp2_epochs: int = 30, name: str = "model") -> list[dict[str, Any]]:
    """Flat records, one per number: {experiment "benchmark", model, threat_model, attack, budget, seed
    (None: over every seed), target, metric, value, interval [lo, hi], images, seeds}.

    linf_step: PGD's step (None: Madry's 2.5 ε / steps); linf_random_start False starts at the image
    (BlurNet's Table IV: step 0.01, 10 steps). autoattack_attacks: ("apgd-ce", "apgd-t") for a randomised
    defence behind an EOT stand-in (AutoAttack's "rand" version leaves Square out). source: a second model (e.g. the undefended one) that
    the `checks` transfer attack is crafted on."""
    unknown = set(threat_models) - set(THREAT_MODELS)
    if unknown:
        raise ValueError(f"threat_models: unknown {sorted(unknown)}; choose from {', '.join(THREAT_MODELS)}")
    if "sticker" in threat_models and (mask is None or targets is None):
        raise ValueError("threat_models: 'sticker' needs mask= (0/1, one image's shape) and targets= (classes)")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    for arg, value, ok, expected in (
            ("linf_eps", linf_eps, 0 < linf_eps <= 1, "a radius in (0, 1]"),
            ("linf_step", linf_step, linf_step is None or 0 < linf_step <= linf_eps, "a step in (0, linf_eps] or None"),
            ("rp2_lambda", rp2_lambda, math.isfinite(rp2_lambda) and rp2_lambda >= 0, "a finite number >= 0"),
            *((n, v, isinstance(v, int) and v >= 1, "an integer >= 1") for n, v in
              (("linf_steps", linf_steps), ("ddn_steps", ddn_steps), ("rp2_epochs", rp2_epochs),
               ("square_queries", square_queries), ("check_rp2_epochs", check_rp2_epochs))),
            ("n_examples", n_examples, n_examples is None or (isinstance(n_examples, int) and n_examples >= 1),
             "an integer >= 1 or None")):
        if not ok:
            raise ValueError(f"{arg}: expected {expected}, got {value!r}")
    x, y, classes = check_inputs(model, images, labels, mask, targets)
    if source is not None:
        try:
            shape = tuple(np.shape(logits_fn(source)(tf.constant(x[:2]))))
        except Exception as exc:  # noqa: BLE001 - reported as the source model's mismatch
            raise ValueError(f"source: cannot be called on images shaped {x.shape[1:]} ({type(exc).__name__})") from None
        if shape != (min(2, len(x)), classes):
            raise ValueError(f"source: expected logits over the model's {classes} classes, got an output shaped {shape}")
    x, y = (x[:n_examples], y[:n_examples]) if n_examples else (x, y)
    f = logits_fn(model)

    def predict(batch):
        return np.concatenate([np.argmax(f(tf.constant(batch[i:i + 256])), -1) for i in range(0, len(batch), 256)])

    records = []

    def add(threat, attack, budget, metric, value, interval=None, images=None, target=None, seed=None):
        records.append({"experiment": "benchmark", "model": name, "threat_model": threat, "attack": attack,
                        "budget": budget, "seed": seed, "target": target, "metric": metric, "value": float(value),
                        "interval": interval, "images": images, "seeds": list(seeds)})

    correct = predict(x) == y
    add("clean", "none", "", "accuracy", correct.mean(), intervals.wilson(correct.sum(), len(y)), len(y))
    xc, yc = x[correct], y[correct]
    def robust_records(threat, attack, budget, robust):
        add(threat, attack, budget, "robust_accuracy", robust.sum() / len(y), intervals.wilson(robust.sum(), len(y)), len(y))
        add(threat, attack, budget, "asr", 1 - robust.mean() if len(yc) else 0.0,
            intervals.wilson((~robust).sum(), len(yc)), len(yc))

    if "linf" in threat_models:
        step = linf_step or madry_step(linf_eps, linf_steps)
        robust = np.ones(len(yc), bool)
        for seed in (seeds if linf_random_start else seeds[:1]) if len(yc) else ():  # from the image: deterministic
            tf.random.set_seed(seed)
            adv = linf_attack(model, xc, eps=linf_eps, steps=linf_steps, step_size=step, y=yc, rand_init=linf_random_start)
            robust &= predict(adv) == yc
        starts = f"restarts={len(seeds)}" if linf_random_start else "start=image"
        robust_records("linf", "pgd", f"eps={linf_eps:.6g}, steps={linf_steps}, step={step:.4g}, {starts}", robust)
    if "autoattack" in threat_models:
        robust = np.ones(len(yc), bool)
        for seed in seeds:
            if robust.any():
                robust[robust] &= ~autoattack_linf(model, xc[robust], yc[robust], eps=linf_eps, attacks=autoattack_attacks,
                                                   square_queries=square_queries, seed=seed).success
        robust_records("autoattack", "+".join(autoattack_attacks),
                       f"eps={linf_eps:.6g}, steps=100, square_queries={square_queries}, runs={len(seeds)}", robust)
    if "l2" in threat_models and len(yc):
        found = ddn(model, xc, yc, steps=ddn_steps)
        norms = np.where(found.success, found.norm, np.inf)
        add("l2", "ddn", f"steps={ddn_steps}", "median_l2", np.median(norms), images=len(yc))
        add("l2", "ddn", f"steps={ddn_steps}", "asr", found.success.mean(), intervals.wilson(found.success.sum(), len(yc)), len(yc))
    if "sticker" in threat_models and len(yc):
        _stickers(model, xc, mask, targets, seeds, rp2_epochs, rp2_lambda, add)
    if "checks" in threat_models:
        found = strength_checks(model, x, y, eps=linf_eps, source=source, mask=mask, targets=targets,
                                rp2_epochs=check_rp2_epochs, rp2_lambda=rp2_lambda, seed=seeds[0])
        budget = f"eps={linf_eps:.6g}, rp2_epochs={check_rp2_epochs}"
        for check, held in found["checks"].items():
            if held is not None:
                add("checks", check, budget, "check_held", float(held), images=len(y))
        for metric in ("zero_gradient_fraction", "unbounded_pgd_success", "whitebox_success", "transfer_success",
                       "unrestricted_rp2_success"):
            if metric in found:
                add("checks", "rp2" if "rp2" in metric else "pgd", budget, metric, found[metric],
                    images=len(y) if metric == "zero_gradient_fraction" else found["correct"])
        for e, value in zip(found["eps_grid"], found["pgd_success"]):
            add("checks", "pgd", f"eps={e:.6g}", "pgd_success", value, images=found["correct"])
        for epochs, value in zip(found.get("rp2_epochs", ()), found.get("rp2_success", ())):
            add("checks", "rp2", f"lambda={rp2_lambda:g}, epochs={epochs}", "rp2_success", value, images=found["correct"])
        add("checks", "all", budget, "checks_passed", float(found["passed"]), images=len(y))
    return records


def _stickers(model, x, mask, targets, seeds, epochs, lam, add):
    budget = f"lambda={lam:g}, epochs={epochs}"
    success = []
    for seed in seeds:
        run = rp2(model, x, mask, list(targets), lam=lam, epochs=epochs, seed=seed)
        moved = run.predictions[0] != run.clean_predictions[None]  # [targets, images]: the paper's ASR
        success.append(moved)
        for target, row in zip(run.targets, moved):
            add("sticker", "rp2", budget, "asr", row.mean(), intervals.wilson(row.sum(), row.size), row.size, int(target), seed)
    success = np.asarray(success, np.float64)  # [seeds, targets, images]
    for statistic in ("avg_asr", "worst_asr"):
        iv = intervals.asr_interval(success, statistic)
        add("sticker", "rp2", budget, statistic, iv["mean"], [iv["lo"], iv["hi"]], success.shape[-1])
