"""The fair verdict (issue 41) as data: the records of the `fair` profile turned into models, cells and one
verdict per BlurNet family by the rule pre-registered in docs/plan-fair-verdict.md. No I/O, no rendering.

A model's ASR counts only the victims it classifies right before the attack: per target, the share of those
victims the sticker moves; averaged over the targets. A cell is one family at one accuracy level against the
comparator (the baseline on its own share of tracks) at the same level: the paired difference of average ASR
over the seeds both arms have (evaluation.seed_tests.sign_flip_test), Holm-corrected over every cell that can
decide. The rule:

- a cell can decide when the two arms' mean legit accuracies lie within MATCH points and it has at least
  MIN_SEEDS seeds (fewer cannot reach Holm's smallest level with an exact sign-flip test);
- it is called **below** / **above** when its Holm-adjusted p < ALPHA with the mean difference below / above 0,
  and **short of the paper** when the test of "difference = the paper's Table II difference" (Holm over the same
  cells) rejects with the mean above the paper's difference;
- a family is **held** when a deciding cell at the paper's levels (80-90%) is below and no deciding cell is
  above; **not held** when a deciding cell is above, or when no cell at 80-90% is below and every deciding cell
  there is short of the paper; **untested** when no cell at 80-90% can decide (the reason given);
  **inconclusive** otherwise.

    points(records) -> [ModelPoint]; cells(points, comparator, paper_effects) -> [Cell]; verdicts(cells) -> [Verdict]
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from blurnet_tf.evaluation.seed_tests import SignFlip, holm, sign_flip_p, sign_flip_test

EXPERIMENT = "fair_verdict"
MATCH = 3.0  # points of legit accuracy between the two arms' means
MIN_SEEDS = 9  # an exact sign-flip p can be 2 / 2^9 < 0.05 / 12
ALPHA = 0.05
PAPER_LEVELS = (80, 85, 90)  # the paper's defended models sit at 78-87%


@dataclasses.dataclass(frozen=True)
class ModelPoint:
    """One trained and attacked model of the study (percentages in points)."""

    family: str
    level: int
    seed: int
    train_tracks: float
    legit_accuracy: float
    accuracy_lo: float  # the test tracks resampled (95%)
    accuracy_hi: float
    training_flat: bool  # the last five epochs' test accuracy within 0.5 point
    victims_right: int  # of the 40 clean victims, classified as stop
    avg_asr: float | None  # over the right victims; None when there are none
    rp2_converged_at: int | None  # first RP2 epoch from which the mean curve stays within 2 points of its end


@dataclasses.dataclass(frozen=True)
class Cell:
    family: str
    level: int
    seeds: tuple[int, ...]  # seeds both arms have an ASR for
    differences: tuple[float, ...]  # defence - comparator average ASR per seed, points
    accuracy: float  # the family's mean legit accuracy over those seeds
    comparator_accuracy: float
    asr: float  # the family's mean average ASR
    comparator_asr: float
    test: SignFlip | None  # defence - comparator, points
    paper_difference: float | None  # the paper's Table II: the family's row - baseline, points
    p_holm: float | None = None  # None: the cell cannot decide (see `why`)
    paper_p_holm: float | None = None
    call: str = "none"  # below / above / none / cannot decide
    short_of_paper: bool = False
    why: str = ""

    @property
    def decides(self) -> bool:
        return self.p_holm is not None


@dataclasses.dataclass(frozen=True)
class Verdict:
    family: str
    verdict: str  # held / not held / inconclusive / untested
    why: str


def _bits(text: str | None) -> np.ndarray:
    return np.array([c == "1" for c in text or ""], bool)


def points(records: Iterable) -> list[ModelPoint]:
    """Every model of the study from its flat records (reports.flat_records.ResultRow)."""
    by_model: dict[tuple[str, str, int], list] = defaultdict(list)
    for r in records:
        if r.experiment == EXPERIMENT:
            by_model[(r.model, r.variant, r.seed)].append(r)
    out = []
    for (family, variant, seed), rows in sorted(by_model.items()):
        metric = {r.metric: r for r in rows if r.target is None}
        if "legit_accuracy" not in metric:
            continue
        right = _bits(metric["victims_right"].success) if "victims_right" in metric else np.zeros(0, bool)
        moved = [_bits(r.success) for r in rows if r.metric == "asr" and r.target is not None]
        asr = (
            100 * float(np.mean([m[right].mean() for m in moved]))
            if moved and right.any() and all(len(m) == len(right) for m in moved)
            else None
        )
        converged = metric.get("rp2_converged_at")
        out.append(
            ModelPoint(
                family=family,
                level=int(variant.removeprefix("acc")),
                seed=seed,
                train_tracks=metric["train_tracks"].value,
                legit_accuracy=100 * metric["legit_accuracy"].value,
                accuracy_lo=100 * metric["legit_accuracy_lo"].value if "legit_accuracy_lo" in metric else np.nan,
                accuracy_hi=100 * metric["legit_accuracy_hi"].value if "legit_accuracy_hi" in metric else np.nan,
                training_flat=bool(metric["training_flat"].value),
                victims_right=int(right.sum()),
                avg_asr=asr,
                rp2_converged_at=None if converged is None or converged.value is None else int(converged.value),
            )
        )
    return out


def cells(models: Sequence[ModelPoint], comparator: str, paper_differences: Mapping[str, float | None]) -> list[Cell]:
    """Every (family, level) the records hold against the comparator at that level, with Holm applied."""
    index = {(m.family, m.level, m.seed): m for m in models if m.avg_asr is not None}
    found = []
    for family, level in sorted({(m.family, m.level) for m in models if m.family != comparator}):
        seeds = tuple(
            sorted(s for f, lv, s in index if f == family and lv == level and (comparator, level, s) in index)
        )
        ours = [index[(family, level, s)] for s in seeds]
        theirs = [index[(comparator, level, s)] for s in seeds]
        paper = paper_differences.get(family)
        if not seeds:
            found.append(
                Cell(family, level, (), (), np.nan, np.nan, np.nan, np.nan, None, paper, why="no paired seed yet")
            )
            continue
        diffs = [a.avg_asr - b.avg_asr for a, b in zip(ours, theirs)]  # type: ignore[operator]
        acc, comp_acc = (
            float(np.mean([m.legit_accuracy for m in ours])),
            float(np.mean([m.legit_accuracy for m in theirs])),
        )
        why = ""
        if abs(acc - comp_acc) > MATCH:
            why = f"accuracy not matched ({acc:.1f} against {comp_acc:.1f}%)"
        elif len(seeds) < MIN_SEEDS:
            why = f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} (at least {MIN_SEEDS} decide)"
        found.append(
            Cell(
                family,
                level,
                seeds,
                tuple(diffs),
                acc,
                comp_acc,
                float(np.mean([m.avg_asr for m in ours])),
                float(np.mean([m.avg_asr for m in theirs])),
                sign_flip_test(diffs),
                paper,
                why=why,
            )
        )
    return decide(found)


def decide(found: Sequence[Cell]) -> list[Cell]:
    """Holm over the deciding cells, for the test against 0 and against the paper's difference."""
    deciding = [i for i, c in enumerate(found) if not c.why and c.test is not None]
    p0 = holm([found[i].test.p for i in deciding])  # type: ignore[union-attr]
    paper_p = holm([_paper_p(found[i]) for i in deciding])
    out = list(found)
    for i, p, q in zip(deciding, p0, paper_p):
        c = found[i]
        mean = c.test.mean  # type: ignore[union-attr]
        call = ("below" if mean < 0 else "above") if p < ALPHA else "none"
        short = c.paper_difference is not None and q < ALPHA and mean > c.paper_difference
        out[i] = dataclasses.replace(c, p_holm=p, paper_p_holm=q, call=call, short_of_paper=short)
    return [c if c.decides else dataclasses.replace(c, call="cannot decide") for c in out]


def _paper_p(cell: Cell) -> float:
    if cell.paper_difference is None:
        return 1.0
    return sign_flip_p(cell.differences, null=cell.paper_difference)


def verdicts(found: Sequence[Cell]) -> list[Verdict]:
    """One verdict per family from its cells (the rule above)."""
    out = []
    for family in sorted({c.family for c in found}):
        own = [c for c in found if c.family == family]
        regime = [c for c in own if c.level in PAPER_LEVELS and c.decides]
        above = [c for c in own if c.call == "above"]
        below = [c for c in regime if c.call == "below"]
        if above:
            out.append(Verdict(family, "not held", "ASR higher than the comparator's at " + _levels(above)))
        elif not regime:
            reasons = "; ".join(f"{c.level}%: {c.why}" for c in own if c.level in PAPER_LEVELS) or "no cell at 80-90%"
            out.append(Verdict(family, "untested", reasons))
        elif below:
            short = all(c.short_of_paper for c in regime)
            out.append(
                Verdict(
                    family,
                    "held",
                    "ASR lower than the comparator's at "
                    + _levels(below)
                    + ("; smaller than the paper's difference at every level" if short else ""),
                )
            )
        elif all(c.short_of_paper for c in regime):
            out.append(
                Verdict(family, "not held", "no lower ASR, and the paper's difference excluded at " + _levels(regime))
            )
        else:
            out.append(Verdict(family, "inconclusive", "neither lower ASR nor the paper's difference excluded"))
    return out


def _levels(cs: Sequence[Cell]) -> str:
    return ", ".join(f"{c.level}%" for c in cs)
