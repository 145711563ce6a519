"""The accuracy-robustness frontiers (`--profile=tradeoff`): every defence family along its strength
knob against the baseline along its own training, judged at fixed legit accuracies (the report:
reports.tradeoff_report).

Records (results.json, experiment "tradeoff"; model = the family, variant = the point, e.g.
"alpha0.1" or "step20") are merged with those already committed in results/tradeoff: a part run in
one session (./run.sh tradeoff --steps='*/tv/*') replaces its own families' records and keeps the
others', so the report always reads every part. Each claim: "this defence's average ASR is below
the baseline's at the same legit accuracy", paired 95% intervals from evaluation.frontier.
"""

import functools
import json
import pathlib
import re

import numpy as np

from blurnet_tf import files, paper, rundir
from blurnet_tf.evaluation import frontier
from blurnet_tf.evaluation.intervals import verdict
from blurnet_tf.rundir import BASELINE
from blurnet_tf.reports import flat_records
from blurnet_tf.reports.format import pct
from blurnet_tf.reports.seed_statistics import _combine, _fmt

EXPERIMENT = "tradeoff"
MIN_SEEDS = 2  # a cell is read on the seeds whose curves reach its accuracy, at least this many
FIXED_ACCURACIES = (0.85, 0.90, 0.95, 0.97)  # 97: where TV and Tik_hf stay before they collapse
STATISTICS = {"avg_asr": "average ASR", "worst_asr": "worst-case ASR"}
PAPER_ROWS = {
    BASELINE: ("baseline",),
    "tv": ("tv_1e-4", "tv_1e-5"),
    "tik_hf": ("tik_hf",),
    "conv_7": ("conv_7",),
    "gaussian_aug": ("gaussian_aug_0.1", "gaussian_aug_0.2", "gaussian_aug_0.3"),
    "adv_train": ("adv_train",),
}
COARSE_FILE = "coarse.json"  # the first coarse measurement the grid was chosen from


def _legit(lay, budget, family, point, seed):
    """(accuracy, test images) of one model: a baseline snapshot's from the file beside it."""
    if family == BASELINE:
        path = lay.baseline_point_model(point, seed, budget.train_epochs)
        if path.name != rundir.MODEL_FILE:
            info = files.read_json(path.with_suffix(".json"))
            return info and (info["legit_accuracy"], info["test_images"])
        model = rundir.read_model(path.parent)
    else:
        model = rundir.read_model(lay.frontier_model_dir(family, point, seed))
    return model and (model.legit_accuracy, model.test_images)


def fresh_records(work_dir, budget, commit, dirty):
    """The flat records of every finished (model, attack) pair in a tradeoff run directory."""
    lay, b = rundir.Layout(work_dir), flat_records.RecordBuilder(commit, dirty)
    grids = {BASELINE: budget.baseline_points(), **{f.family: f.points() for f in budget.frontiers}}
    for family, points in grids.items():
        for point in points:
            for seed in budget.seeds:
                legit = _legit(lay, budget, family, point, seed)
                attack = rundir.StickerRecord.read(lay.frontier_attack_dir(family, point, seed) / rundir.RESULTS_FILE)
                if legit and attack:
                    b.add(
                        EXPERIMENT,
                        family,
                        "legit_accuracy",
                        legit[0],
                        seed,
                        variant=point,
                        images=legit[1],
                        precision=attack.precision,
                    )
                    b.rp2(
                        EXPERIMENT,
                        family,
                        {"rows": attack.rows, "aggregate": attack.aggregate, "precision": attack.precision},
                        seed,
                        variant=point,
                    )
    return b.rows


def merge(committed, fresh):
    """`fresh` replaces the committed records of the same (family, point, seed); the rest are kept."""
    made = {(r.model, r.variant, r.seed) for r in fresh}
    return [r for r in committed if r.experiment == EXPERIMENT and (r.model, r.variant, r.seed) not in made] + fresh


def curves(records, zero_is_baseline=()):
    """{family: {"points", "seeds", "success" [S, P, T, V], "accuracy" [S, P], "targets"}} of the seeds
    the baseline has too and the points every such seed has; a family in `zero_is_baseline` starts at
    the baseline's last point (knob 0 is the baseline)."""
    cells = {}
    for r in records:
        if r.experiment != EXPERIMENT:
            continue
        cell = cells.setdefault((r.model, r.variant, r.seed), {"success": {}})
        if r.metric == "legit_accuracy":
            cell["accuracy"] = r.value
        elif r.metric == "asr" and r.target is not None and r.success:
            cell["success"][r.target] = [int(c) for c in r.success]
    done = {k: c for k, c in cells.items() if "accuracy" in c and c["success"]}
    base_points = _order({p for f, p, _ in done if f == BASELINE})
    base_seeds = sorted({s for f, _, s in done if f == BASELINE})
    last = base_points[-1] if base_points else None
    out = {}
    for family in sorted({f for f, _, _ in done}, key=lambda f: (f != BASELINE, f)):
        seeds = [s for s in base_seeds if any(k[0] == family and k[2] == s for k in done)]
        points = [
            p for p in _order({p for f, p, _ in done if f == family}) if all((family, p, s) in done for s in seeds)
        ]
        keys = [[(family, p, s) for p in points] for s in seeds]
        if family in zero_is_baseline and last:
            keys = [[(BASELINE, last, s)] + row for s, row in zip(seeds, keys)]
            points = [f"{BASELINE} {last}"] + points
        if not seeds or len(points) < 2 or not all(k in done for row in keys for k in row):
            continue
        targets = sorted(done[keys[0][0]]["success"])
        out[family] = {
            "points": points,
            "seeds": seeds,
            "targets": targets,
            "accuracy": np.array([[done[k]["accuracy"] for k in row] for row in keys]),
            "success": np.array([[[done[k]["success"][t] for t in targets] for k in row] for row in keys]),
        }
    return out


def _order(points):
    """Points in knob or training order: the baseline's step<N> snapshots, then its epoch<N> ones;
    a knob's values by value."""

    def key(p):
        name, number = re.fullmatch(r"(.*?)([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)?", p).groups()
        return ({"step": 0, "epoch": 1}.get(name, 2), name, float(number or 0))

    return sorted(points, key=key)


def compare(families, statistic="avg_asr", at=FIXED_ACCURACIES, n_boot=2000):
    """{family: [(defence at a, baseline at a, paired difference) or None per accuracy]}."""
    base = families.get(BASELINE)
    out = {}
    for family, c in families.items():
        if family == BASELINE or base is None:
            continue
        if c["targets"] != base["targets"]:
            raise ValueError(f"{family} was attacked on targets {c['targets']}, the baseline on {base['targets']}")
        seeds = [s for s in c["seeds"] if s in base["seeds"]]
        mine = [c["seeds"].index(s) for s in seeds]
        theirs = [base["seeds"].index(s) for s in seeds]
        d = (c["success"][mine], c["accuracy"][mine])
        b = (base["success"][theirs], base["accuracy"][theirs])
        # Each number over the same seeds: those whose defence and baseline curves both reach the accuracy.
        own, ref, diff = (
            frontier.contrast_at([(*d, sd), (*b, sb)], at, statistic, n_boot, min_seeds=MIN_SEEDS)
            for sd, sb in ((1.0, 0.0), (0.0, 1.0), (1.0, -1.0))
        )
        out[family] = [None if x is None else (o, r, x) for o, r, x in zip(own, ref, diff)]
    return out


BLURNET_FAMILIES = ("conv_7", "tv", "tik_hf")  # the feature-map blur and its regularisers: BlurNet's own claim


def claims(comparison, families, at=FIXED_ACCURACIES):
    """[(claim, verdict, evidence)]: BlurNet's defences together (held when each is), then each family,
    held when every fixed accuracy its curves reach says so."""
    out = []
    for family, cells in comparison.items():
        reached = [(a, cell) for a, cell in zip(at, cells) if cell is not None]
        verdicts = [verdict(cell[2], -1) for _, cell in reached]
        ev = "; ".join(
            f"at {100 * a:.0f}%: {pct(o['mean'])} vs {pct(r['mean'])}, {_fmt(d)}" for a, (o, r, d) in reached
        )
        span = _span(families[family])
        out.append(
            (
                f"{family} beats the baseline's trade-off: a lower white-box average ASR at the same legit "
                f"accuracy ({len(families[family]['seeds'])} seeds)",
                _combine(verdicts) if verdicts else "not measured",
                ev or f"no fixed accuracy inside the range every seed reaches ({span})",
            )
        )
    judged = dict((claim.split()[0], v) for claim, v, _ in out if claim.split()[0] in BLURNET_FAMILIES)
    if judged:  # a family not measured leaves the whole claim at best inconclusive
        verdicts = [judged.get(f, "not measured") for f in BLURNET_FAMILIES]
        verdicts = [v if v != "not measured" else "inconclusive" for v in verdicts]
        out.insert(
            0,
            (
                "At equal legit accuracy (each defence along its strength knob, the baseline along its training, "
                f"at {'/'.join(f'{100 * a:.0f}' for a in at)}%), BlurNet's defences (conv, TV, Tikhonov) have a "
                "lower white-box average ASR than the baseline",
                _combine(verdicts),
                "; ".join(f"{f}: {judged.get(f, 'not measured')}" for f in BLURNET_FAMILIES),
            ),
        )
    return out


def _span(c):
    lo, hi = c["accuracy"].min(axis=1).max(), c["accuracy"].max(axis=1).min()
    return f"{pct(lo)}-{pct(hi)}% reached by every seed" if hi >= lo else "the seeds' ranges do not overlap"


def table(comparison, families, statistic, at=FIXED_ACCURACIES):
    head = " | ".join(f"at {100 * a:.0f}%: defence vs baseline, Δ [95%]" for a in at)
    lines = [
        f"| family | points (knob) | seeds | {head} | verdict | paper: legit / {STATISTICS[statistic]} |",
        "|---|---|---|" + "---|" * len(at) + "---|---|",
    ]
    for family, cells in comparison.items():
        n = len(families[family]["seeds"])
        text = [
            f"{pct(o['mean'])} vs {pct(r['mean'])}, {_fmt(d)}" + (f" ({d['seeds']} seeds)" if d["seeds"] < n else "")
            if cell
            else "not reached"
            for cell in cells
            for o, r, d in [cell or (None, None, None)]
        ]
        verdicts = [verdict(cell[2], -1) for cell in cells if cell]
        c = families[family]
        ref = "; ".join(
            f"{r} {pct(paper.TABLE2[r]['legit'])} / {pct(paper.TABLE2[r][statistic])}"
            for r in PAPER_ROWS.get(family, ())
        )
        lines.append(
            f"| {family} | {', '.join(c['points'])} | {len(c['seeds'])} | {' | '.join(text)} | "
            f"**{_combine(verdicts) if verdicts else 'not measured'}** | {ref or '–'} |"
        )
    return "\n".join(lines) if comparison else "_not run_"


def figure_panels(families, n_boot=400):
    """The frontier figure's data: each family's mean and band on a grid of accuracies every seed reaches."""
    panels = {}
    for statistic, label in STATISTICS.items():
        panel = {}
        for family, c in families.items():
            alive = c["accuracy"][c["accuracy"] > 0.5]  # a collapsed model is a dot, not a stretch of line
            grid = np.linspace(alive.min(), alive.max(), 30) if len(alive) > 1 else np.array([])
            cells = (
                frontier.curve_at(c["success"], c["accuracy"], grid, statistic, n_boot, min_seeds=MIN_SEEDS)
                if len(grid)
                else []
            )  # as the table reads it
            stat = frontier.STATISTICS[statistic](c["success"].mean(axis=-1))
            nan = {"mean": np.nan, "lo": np.nan, "hi": np.nan}  # in a gap: the line breaks
            cells = [x or nan for x in cells]
            panel[family] = {
                "grid": grid,
                "mean": [x["mean"] for x in cells],
                "lo": [x["lo"] for x in cells],
                "hi": [x["hi"] for x in cells],
                "points": list(zip(c["accuracy"].ravel(), stat.ravel())),
                "paper": [(paper.TABLE2[r]["legit"], paper.TABLE2[r][statistic]) for r in PAPER_ROWS.get(family, ())],
            }
        panels[f"white-box {label} (%)"] = panel
    return panels


def models_table(families):
    lines = [
        "| family | point | legit accuracy % per seed | average ASR % per seed | worst ASR % per seed |",
        "|---|---|---|---|---|",
    ]
    for family, c in families.items():
        avg, worst = c["success"].mean(axis=-1).mean(axis=-1), c["success"].mean(axis=-1).max(axis=-1)
        for j, point in enumerate(c["points"]):
            lines.append(
                f"| {family} | {point} | "
                + " | ".join(
                    " / ".join(pct(v[i, j]) for i in range(len(c["seeds"]))) for v in (c["accuracy"], avg, worst)
                )
                + " |"
            )
    return "\n".join(lines)


def coarse_table(coarse):
    if not coarse:
        return "_no coarse measurement recorded_"
    lines = [coarse.get("note", ""), "", "| model | settings | legit accuracy % | training s |", "|---|---|---|---|"]
    lines += [
        f"| {m['name']} | `{m['flags']}` | {pct(m['legit_accuracy'])} | {m['seconds']:.0f} |" for m in coarse["models"]
    ]
    return "\n".join(lines)


def verdict_table(results_dir):
    """The verdict table (average ASR) recomputed from a results/tradeoff directory's records."""
    folder = pathlib.Path(results_dir)
    return _verdict_table((folder / "tables.json").read_text(), (folder / flat_records.JSON_FILE).read_text())


@functools.lru_cache(maxsize=4)
def _verdict_table(tables_text, records_text):
    """Cached on the files' content: the bootstrap takes seconds, and the README check renders often."""
    records = [flat_records.ResultRow.from_json(r) for r in json.loads(records_text)["records"]]
    families = curves(records, tuple(json.loads(tables_text)["zero_is_baseline"]))
    return table(compare(families, "avg_asr"), families, "avg_asr")
