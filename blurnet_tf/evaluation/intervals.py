"""Intervals for numbers that depend on training seeds and on the 17-target / 40-victim sample.

A hierarchical percentile bootstrap (numpy): each replicate draws the seeds with replacement,
then, within each drawn seed, the targets and the victims with replacement (victims are drawn
once per seed and shared by its targets, as the attack shares them). The statistic is computed
per seed and averaged over the drawn seeds. A paired comparison draws the same seeds, targets
and victims for both rows, so its interval is on the difference itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

N_BOOT = 2000
LEVEL = 0.95
STATISTICS = {
    "avg_asr": lambda asr: asr.mean(axis=-1),  # asr: [..., targets]
    "worst_asr": lambda asr: asr.max(axis=-1),  # the bootstrap of a max leans low: read its interval as such
}


def _draw(n_seeds, n_targets, n_victims, n_boot, rng):
    seeds = rng.integers(0, n_seeds, (n_boot, n_seeds))
    targets = rng.integers(0, n_targets, (n_boot, n_seeds, n_targets))
    victims = rng.integers(0, n_victims, (n_boot, n_seeds, n_victims))
    return seeds, targets, victims


def _replicates(success, statistic, draws):
    """success [S, T, V] -> the statistic averaged over drawn seeds, one value per replicate [B]."""
    seeds, targets, victims = draws
    picked = success[seeds]  # [B, S, T, V]
    picked = np.take_along_axis(picked, targets[..., None], axis=2)  # targets within each seed
    picked = np.take_along_axis(picked, victims[:, :, None, :], axis=3)  # victims within each seed
    return STATISTICS[statistic](picked.mean(axis=-1)).mean(axis=-1)


def _interval(values, level=LEVEL):
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def asr_interval(
    success: np.ndarray, statistic: str = "avg_asr", n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, Any]:
    """{mean, lo, hi, seeds} of a row's ASR statistic; success: [seeds, targets, victims] of 0/1."""
    success = np.asarray(success, np.float64)
    n_seeds, n_targets, n_victims = success.shape
    draws = _draw(n_seeds, n_targets, n_victims, n_boot, np.random.default_rng(seed))
    estimate = float(STATISTICS[statistic](success.mean(axis=-1)).mean())
    lo, hi = _interval(_replicates(success, statistic, draws))
    return {"mean": estimate, "lo": lo, "hi": hi, "seeds": int(success.shape[0])}


def paired_difference(
    success_a: np.ndarray, success_b: np.ndarray, statistic: str = "avg_asr", n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, float]:
    """{mean, lo, hi} of statistic(a) - statistic(b) with the same seeds, targets and victims drawn."""
    return paired_contrast([success_a, success_b], [1, -1], statistic, n_boot, seed)


def paired_contrast(
    successes: Sequence[np.ndarray],
    weights: Sequence[float],
    statistic: str = "avg_asr",
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, float]:
    """{mean, lo, hi} of sum_i w_i statistic(success_i), every row drawn with the same seeds, targets
    and victims (e.g. [lowfreq_a, whitebox_a, lowfreq_b, whitebox_b] with [1, -1, -1, 1])."""
    arrays = [np.asarray(a, np.float64) for a in successes]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"paired rows need the same seeds, targets and victims: {[a.shape for a in arrays]}")
    n_seeds, n_targets, n_victims = arrays[0].shape
    draws = _draw(n_seeds, n_targets, n_victims, n_boot, np.random.default_rng(seed))
    replicates = sum(w * _replicates(a, statistic, draws) for a, w in zip(arrays, weights))
    estimate = float(sum(w * STATISTICS[statistic](a.mean(axis=-1)).mean() for a, w in zip(arrays, weights)))
    lo, hi = _interval(replicates)
    return {"mean": estimate, "lo": lo, "hi": hi}


def values_interval(values: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """{mean, lo, hi, seeds} of a mean over [seeds, items] (e.g. L2 per target): seeds, then items drawn."""
    v = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, v.shape[0], (n_boot, v.shape[0]))
    items = rng.integers(0, v.shape[1], (n_boot, v.shape[0], v.shape[1]))
    replicates = np.take_along_axis(v[seeds], items, axis=2).mean(axis=(1, 2))
    lo, hi = _interval(replicates)
    return {"mean": float(v.mean()), "lo": lo, "hi": hi, "seeds": int(v.shape[0])}


def accuracy_interval(
    accuracies: Sequence[float] | np.ndarray, n_images: int, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, Any]:
    """{mean, lo, hi, seeds} of a per-seed accuracy measured on n_images: seeds are drawn with
    replacement and each drawn accuracy is redrawn as Binomial(n_images, acc) / n_images (the test
    images' sampling)."""
    acc = np.asarray(accuracies, np.float64)
    rng = np.random.default_rng(seed)
    drawn = acc[rng.integers(0, len(acc), (n_boot, len(acc)))]
    replicates = (rng.binomial(n_images, drawn) / n_images).mean(axis=1)
    lo, hi = _interval(replicates)
    return {"mean": float(acc.mean()), "lo": lo, "hi": hi, "seeds": int(len(acc))}


def wilson(hits: int, n: int) -> list[float]:
    """[lo, hi] of the Wilson 95% interval of hits / n (scipy); NaNs for n = 0."""
    from scipy import stats

    if n == 0:
        return [float("nan"), float("nan")]
    ci = stats.binomtest(int(hits), int(n)).proportion_ci(confidence_level=LEVEL, method="wilson")
    return [float(ci.low), float(ci.high)]


def verdict(interval: dict[str, Any], claimed_sign: float) -> str:
    """'held' when the interval lies wholly on the claimed side of 0 (claimed_sign -1: below),
    'not held' when wholly on the other side, else 'inconclusive'."""
    lo, hi = interval["lo"], interval["hi"]
    if (claimed_sign < 0 and hi < 0) or (claimed_sign > 0 and lo > 0):
        return "held"
    if (claimed_sign < 0 and lo > 0) or (claimed_sign > 0 and hi < 0):
        return "not held"
    return "inconclusive"


def agrees(interval: dict[str, Any], value: float | None) -> bool:
    """Whether a paper's number lies inside our interval."""
    return value is not None and interval["lo"] <= value <= interval["hi"]
