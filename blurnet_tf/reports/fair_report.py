"""results/fair: the fair verdict's records, tables.json (cells and verdicts as data), REPORT.md and its figure,
from this run's models merged with the parts already committed there. The analysis is reports.fair_verdict.

Records (experiment "fair_verdict", model = the arm, variant = "acc<level>", one seed each): legit_accuracy (with
_lo / _hi, the test tracks resampled), train_tracks, training_flat, victims_right (success: the victims the model
classifies right), per target asr (success: the victims the sticker moved), rp2_converged_at.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any

import numpy as np

from blurnet_tf import files, paper, rundir
from blurnet_tf.data import STOP
from blurnet_tf.evaluation.seed_tests import track_bootstrap
from blurnet_tf.evaluation.sticker_metrics import converged_at
from blurnet_tf.reports import fair_verdict as rule
from blurnet_tf.reports import flat_records
from blurnet_tf.reports.report_writer import parts_table, report_head, seed_parts

FLAT_POINTS = 0.5  # a training is flat when its last five epochs' test accuracy spans less than this
PLAN = "docs/plan-fair-verdict.md"


def fresh_records(work_dir, budget, commit: str, dirty: bool | None, finished=None) -> list[flat_records.ResultRow]:
    """The flat records of every (model, attack) pair in a fair run directory whose two steps are `finished` (their
    run directories; None: whatever is there), the share of tracks read from the model's own record."""
    lay, b = rundir.Layout(work_dir), flat_records.RecordBuilder(commit, dirty)
    done = None if finished is None else {pathlib.Path(d).absolute() for d in finished}
    for arm in budget.arms:
        for level, _ in arm.shares:
            for seed in budget.seeds:
                point = rundir.accuracy_point(level)
                model_dir = lay.frontier_model_dir(arm.family, point, seed)
                attack_dir = lay.frontier_attack_dir(arm.family, point, seed)
                if done is not None and not {model_dir.absolute(), attack_dir.absolute()} <= done:
                    continue  # not run, or stale: another setting's leftovers never enter the verdict
                model = rundir.ModelRecord.read(model_dir / rundir.METRICS_FILE)
                attack = rundir.StickerRecord.read(attack_dir / rundir.RESULTS_FILE)
                if model and attack:
                    share = model.flags.get("train_tracks", 1.0)
                    _model_records(b, arm.family, point, seed, share, model, attack)
    return b.rows


def _model_records(b, family, variant, seed, share, model, attack) -> None:
    add = dict(seed=seed, variant=variant, precision=attack.precision)
    b.add(rule.EXPERIMENT, family, "legit_accuracy", model.legit_accuracy, images=model.test_images, **add)
    if model.correct_by_track:
        _, lo, hi = track_bootstrap(model.correct_by_track)
        b.add(rule.EXPERIMENT, family, "legit_accuracy_lo", lo, images=model.test_images, **add)
        b.add(rule.EXPERIMENT, family, "legit_accuracy_hi", hi, images=model.test_images, **add)
    b.add(rule.EXPERIMENT, family, "train_tracks", share, **add)
    curve = [100 * h["val_accuracy"] for h in model.history if "val_accuracy" in h]
    flat = len(curve) >= 5 and max(curve[-5:]) - min(curve[-5:]) < FLAT_POINTS
    b.add(rule.EXPERIMENT, family, "training_flat", float(flat), **add)
    right = [int(p == STOP) for p in model.victim_predictions or ()]
    b.add(rule.EXPERIMENT, family, "victims_right", sum(right), images=len(right), success=_bits(right), **add)
    b.rp2(
        rule.EXPERIMENT,
        family,
        {"rows": attack.rows, "aggregate": attack.aggregate, "precision": attack.precision},
        seed,
        variant=variant,
    )
    mean_curve = np.mean([h["misclassified"] for h in attack.history.values()], axis=0) if attack.history else None
    b.add(
        rule.EXPERIMENT,
        family,
        "rp2_converged_at",
        None if mean_curve is None else converged_at(mean_curve),
        attack="rp2",
        lam=paper.RP2_LAMBDA,
        **add,
    )


def _bits(values) -> str | None:
    return "".join(map(str, values)) or None


def arms_of(budget) -> dict[str, str]:
    """{arm: its Table II flagfile}, the comparator first (stored in results.json's header)."""
    return {arm.family: arm.flagfile for arm in budget.arms}


def paper_differences(arms: dict[str, str]) -> dict[str, float | None]:
    """Each family's paper difference in points: its Table II row's average ASR minus the baseline's."""
    base = paper.TABLE2["baseline"]["avg_asr"]
    return {
        family: 100 * (paper.TABLE2[flagfile]["avg_asr"] - base) if flagfile in paper.TABLE2 else None
        for family, flagfile in list(arms.items())[1:]
    }


def analyse(
    records, arms: dict[str, str], planned_seeds
) -> tuple[list[rule.ModelPoint], list[rule.Cell], list[rule.Verdict]]:
    """Models, cells and verdicts of a set of records; `arms`: arms_of(budget), the comparator first. Only the
    pre-registered seeds count (a pilot seed or one past the plan is never read)."""
    models = [m for m in rule.points(records) if m.seed in set(planned_seeds)]
    found = rule.cells(models, next(iter(arms)), paper_differences(arms))
    return models, found, rule.verdicts(found)


def stored(results_dir) -> tuple[list[rule.ModelPoint], list[rule.Cell], list[rule.Verdict], dict[str, str]]:
    """The analysis of a committed results/fair, recomputed from its records (and the arms in their header)."""
    path = pathlib.Path(results_dir) / flat_records.JSON_FILE
    header = files.read_json(path, missing_ok=False)
    return (*analyse(flat_records.read(path), header["arms"], header["planned_seeds"]), header["arms"])


def stored_verdict_table(results_dir) -> str:
    _, _, verdicts, arms = stored(results_dir)
    return verdict_table(verdicts, arms)


def write_report(profile, work_dir, results_dir, started, stage_seconds_this_run, step_dirs, missing=(), stale=()):
    """Same contract as report_writer.write_report, for a study with a FairBudget."""
    budget = profile.budget
    out, meta, records, parts, commit = seed_parts(
        profile,
        work_dir,
        results_dir,
        started,
        stage_seconds_this_run,
        step_dirs,
        lambda commit, dirty: fresh_records(work_dir, budget, commit, dirty, step_dirs),
        rule.EXPERIMENT,
        lambda r: (r.model, r.variant, r.seed),
    )
    arms = arms_of(budget)
    planned = list(budget.planned_seeds)
    flat_records.write(out, records, commit, meta["dirty"], arms=arms, planned_seeds=planned)
    models, found, verdicts = analyse(records, arms, planned)
    seeds = sorted({m.seed for m in models})
    meta["seeds"] = {"training": seeds, "rp2_noise_init": seeds, "planned": list(budget.planned_seeds)}
    if models:
        from blurnet_tf.reports.figures import fair_figure

        fair_figure(models, budget.comparator.family, out / "figures" / "fair.png")
    files.write_json(
        out / "tables.json",
        {
            "schema": flat_records.SCHEMA,
            "plan": PLAN,
            "rule": {
                "match_points": rule.MATCH,
                "min_seeds": rule.MIN_SEEDS,
                "alpha": rule.ALPHA,
                "paper_levels": list(rule.PAPER_LEVELS),
            },
            "claims": [central_claim(verdicts, seeds, budget.planned_seeds)] if verdicts else [],
            "cells": [cell_json(c) for c in found],
            "verdicts": [dataclasses.asdict(v) for v in verdicts],
            "parts": parts,
            "metadata": {**meta, "missing_steps": len(missing), "stale_steps": list(stale)},
        },
    )
    reference = snapshot_reference(results_dir, budget.levels())
    files.write_text(out / "REPORT.md", render(budget, models, found, verdicts, parts, meta, missing, reference))
    return out / "REPORT.md"


CLAIM = (
    "At equal legit accuracy (fully trained comparators on fewer training tracks, 80-90%, a pre-registered rule; "
    "the fair profile), BlurNet's defences (conv_7, TV, Tik_hf) have a lower white-box average ASR than the baseline"
)


def central_claim(verdicts, seeds, planned) -> dict[str, str]:
    """The paper's central claim for "What holds": held when every family is held, not held when every one is not
    held, untested when none can be judged yet, else inconclusive (the families' own verdicts in the evidence)."""
    kinds = {v.verdict for v in verdicts}
    verdict = next((k for k in ("held", "not held", "untested") if kinds == {k}), "inconclusive")
    ran = f"seeds {', '.join(map(str, seeds))} of the planned {len(planned)}"
    return {
        "claim": CLAIM,
        "verdict": verdict,
        "evidence": "; ".join(f"{v.family}: {v.verdict} ({v.why})" for v in verdicts) + f"; {ran}",
    }


def _finite(value: Any) -> Any:
    """JSON's view of a value: NaN and ±inf as None, through nested dicts and lists (the intervals of too few seeds
    are infinite; tables.json and a recomputation must read the same)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def cell_json(c: rule.Cell) -> dict[str, Any]:
    """A cell as tables.json holds it."""
    d = dataclasses.asdict(c)
    d["differences"] = [round(x, 4) for x in c.differences]
    return _finite(d)


def _points(v: float | None) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.1f}"


def cells_table(found) -> str:
    rows = [
        "| family | level | seeds | legit % (family / comparator) | avg ASR % (family / comparator) | Δ, 95% | p | "
        "Holm p | call |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in found:
        t = c.test
        delta = "–" if t is None else f"{t.mean:+.1f} [{t.lo:+.1f}, {t.hi:+.1f}]"
        call = c.call + (" (short of the paper's)" if c.short_of_paper else "") + (f": {c.why}" if c.why else "")
        rows.append(
            f"| {c.family} | {c.level}% | {len(c.seeds)} | {_points(c.accuracy)} / {_points(c.comparator_accuracy)} | "
            f"{_points(c.asr)} / {_points(c.comparator_asr)} | {delta} | {'–' if t is None else f'{t.p:.4f}'} | "
            f"{'–' if c.p_holm is None else f'{c.p_holm:.4f}'} | {call} |"
        )
    return "\n".join(rows)


def verdict_table(verdicts, arms: dict[str, str]) -> str:
    diffs = paper_differences(arms)
    rows = ["| family | verdict | why | the paper's difference (Table II, its row − baseline) |", "|---|---|---|---|"]
    rows += [f"| {v.family} | **{v.verdict}** | {v.why} | {_points(diffs.get(v.family))} pt |" for v in verdicts]
    return "\n".join(rows)


def models_table(models, budget) -> str:
    rows = [
        "| arm | level | share of tracks | seeds | legit % mean (seed sd) | track-resampled 95% half-width, mean | "
        "victims right, mean of 40 | avg ASR % mean | trainings flat | RP2 within 2 pt of its end from epoch (max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in budget.arms:
        for level, share in arm.shares:
            ms = [m for m in models if m.family == arm.family and m.level == level]
            if not ms:
                continue
            acc = np.array([m.legit_accuracy for m in ms])
            sd = acc.std(ddof=1) if len(ms) > 1 else 0.0
            right = np.mean([m.victims_right for m in ms])
            half = np.nanmean([(m.accuracy_hi - m.accuracy_lo) / 2 for m in ms])
            asr = [m.avg_asr for m in ms if m.avg_asr is not None]
            conv = [m.rp2_converged_at for m in ms if m.rp2_converged_at is not None]
            rows.append(
                f"| {arm.family} | {level}% | {share:g} | {len(ms)} | {acc.mean():.1f} ({sd:.1f}) | "
                f"{_points(half)} | {right:.1f} | {_points(np.mean(asr) if asr else None)} | "
                f"{sum(m.training_flat for m in ms)} of {len(ms)} | {max(conv) if conv else '–'} |"
            )
    return "\n".join(rows)


def snapshot_reference(results_dir, levels) -> dict[int, dict[str, Any] | None]:
    """The trade-off study's snapshot baseline (results/tradeoff beside results/fair) at each level: its average ASR
    interpolated on each seed's curve of weights along training, with its interval (None: not reached or not
    committed). Its ASR counts every victim the sticker moves, not only the right ones."""
    from blurnet_tf.evaluation.frontier import curve_at
    from blurnet_tf.reports import tradeoff_analysis

    path = pathlib.Path(results_dir) / "tradeoff" / flat_records.JSON_FILE
    if not path.is_file():
        return {level: None for level in levels}
    base = tradeoff_analysis.curves(flat_records.read(path)).get(rundir.BASELINE)
    if base is None:
        return {level: None for level in levels}
    at = curve_at(base["success"], base["accuracy"], [level / 100 for level in levels], min_seeds=2)
    return dict(zip(levels, at))


def baselines_table(models, comparator, reference) -> str:
    """Where the two baselines disagree: the fully trained comparator against the snapshot curve, level by level."""
    rows = [
        "| level | comparator: legit % / avg ASR % (seeds) | snapshot baseline at that accuracy: avg ASR % [95%] "
        "(seeds) | comparator − snapshot, points |",
        "|---|---|---|---|",
    ]
    for level, ref in reference.items():
        ms = [m for m in models if m.family == comparator and m.level == level and m.avg_asr is not None]
        if not ms:
            continue
        asr = float(np.mean([m.avg_asr for m in ms]))
        acc = float(np.mean([m.legit_accuracy for m in ms]))
        snap = (
            "not reached"
            if ref is None
            else (f"{100 * ref['mean']:.1f} [{100 * ref['lo']:.1f}, {100 * ref['hi']:.1f}] ({ref['seeds']})")
        )
        gap = "–" if ref is None else f"{asr - 100 * ref['mean']:+.1f}"
        rows.append(f"| {level}% | {acc:.1f} / {asr:.1f} ({len(ms)}) | {snap} | {gap} |")
    return "\n".join(rows)


def render(budget, models, found, verdicts, parts, meta, missing, reference=None) -> str:
    arms = "; ".join(
        f"{a.family} ({a.flagfile}.flags): " + ", ".join(f"{lv}% ← {s:g}" for lv, s in a.shares) for a in budget.arms
    )
    md = report_head("The fair verdict: fully trained comparators at matched accuracy (fair profile)", meta)
    md += [
        f"Generated by `python -m blurnet_tf.cli.reproduce --profile=fair` (`./run.sh fair`), in parts of seeds "
        f"(`--seeds`). Every model trained {budget.train_epochs} epochs with a {budget.lr_schedule} learning rate on a "
        "share of each class's training tracks (the level it was chosen for ← the share, measured on pilot seeds 0-2): "
        f"{arms}. Attacked like Table II: white-box RP2, λ 0.002, {budget.attack_epochs} epochs, all 17 targets, "
        f"the RP2 noise seeded by the training seed, {budget.precision}. A model's ASR counts only the victims it "
        "classifies right before the attack.",
        "",
        f"The rule, fixed before these seeds ran ([{PLAN}](../../{PLAN})): per cell, the paired difference family − "
        "comparator of average ASR over seeds, an exact two-sided sign-flip test, Holm's correction over every cell "
        f"that can decide (legit accuracies within {rule.MATCH:g} points, at least {rule.MIN_SEEDS} seeds), at "
        f"{rule.ALPHA:g}. A family is held when a cell at {', '.join(map(str, rule.PAPER_LEVELS))}% is below 0 and "
        "none is above; not held when one is above, or when none at those levels is below and every one there "
        "excludes the paper's difference (short of the paper's); untested when no cell there can decide; else "
        "inconclusive.",
        "",
        "## Verdicts",
        "",
        "<!-- results:fair-verdicts -->",
        verdict_table(verdicts, arms_of(budget)) if verdicts else "_no cell yet_",
        "<!-- /results:fair-verdicts -->",
        "",
        "## Cells",
        "",
        cells_table(found) if found else "_no cell yet_",
        "",
        "Δ: family − comparator, points, with the interval of the inverted sign-flip test (± ∞ where too few seeds "
        "reject anything).",
        "",
        "## Average ASR against legit accuracy",
        "",
    ]
    md += (
        ["![fair](figures/fair.png)", "", "(PDF beside it: `figures/fair.pdf`.)", ""]
        if models
        else ["_no model yet_", ""]
    )
    md += ["## Every arm", "", models_table(models, budget), ""]
    if reference and models:
        md += [
            "## The two baselines",
            "",
            "The fully trained comparator against the trade-off study's snapshot baseline (its weights along 10 "
            "epochs of training, results/tradeoff) at the same legit accuracy: where they disagree, a half-trained "
            "model stood in for a less accurate one. (The snapshot ASR counts every victim; the comparator's only the "
            "right ones.)",
            "",
            baselines_table(models, budget.comparator.family, reference),
            "",
        ]
    if missing:
        md += [
            f"{len(missing)} steps of the plan did not run here; their seeds come from the committed parts below.",
            "",
        ]
    md += ["## Parts and cost", "", *parts_table(parts)]
    md += [
        "",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f"; written {time.strftime('%Y-%m-%d %H:%M %Z')}.",
    ]
    return "\n".join(md) + "\n"
