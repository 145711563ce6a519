"""results/physical: the stationary-test records, tables.json (cells, verdicts and the claim as data), REPORT.md and
its figure, from this run's models merged with the parts committed there. The analysis is reports.physical_verdict.

Records (experiment "physical_stationary", model = the row, one seed each): legit_accuracy; victims_right (success:
the victims the model classifies right); per sticker and target, asr_photographs (success: the victims the sticker
moves on the plain photographs, variant = the sticker) and per grid condition, moved (variant =
"<sticker>/<condition>").
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import numpy as np

from blurnet_tf import files, paper, rundir
from blurnet_tf.reports import flat_records
from blurnet_tf.reports import physical_verdict as rule
from blurnet_tf.reports.report_writer import parts_table, report_head, seed_parts

CLAIM = (
    "BlurNet's defences lower the physical-world success of RP2 stickers (a sticker optimised over viewing "
    "conditions, scored on a held-out stationary grid; the physical profile)"
)
STICKER_ATTACK = {"digital": "rp2", "eot": "rp2_eot"}


def fresh_records(work_dir, budget, commit: str, dirty: bool | None, finished=None) -> list[flat_records.ResultRow]:
    """The flat records of every stationary test in a physical run directory whose step is `finished` (its run
    directory; None: whatever is there)."""
    lay, b = rundir.Layout(work_dir), flat_records.RecordBuilder(commit, dirty)
    done = None if finished is None else {pathlib.Path(d).absolute() for d in finished}
    for seed in budget.seeds:
        for row in budget.rows:
            if done is not None and lay.stationary_dir(row, seed).absolute() not in done:
                continue  # not run, or stale
            model = rundir.ModelRecord.read(
                lay.frontier_model_dir(row, f"epoch{budget.train_epochs}", seed) / rundir.METRICS_FILE
            )
            test = rundir.ResultRecord.read(lay.stationary_dir(row, seed) / rundir.RESULTS_FILE)
            if model is None or test is None:
                continue
            v = test.values
            b.add(rule.EXPERIMENT, row, "legit_accuracy", model.legit_accuracy, seed, images=model.test_images)
            b.add(
                rule.EXPERIMENT,
                row,
                "victims_right",
                v["right"].count("1"),
                seed,
                images=len(v["right"]),
                success=v["right"],
            )
            for sticker, scored in v["stickers"].items():
                attack = rundir.StickerRecord.read(lay.physical_attack_dir(row, sticker, seed) / rundir.RESULTS_FILE)
                where = dict(
                    seed=seed,
                    attack=STICKER_ATTACK[sticker],
                    lam=paper.RP2_LAMBDA,
                    images=len(v["right"]),
                    precision=attack.precision if attack else "float32",
                )
                for r in attack.rows if attack else ():
                    bits = "".join(map(str, r["success"]))
                    b.add(
                        rule.EXPERIMENT,
                        row,
                        "asr_photographs",
                        r["asr"],
                        variant=sticker,
                        target=r["target"],
                        success=bits,
                        **where,
                    )
                for condition, cell in scored["grid"].items():
                    for target, moved in zip(scored["targets"], cell["moved"]):
                        value = moved.count("1") / len(moved)
                        b.add(
                            rule.EXPERIMENT,
                            row,
                            "moved",
                            value,
                            variant=f"{sticker}/{condition}",
                            target=target,
                            success=moved,
                            **where,
                        )
    return b.rows


def central_claim(verdicts: list[rule.PhysicalVerdict], seeds: list[int]) -> dict[str, str]:
    kinds = {v.verdict for v in verdicts}
    verdict = next((k for k in ("held", "not held", "untested") if kinds == {k}), "inconclusive")
    return {
        "claim": CLAIM,
        "verdict": verdict,
        "evidence": "; ".join(f"{v.row}: {v.verdict} ({v.why})" for v in verdicts) + f"; seeds {seeds}",
    }


def stored(results_dir):
    records = flat_records.read(pathlib.Path(results_dir) / flat_records.JSON_FILE)
    found = rule.points(records)
    cells = rule.cells(found)
    return found, cells, rule.verdicts(cells)


def write_report(profile, work_dir, results_dir, started, stage_seconds_this_run, step_dirs, missing=(), stale=()):
    """Same contract as report_writer.write_report, for a study with a PhysicalBudget."""
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
        lambda r: (r.model, r.seed),
    )
    flat_records.write(out, records, commit, meta["dirty"])
    found = rule.points(records)
    cells = rule.cells(found)
    verdicts = rule.verdicts(cells)
    seeds = sorted({p.seed for p in found})
    meta["seeds"] = {"training": seeds, "rp2_noise_init": seeds}
    if found:
        from blurnet_tf.reports.figures import physical_figure

        physical_figure(found, out / "figures" / "physical.png")
    files.write_json(
        out / "tables.json",
        {
            "schema": flat_records.SCHEMA,
            "claims": [central_claim(verdicts, seeds)] if verdicts else [],
            "cells": [dataclasses.asdict(c) | {"seeds": list(c.seeds)} for c in cells],
            "verdicts": [dataclasses.asdict(v) for v in verdicts],
            "parts": parts,
            "metadata": {**meta, "missing_steps": len(missing), "stale_steps": list(stale)},
        },
    )
    files.write_text(out / "REPORT.md", render(budget, found, cells, verdicts, parts, meta))
    return out / "REPORT.md"


NEAREST, FARTHEST = "1x distance, 0°", "6x distance, 30°"


def _f(v: float | None) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.1f}"


def _mean(values: list[float]) -> str:
    return f"{np.mean(values):.1f}" if values else "–"


def cells_table(cells: list[rule.PhysicalCell]) -> str:
    rows = [
        "| row | sticker | seeds | success on the grid % (row / baseline) | Δ, 95% | p | Holm p | call |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows += [
        f"| {c.row} | {c.sticker} | {len(c.seeds)} | {_f(c.success)} / {_f(c.comparator_success)} | "
        f"{c.mean:+.1f} [{c.lo:+.1f}, {c.hi:+.1f}] | {c.p:.3f} | {'–' if c.p_holm is None else f'{c.p_holm:.3f}'} | "
        f"{c.call} |"
        for c in cells
    ]
    return "\n".join(rows)


def models_table(found: list[rule.StickerPoint], budget) -> str:
    rows = [
        "| row | sticker | seeds | legit % | victims right, mean of 40 | on the photographs % | on the grid % | "
        "nearest (1x, 0°) % | farthest (6x, 30°) % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in budget.rows:
        for sticker in ("digital", "eot"):
            ps = [p for p in found if p.row == row and p.sticker == sticker]
            if not ps:
                continue
            photos = [p.on_photographs for p in ps if p.on_photographs is not None]
            near = [p.by_condition[NEAREST] for p in ps if NEAREST in p.by_condition]
            far = [p.by_condition[FARTHEST] for p in ps if FARTHEST in p.by_condition]
            rows.append(
                f"| {row} | {sticker} | {len(ps)} | {np.mean([p.legit_accuracy for p in ps]):.1f} | "
                f"{np.mean([p.victims_right for p in ps]):.1f} | {_mean(photos)} | "
                f"{np.mean([p.success for p in ps]):.1f} | {_mean(near)} | {_mean(far)} |"
            )
    return "\n".join(rows)


def render(budget, found, cells, verdicts, parts, meta) -> str:
    md = report_head("RP2's physical threat model: the stationary test (physical profile)", meta)
    md += [
        "Generated by `python -m blurnet_tf.cli.reproduce --profile=physical` (`./run.sh physical`), in parts of "
        f"seeds (`--seeds`). Rows {', '.join(budget.rows)}, each trained {budget.train_epochs} epochs (its Table II "
        f"flagfile) under every seed, then attacked with white-box RP2 (λ 0.002, {budget.attack_epochs} epochs, "
        f"targets {budget.targets}, {budget.precision}) twice: the digital sticker (`whitebox.flags`) and the sticker "
        "optimised "
        "in expectation over viewing conditions (`whitebox_eot.flags`: 4 views a step, distance 1-4x, yaw ±25°, roll "
        "±10°, light, defocus, sensor noise). Both are scored on the held-out stationary grid (5 distances x 3 angles "
        "and two lightings, `attacks.STATIONARY_GRID`): a victim counts when the model's prediction under a condition "
        "differs from the clean sign's under it; only the victims the model classifies right count.",
        "",
        "Rule: per row and sticker, the paired difference row − baseline over seeds, a two-sided paired t-test and "
        f"its 95% interval; Holm over the BlurNet rows' EOT cells at {rule.ALPHA:g}: a family is held when its cell is "
        "below 0, not held when above, else inconclusive (`reports/physical_verdict.py`; calibration simulated in "
        "tests/test_physical.py).",
        "",
        "## Verdicts",
        "",
    ]
    md += (
        ["| row | verdict | evidence |", "|---|---|---|"]
        + [f"| {v.row} | **{v.verdict}** | {v.why} |" for v in verdicts]
        if verdicts
        else ["_no cell yet_"]
    )
    md += [
        "",
        "## Cells",
        "",
        cells_table(cells) if cells else "_no cell yet_",
        "",
        "## Success against distance and angle",
        "",
    ]
    md += (
        ["![physical](figures/physical.png)", "", "(PDF beside it: `figures/physical.pdf`.)", ""]
        if found
        else ["_no model yet_", ""]
    )
    md += [
        "## Every row",
        "",
        models_table(found, budget),
        "",
        "## Parts and cost",
        "",
        *parts_table(parts),
    ]
    md += [
        "",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f"; written {time.strftime('%Y-%m-%d %H:%M %Z')}.",
    ]
    return "\n".join(md) + "\n"
