"""Per-target and aggregate RP2 metrics, in the shape of BlurNet's tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from blurnet_tf.evaluation.metrics import attack_success_rate, l2_dissimilarity, targeted_success


def per_target_rows(
    clean_images: np.ndarray,
    clean_pred: np.ndarray,
    adversarial: np.ndarray,
    adv_pred: np.ndarray,
    targets: Sequence[int],
    lam: float,
) -> list[dict[str, Any]]:
    """One row per target: ASR (vs the clean prediction), targeted success, L2 dissimilarity, and
    which victims the sticker moved (1 per victim, for intervals over victims)."""
    return [
        {
            "lambda": float(f"{lam:g}"),
            "target": int(t),
            "asr": attack_success_rate(clean_pred, adv_pred[i]),
            "targeted": targeted_success(adv_pred[i], t),
            "l2": l2_dissimilarity(clean_images, adversarial[i]),
            "success": (np.asarray(clean_pred) != np.asarray(adv_pred[i])).astype(int).tolist(),
        }
        for i, t in enumerate(targets)
    ]


def aggregate(rows: Sequence[dict[str, Any]], true_class: int) -> dict[str, dict[str, Any]]:
    """Average and worst ASR and mean L2 over targets != true class, per lambda and best-of-lambda."""
    out = {}
    for lam in sorted({r["lambda"] for r in rows}):
        sel = [r for r in rows if r["lambda"] == lam and r["target"] != true_class]
        out[f"lambda={lam:g}"] = _summary(sel)
    by_target: dict[int, Any] = {}
    for r in rows:  # the sweep: each target's strongest lambda
        if r["target"] != true_class and (r["target"] not in by_target or r["asr"] > by_target[r["target"]]["asr"]):
            by_target[r["target"]] = r
    out["best_lambda_per_target"] = _summary(list(by_target.values()))
    return out


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    asr = np.array([r["asr"] for r in rows])
    return {
        "avg_asr": float(asr.mean()),
        "worst_asr": float(asr.max()),
        "worst_target": int(rows[int(asr.argmax())]["target"]),
        "avg_targeted": float(np.mean([r["targeted"] for r in rows])),
        "l2": float(np.mean([r["l2"] for r in rows])),
        "targets": len(rows),
    }


def converged_at(curve: Sequence[float] | np.ndarray, within: float = 2.0) -> int:
    """How many epochs an RP2 curve needs before it stays within `within` points of its last value (0: from the
    start): a run of that length would have read the same number, to `within`."""
    c = np.asarray(curve, np.float64)
    far = np.nonzero(np.abs(c - c[-1]) > within)[0]
    return int(far[-1] + 1) if far.size else 0
