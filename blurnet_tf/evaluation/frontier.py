"""Robustness at a fixed legit accuracy, read off each seed's accuracy-robustness curve, and the
paired difference between two curves (a defence along its strength knob, the baseline along its
training).

A curve of one seed is P models: their legit accuracies [P] and the RP2 successes [P, targets,
victims]. Its ASR at accuracy `a` is the linear interpolation between the two models whose
accuracies bracket `a` (models sorted by accuracy; no extrapolation: outside the curve's range it
is undefined, and so it is inside a gap wider than MAX_GAP between neighbouring models: a defence whose
accuracy falls off a cliff, say from 95% to a collapsed 14%, has no model near 85%, and a line drawn
across the cliff is not a measurement). The interval is the hierarchical bootstrap of `evaluation.intervals`: each
replicate
draws seeds, then targets and victims within each seed, the same draws for both curves (the same
seed's models share the RP2 seed, the targets and the victims), recomputes each model's statistic
and interpolates again. The models' accuracies are kept fixed (1,002 test images: their own
sampling error, about ±0.5 point at 97%, is not in the interval).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from blurnet_tf.evaluation.intervals import LEVEL, N_BOOT, STATISTICS

MAX_GAP = 0.10  # widest accuracy gap between neighbouring models that is interpolated across


def interpolation_weights(accuracies: np.ndarray, at: np.ndarray, max_gap: float = MAX_GAP) -> np.ndarray:
    """[P, K] weights w with sum_p w[p, k] f[p] = f interpolated at at[k] along the points sorted by
    accuracy (models of equal accuracy share their weight); a column of NaN where at[k] lies outside
    [min, max] of the accuracies or between two neighbouring models more than `max_gap` apart."""
    acc = np.asarray(accuracies, np.float64)
    at = np.atleast_1d(np.asarray(at, np.float64))
    ranked, which, ties = np.unique(acc, return_inverse=True, return_counts=True)  # tied models share equally
    per_value = np.stack([np.interp(at, ranked, np.eye(len(ranked))[:, j]) for j in range(len(ranked))])
    weights = per_value[which] / ties[which][:, None]
    right = np.clip(np.searchsorted(ranked, at), 1, max(len(ranked) - 1, 1))
    gap = ranked[right] - ranked[right - 1] if len(ranked) > 1 else np.zeros_like(at)
    weights[:, (at < acc.min()) | (at > acc.max()) | ((gap > max_gap) & ~np.isin(at, ranked))] = np.nan
    return weights


def _statistic(success: np.ndarray, statistic: str) -> np.ndarray:
    """[..., T, V] of 0/1 -> [...]: the per-model statistic over targets (mean over victims first)."""
    return STATISTICS[statistic](success.mean(axis=-1))


def _curve_values(success, weights, statistic):
    """success [S, P, T, V], weights [S, P, K] -> [S, K]."""
    return np.einsum("sp,spk->sk", _statistic(success, statistic), weights)


def _replicates(curves, weights, draws, statistic, chunk=200):
    """[B, K] of sum_i sign_i * mean over drawn seeds of curve_i at each accuracy."""
    seeds, targets, victims = draws
    out = []
    for b in range(0, len(seeds), chunk):
        s, t, v = seeds[b : b + chunk], targets[b : b + chunk], victims[b : b + chunk]
        total = 0.0
        for (success, sign), w in zip(curves, weights):
            picked = success[s]  # [b, S, P, T, V]
            picked = np.take_along_axis(picked, t[:, :, None, :, None], axis=3)
            picked = np.take_along_axis(picked, v[:, :, None, None, :], axis=4)
            stat = _statistic(picked, statistic)  # [b, S, P]
            total = total + sign * np.einsum("bsp,bspk->bk", stat, w[s]) / s.shape[1]
        out.append(total)
    return np.concatenate(out)


def contrast_at(
    curves: list[tuple[np.ndarray, np.ndarray, float]],
    at,
    statistic: str = "avg_asr",
    n_boot: int = N_BOOT,
    seed: int = 0,
    max_gap: float = MAX_GAP,
    min_seeds: int | None = None,
) -> list[dict[str, Any] | None]:
    """For each accuracy in `at`: {mean, lo, hi, seeds} of sum_i sign_i * (curve i's statistic at that
    accuracy, averaged over the seeds whose every curve reaches it), or None where fewer than
    `min_seeds` seeds do (default: all of them).

    curves: (success [S, P_i, T, V] of 0/1, accuracies [S, P_i], sign); every curve has the same S,
    T and V (paired: seed s of each curve used RP2 seed s, the same targets and victims)."""
    arrays = [(np.asarray(s, np.float64), sign) for s, _, sign in curves]
    shapes = {(a.shape[0],) + a.shape[2:] for a, _ in arrays}
    if len(shapes) != 1:
        raise ValueError(f"paired curves need the same seeds, targets and victims: {sorted(shapes)}")
    at = np.atleast_1d(np.asarray(at, np.float64))
    weights = [
        np.stack([interpolation_weights(a, at, max_gap) for a in np.asarray(acc, np.float64)]) for _, acc, _ in curves
    ]  # [S, P_i, K] each
    reached = ~np.any([np.isnan(w).any(axis=1) for w in weights], axis=0)  # [S, K]
    n_seeds, _, n_targets, n_victims = arrays[0][0].shape
    need = n_seeds if min_seeds is None else min_seeds
    out: list[dict[str, Any] | None] = []
    for k in range(len(at)):
        seeds = np.flatnonzero(reached[:, k])
        if len(seeds) < need or not len(seeds):
            out.append(None)
            continue
        w = [np.nan_to_num(wi[seeds][:, :, k : k + 1]) for wi in weights]
        used = [np.flatnonzero(np.any(wi != 0, axis=(0, 2))) for wi in w]  # at most two models a seed weigh in
        picked = [(a[seeds][:, u], sign) for (a, sign), u in zip(arrays, used)]
        w = [wi[:, u] for wi, u in zip(w, used)]
        estimate = sum(sign * _curve_values(a, wi, statistic).mean(axis=0) for (a, sign), wi in zip(picked, w))
        rng = np.random.default_rng(seed)  # the same draws as evaluation.intervals for the same seeds
        draws = (
            rng.integers(0, len(seeds), (n_boot, len(seeds))),
            rng.integers(0, n_targets, (n_boot, len(seeds), n_targets)),
            rng.integers(0, n_victims, (n_boot, len(seeds), n_victims)),
        )
        lo, hi = np.quantile(_replicates(picked, w, draws, statistic)[:, 0], [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
        out.append({"mean": float(estimate[0]), "lo": float(lo), "hi": float(hi), "seeds": int(len(seeds))})
    return out


def curve_at(success, accuracies, at, statistic="avg_asr", n_boot=N_BOOT, seed=0, max_gap=MAX_GAP, min_seeds=None):
    """One curve's statistic at each accuracy of `at` with its interval (None where not reached)."""
    return contrast_at([(success, accuracies, 1.0)], at, statistic, n_boot, seed, max_gap, min_seeds)


def paired_difference_at(
    defence, baseline, at, statistic="avg_asr", n_boot=N_BOOT, seed=0, max_gap=MAX_GAP, min_seeds=None
):
    """defence − baseline at each accuracy of `at`; each a (success [S, P, T, V], accuracies [S, P])."""
    return contrast_at([(*defence, 1.0), (*baseline, -1.0)], at, statistic, n_boot, seed, max_gap, min_seeds)
