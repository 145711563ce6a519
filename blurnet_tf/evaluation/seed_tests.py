"""Tests across training seeds: the exact sign-flip test of a paired mean, Holm's step-down correction, and a
track bootstrap of a model's test accuracy. The fair verdict of issue 41 is read with these (pre-registered
in docs/plan-fair-verdict.md).

Sign flip (Fisher's one-sample permutation test): under H0 "the mean paired difference is δ", d_i - δ is
symmetric about 0, so every assignment of signs s ∈ {-1, +1}^n to |d_i - δ| is equally likely. With
T(s) = |Σ s_i (d_i - δ)|, the two-sided p is the share of the 2^n assignments with T(s) >= T(observed): exact,
so the rule's size is at most α for any symmetric distribution (no normality). The smallest p is 2 / 2^n:
9 seeds are needed before a Holm-corrected call over 12 cells (0.05 / 12) is possible at all.

Holm: p-values sorted ascending, p_(k) adjusted to max_{j<=k} min(1, (m - j + 1) p_(j)); the family-wise error
over the m cells is at most α.

    sign_flip_test([-12.0, -3.5, ...]) -> SignFlip(mean, p, lo, hi, seeds)   # interval: the test inverted
    holm([0.01, 0.2, 0.03]) -> [0.03, 0.2, 0.06]
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

LEVEL = 0.95
MAX_SEEDS = 20  # 2^20 sign assignments: about 6 s and 400 MB at 20 seeds (10 seeds: under a millisecond)


@dataclasses.dataclass(frozen=True)
class SignFlip:
    """The paired mean difference over seeds, its exact two-sided p against 0, and the 95% interval of the
    means δ the test does not reject (an interval of the inverted test)."""

    mean: float
    p: float
    lo: float
    hi: float
    seeds: int


@functools.lru_cache(maxsize=None)
def _signs(n: int) -> np.ndarray:
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))  # [2^n, n]
    signs.flags.writeable = False  # shared by every call with n seeds
    return signs


def _p_value(d: np.ndarray, signs: np.ndarray) -> float:
    observed = abs(d.sum())
    flipped = np.abs(signs @ d)
    return float(np.mean(flipped >= observed - 1e-9 * max(1.0, observed)))  # ties count (exactness)


def sign_flip_p(differences: Sequence[float] | np.ndarray, null: float = 0.0) -> float:
    """The exact two-sided sign-flip p of H0 "mean difference = `null`"."""
    d = _checked(differences)
    return _p_value(d - null, _signs(len(d)))


def sign_flip_test(differences: Sequence[float] | np.ndarray, level: float = LEVEL) -> SignFlip:
    """The exact sign-flip test of the paired differences (one per seed) against 0, with the `level` interval
    of the test inverted (bisection on each side of the mean; its ends are exact to 1e-6 of the spread)."""
    d = _checked(differences)
    signs = _signs(len(d))
    alpha = 1.0 - level
    mean = float(d.mean())
    spread = float(np.abs(d - mean).max()) or 1.0

    def accepted(delta: float) -> bool:
        return _p_value(d - delta, signs) > alpha

    def end(direction: float) -> float:
        step = spread
        inside, outside = mean, mean + direction * step
        while accepted(outside):  # (with few seeds nothing is rejected: the interval is the whole line)
            if step > 1e6 * spread:
                return float(direction * np.inf)
            step *= 2
            inside, outside = outside, mean + direction * step
        for _ in range(60):
            middle = (inside + outside) / 2
            inside, outside = (middle, outside) if accepted(middle) else (inside, middle)
        return float(inside)

    lo, hi = (end(-1.0), end(1.0)) if accepted(mean) else (mean, mean)
    return SignFlip(mean=mean, p=_p_value(d, signs), lo=lo, hi=hi, seeds=len(d))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    p = np.asarray(p_values, np.float64)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def track_bootstrap(
    correct_by_track: Mapping[str, Sequence[int]], n_boot: int = 2000, seed: int = 0, level: float = LEVEL
) -> tuple[float, float, float]:
    """(accuracy, lo, hi) of a test accuracy with the test split's video tracks resampled (a track's crops are
    near-duplicates, so images are not independent): {track: [correct, images]}."""
    counts = np.array([[c, n] for c, n in correct_by_track.values()], np.float64)
    if counts.size == 0 or counts[:, 1].sum() == 0:
        raise ValueError("correct_by_track: expected at least one track with images")
    drawn = np.random.default_rng(seed).integers(0, len(counts), (n_boot, len(counts)))
    picked = counts[drawn]  # [B, tracks, 2]
    replicates = picked[..., 0].sum(axis=1) / np.maximum(picked[..., 1].sum(axis=1), 1)
    lo, hi = np.quantile(replicates, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(counts[:, 0].sum() / counts[:, 1].sum()), float(lo), float(hi)


def _checked(differences: Sequence[float] | np.ndarray) -> np.ndarray:
    d = np.asarray(differences, np.float64).reshape(-1)
    if not 1 <= len(d) <= MAX_SEEDS or not np.isfinite(d).all():
        raise ValueError(f"differences: expected 1..{MAX_SEEDS} finite values (one per seed), got {d.tolist()}")
    return d
