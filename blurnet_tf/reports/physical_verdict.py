"""The physical threat model's verdict (issue 44) as data: the stationary-test records of the `physical` profile
turned into one success rate per model and sticker, cells against the baseline and a verdict per family. No I/O.

A model's success is the share of its right victims (classified as stop in the plain photograph) whose prediction
under a grid condition differs from the clean sign's under it, averaged over the held-out grid's conditions and the
targets. A cell is one row and one sticker (digital, EOT) against the comparator (the baseline) under the same seeds:
the paired difference over seeds, a two-sided paired t-test (scipy; exact for normal differences, and with 6 seeds
the exact sign-flip test could not reach Holm's level at all), Holm's correction over the BlurNet families' EOT
cells (the physical threat), at ALPHA. A family is held when its EOT cell is below 0, not held when above, else
inconclusive; the digital cells and the other rows are shown with their uncorrected p.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats

from blurnet_tf.evaluation.seed_tests import holm

EXPERIMENT = "physical_stationary"
ALPHA = 0.05
MIN_SEEDS = 3  # fewer: a cell is shown, never called
DECIDING_STICKER = "eot"
BLURNET_ROWS = ("conv_3", "conv_5", "conv_7", "tv_1e-4", "tv_1e-5", "tik_hf", "tik_pseudo")


@dataclasses.dataclass(frozen=True)
class StickerPoint:
    """One model's sticker on the grid (percentages in points)."""

    row: str
    seed: int
    sticker: str  # digital / eot
    success: float  # mean over conditions, targets and right victims
    by_condition: dict[str, float]
    on_photographs: float | None  # the same sticker on the plain photographs (RP2's own score, right victims)
    legit_accuracy: float
    victims_right: int


@dataclasses.dataclass(frozen=True)
class PhysicalCell:
    row: str
    sticker: str
    seeds: tuple[int, ...]
    success: float
    comparator_success: float
    mean: float  # row - comparator, points
    lo: float  # the paired t interval, 95%
    hi: float
    p: float
    p_holm: float | None = None  # None: not among the deciding cells
    call: str = "none"  # below / above / none (deciding cells), "shown" (the rest)


@dataclasses.dataclass(frozen=True)
class PhysicalVerdict:
    row: str
    verdict: str
    why: str


def _bits(text: str | None) -> np.ndarray:
    return np.array([c == "1" for c in text or ""], bool)


def points(records: Iterable) -> list[StickerPoint]:
    """Every (row, seed, sticker) of the study from its flat records."""
    by_model: dict[tuple[str, int], list] = defaultdict(list)
    for r in records:
        if r.experiment == EXPERIMENT:
            by_model[(r.model, r.seed)].append(r)
    out = []
    for (row, seed), rows in sorted(by_model.items()):
        single = {r.metric: r for r in rows if r.variant is None}
        right = _bits(single["victims_right"].success)
        if not right.any():
            continue  # no victim to move: no success rate
        for sticker in sorted({r.variant.split("/", 1)[0] for r in rows if r.variant}):
            moved: dict[str, list[float]] = defaultdict(list)
            photos = []
            for r in rows:
                if r.variant and r.variant.split("/", 1)[0] == sticker and r.metric == "moved":
                    moved[r.variant.split("/", 1)[1]].append(float(_bits(r.success)[right].mean()))
                elif r.variant == sticker and r.metric == "asr_photographs":
                    photos.append(float(_bits(r.success)[right].mean()))
            by_condition = {c: 100 * float(np.mean(v)) for c, v in moved.items()}
            out.append(
                StickerPoint(
                    row,
                    seed,
                    sticker,
                    float(np.mean(list(by_condition.values()))),
                    by_condition,
                    100 * float(np.mean(photos)) if photos else None,
                    100 * single["legit_accuracy"].value,
                    int(right.sum()),
                )
            )
    return out


def cells(found: Sequence[StickerPoint], comparator: str = "baseline") -> list[PhysicalCell]:
    """Each row and sticker against the comparator over their shared seeds; Holm over the BlurNet EOT cells."""
    index = {(p.row, p.sticker, p.seed): p for p in found}
    out = []
    for row, sticker in sorted({(p.row, p.sticker) for p in found if p.row != comparator}):
        seeds = tuple(sorted(s for r, k, s in index if r == row and k == sticker and (comparator, k, s) in index))
        if len(seeds) < 2:
            continue  # no spread to test with
        a = np.array([index[(row, sticker, s)].success for s in seeds])
        b = np.array([index[(comparator, sticker, s)].success for s in seeds])
        d = a - b
        if np.all(d == d[0]):  # no spread: the t statistic is undefined, nothing can be called
            p, lo, hi = float("nan"), float(d[0]), float(d[0])
        else:
            test = stats.ttest_1samp(d, 0.0)
            ci = test.confidence_interval(0.95)
            p, lo, hi = float(test.pvalue), float(ci.low), float(ci.high)
        out.append(PhysicalCell(row, sticker, seeds, float(a.mean()), float(b.mean()), float(d.mean()), lo, hi, p))
    return decide(out)


def decide(found: Sequence[PhysicalCell]) -> list[PhysicalCell]:
    deciding = [
        i
        for i, c in enumerate(found)
        if c.row in BLURNET_ROWS and c.sticker == DECIDING_STICKER and len(c.seeds) >= MIN_SEEDS and np.isfinite(c.p)
    ]
    adjusted = holm([found[i].p for i in deciding])
    out = [dataclasses.replace(c, call="shown") for c in found]
    for i, q in zip(deciding, adjusted):
        c = found[i]
        out[i] = dataclasses.replace(c, p_holm=q, call=("below" if c.mean < 0 else "above") if q < ALPHA else "none")
    return out


def verdicts(found: Sequence[PhysicalCell]) -> list[PhysicalVerdict]:
    out = []
    for c in found:
        if c.row not in BLURNET_ROWS or c.sticker != DECIDING_STICKER:
            continue
        if c.p_holm is None:
            why = f"{len(c.seeds)} seeds" if len(c.seeds) < MIN_SEEDS else "no spread across seeds"
            out.append(PhysicalVerdict(c.row, "untested", f"EOT cell cannot decide: {why} (at least {MIN_SEEDS})"))
            continue
        where = (
            f"EOT sticker {c.mean:+.1f} points [{c.lo:+.1f}, {c.hi:+.1f}], Holm p {c.p_holm:.3f}, {len(c.seeds)} seeds"
        )
        verdict = {"below": "held", "above": "not held"}.get(c.call, "inconclusive")
        out.append(PhysicalVerdict(c.row, verdict, where))
    return out
