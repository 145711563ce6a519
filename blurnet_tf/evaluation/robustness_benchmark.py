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
           average and worst over targets.
Intervals: Wilson 95% over images (a single seed), or the hierarchical bootstrap over seeds, targets and
images for the sticker's average ASR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import math

import numpy as np
import tensorflow as tf

from blurnet_tf.attacks import ddn, linf_attack, logits_fn, madry_step, rp2
from blurnet_tf.evaluation import intervals

THREAT_MODELS = ("clean", "linf", "l2", "sticker")


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
              n_examples: int | None = None, linf_eps: float = 8 / 255, linf_steps: int = 50, ddn_steps: int = 100,
              rp2_epochs: int = 300, rp2_lambda: float = 0.002, name: str = "model") -> list[dict[str, Any]]:
    """Flat records, one per number: {experiment "benchmark", model, threat_model, attack, budget, seed
    (None: over every seed), target, metric, value, interval [lo, hi], images, seeds}."""
    unknown = set(threat_models) - set(THREAT_MODELS)
    if unknown:
        raise ValueError(f"threat_models: unknown {sorted(unknown)}; choose from {', '.join(THREAT_MODELS)}")
    if "sticker" in threat_models and (mask is None or targets is None):
        raise ValueError("threat_models: 'sticker' needs mask= (0/1, one image's shape) and targets= (classes)")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    for name, value, ok, expected in (
            ("linf_eps", linf_eps, 0 < linf_eps <= 1, "a radius in (0, 1]"),
            ("rp2_lambda", rp2_lambda, math.isfinite(rp2_lambda) and rp2_lambda >= 0, "a finite number >= 0"),
            *((n, v, isinstance(v, int) and v >= 1, "an integer >= 1") for n, v in
              (("linf_steps", linf_steps), ("ddn_steps", ddn_steps), ("rp2_epochs", rp2_epochs))),
            ("n_examples", n_examples, n_examples is None or (isinstance(n_examples, int) and n_examples >= 1),
             "an integer >= 1 or None")):
        if not ok:
            raise ValueError(f"{name}: expected {expected}, got {value!r}")
    x, y, _ = check_inputs(model, images, labels, mask, targets)
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
    if "linf" in threat_models:
        robust = np.ones(len(yc), bool)
        for seed in seeds:
            tf.random.set_seed(seed)
            adv = linf_attack(model, xc, eps=linf_eps, steps=linf_steps, step_size=madry_step(linf_eps, linf_steps),
                              y=yc, rand_init=True)
            robust &= predict(adv) == yc
        budget = f"eps={linf_eps:.6g}, steps={linf_steps}, restarts={len(seeds)}"
        add("linf", "pgd", budget, "robust_accuracy", robust.sum() / len(y), intervals.wilson(robust.sum(), len(y)), len(y))
        add("linf", "pgd", budget, "asr", 1 - robust.mean() if len(yc) else 0.0, intervals.wilson((~robust).sum(), len(yc)), len(yc))
    if "l2" in threat_models and len(yc):
        found = ddn(model, xc, yc, steps=ddn_steps)
        norms = np.where(found.success, found.norm, np.inf)
        add("l2", "ddn", f"steps={ddn_steps}", "median_l2", np.median(norms), images=len(yc))
        add("l2", "ddn", f"steps={ddn_steps}", "asr", found.success.mean(), intervals.wilson(found.success.sum(), len(yc)), len(yc))
    if "sticker" in threat_models and len(yc):
        _stickers(model, xc, mask, targets, seeds, rp2_epochs, rp2_lambda, add)
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
