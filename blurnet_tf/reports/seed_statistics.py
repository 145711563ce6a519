"""Numbers with seeds behind them: every seed's records of the seeded rows, 95% intervals for each
metric (evaluation.intervals), the papers' numbers checked against them, and BlurNet's claims as
paired comparisons with one of three verdicts: held, not held, inconclusive."""

import numpy as np

from blurnet_tf import paper, rundir
from blurnet_tf.evaluation import intervals
from blurnet_tf.reports.flat_records import VICTIMS

BLURNET_ROWS = ("conv_", "tv_", "tik_")  # the feature-map blur and its regularisers, the paper's claim
STAGES = {
    "table2_whitebox": "whitebox",
    "table3_lowfreq": "lowfreq",
    "table3_adaptive": "adaptive",
    "table5_adaptive_adv_train": "adaptive_adv_train",
    "table4_pgd": "pgd",
    "table1_transfer": "transfer",
}


def _vector(record):
    """A record's 0/1 per victim; schema-0 runs stored none: rebuilt from its ASR (the count is
    right, which victims is not known)."""
    if record.success:
        return [int(c) for c in record.success]
    n, victims = round(record.value * (record.images or VICTIMS)), record.images or VICTIMS
    return [1] * n + [0] * (victims - n)


def _cell(record, rows):
    """(stage, row, inner) where a record feeds the seed statistics, else None: the seeded rows (and
    the original weights) at the paper's λ; Table III's low-frequency attack at DCT 16."""
    stage, attacked = STAGES.get(record.experiment), (rundir.ORIGINAL,) + rows
    if stage is None or record.metric not in ("asr", "l2") or (stage == "pgd") != (record.target is None):
        return None
    if stage == "pgd":
        return (stage, record.model, None) if record.metric == "asr" and record.model in attacked else None
    if stage == "transfer":
        return (stage, record.model, record.variant) if record.metric == "asr" and record.model in attacked else None
    if abs(record.lam - paper.RP2_LAMBDA) > 1e-12:
        return None
    if stage == "adaptive_adv_train":
        return (stage, record.variant, None) if "adv_train" in rows else None
    if stage == "lowfreq" and (record.variant != "dct16" or not record.model.startswith("conv_")):
        return None
    return (stage, record.model, None) if record.model in (attacked if stage == "whitebox" else rows) else None


def from_records(records, seeds, rows):
    """{stage: {row: {seed: {...}}}} of the seeded `rows` (and the original weights), read from the
    flat records (reports.flat_records): per seed, [targets][victims] 0/1 in target order and the L2
    per target; the models' legit accuracy; Table I's variants per source."""
    rows = tuple(rows)
    out = {
        "seeds": list(seeds),
        "models": {},
        "whitebox": {},
        "pgd": {},
        "lowfreq": {},
        "adaptive": {},
        "adaptive_adv_train": {},
        "transfer": {},
    }
    cells = {}  # (stage, row, seed, variant) -> (the entry, {"success": {target: 0/1 per victim}, "l2": {target: l2}})
    for r in records:
        if r.seed not in seeds:
            continue
        if r.experiment == "models" and r.metric == "legit_accuracy" and r.model in rows:
            out["models"].setdefault(r.model, {})[r.seed] = {"legit_accuracy": r.value, "test_images": r.images}
        where = _cell(r, rows)
        if where is None:
            continue
        stage, row, variant = where
        if (stage, row, r.seed, variant) not in cells:
            entry = out[stage].setdefault(row, {}).setdefault(r.seed, {})
            cells[stage, row, r.seed, variant] = (
                entry.setdefault(variant, {}) if stage == "transfer" else entry,
                {"success": {}, "l2": {}},
            )
        kept = cells[stage, row, r.seed, variant][1]
        kept["success" if r.metric == "asr" else "l2"][r.target] = _vector(r) if r.metric == "asr" else r.value
    for (stage, *_), (entry, kept) in cells.items():
        entry["success"] = [kept["success"][t] for t in sorted(kept["success"])]
        if stage not in ("pgd", "transfer"):
            entry["l2"] = [kept["l2"][t] for t in sorted(kept["l2"])]
    return out


def _stack(per_seed, key="success", seeds=None):
    """[seeds, ...] of the seeds every row in a comparison has (None when none)."""
    seeds = sorted(per_seed) if seeds is None else seeds
    arrays = [np.asarray(per_seed[s][key], np.float64) for s in seeds if s in per_seed]
    return np.stack(arrays) if arrays and len({a.shape for a in arrays}) == 1 else None


def row_intervals(seeds_data):
    """{stage: {row: {metric: {mean, lo, hi, seeds}}}} for every seeded row."""
    out = {}
    for stage in ("whitebox", "lowfreq", "adaptive", "adaptive_adv_train"):
        for row, per_seed in seeds_data[stage].items():
            success = _stack(per_seed)
            if success is None:
                continue
            out.setdefault(stage, {})[row] = {
                "avg_asr": intervals.asr_interval(success, "avg_asr"),
                "worst_asr": intervals.asr_interval(success, "worst_asr"),
                "l2": intervals.values_interval(_stack(per_seed, "l2")),
            }
    for row, per_seed in seeds_data["pgd"].items():
        out.setdefault("pgd", {})[row] = {"asr": intervals.asr_interval(_stack(per_seed), "avg_asr")}
    for row, per_seed in seeds_data["models"].items():
        out.setdefault("models", {})[row] = {
            "legit_accuracy": intervals.accuracy_interval(
                [v["legit_accuracy"] for v in per_seed.values()], next(iter(per_seed.values()))["test_images"]
            )
        }
    return out


def _common(*per_seeds):
    return sorted(set.intersection(*(set(p) for p in per_seeds))) if per_seeds else []


def _combine(verdicts):
    """All held: held; any not held: not held; else inconclusive."""
    return (
        "held"
        if verdicts and all(v == "held" for v in verdicts)
        else ("not held" if "not held" in verdicts else "inconclusive")
    )


def at_least(lo, hi, floor):
    """'held' when an interval [lo, hi] lies at or above `floor`, 'not held' when below it, else inconclusive."""
    return "held" if lo >= floor else ("not held" if hi < floor else "inconclusive")


def _fmt(d):
    return f"{100 * d['mean']:+.1f} pt [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"


def claims(seeds_data):
    """BlurNet's claims as paired comparisons: (claim, verdict, evidence); 'not measured' when the
    rows are missing."""
    out = []
    # 1. Feature-map blur beats input blur at equal kernel size (Table I): avg ASR, L1 minus input.
    ev, verdicts = [], []
    for source, per_seed in seeds_data["transfer"].items():
        seeds = sorted(per_seed)
        for name in per_seed[seeds[0]]:
            if name.startswith("input_blur_"):
                k = name.rsplit("_", 1)[1]
                a = np.stack([per_seed[s][f"l1_blur_{k}"]["success"] for s in seeds])
                b = np.stack([per_seed[s][name]["success"] for s in seeds])
                d = intervals.paired_difference(a, b)
                verdicts.append(intervals.verdict(d, -1))
                ev.append(f"{source} {k}x{k} (L1 − input blur): {_fmt(d)}")
    out.append(
        (
            "Feature-map blur beats input blur at equal kernel size (Table I, average ASR over 17 targets)",
            _combine(verdicts) if verdicts else "not measured",
            "; ".join(ev),
        )
    )
    # 2. BlurNet's defences lower the white-box average ASR below the baseline's (Table II's point).
    wb = seeds_data["whitebox"]
    ev, verdicts = [], []
    for row in (r for r in wb if r.startswith(BLURNET_ROWS) and "baseline" in wb):
        seeds = _common(wb[row], wb["baseline"])
        d = intervals.paired_difference(_stack(wb[row], seeds=seeds), _stack(wb["baseline"], seeds=seeds))
        verdicts.append(intervals.verdict(d, -1))
        theirs = 100 * (paper.TABLE2[row]["avg_asr"] - paper.TABLE2["baseline"]["avg_asr"])
        ev.append(f"{row} − baseline: {_fmt(d)} (paper {theirs:+.1f})")
    out.append(
        (
            "BlurNet's defences (conv, TV, Tikhonov) lower the white-box average ASR below the baseline's "
            "(Table II, at the paper's training budget)",
            _combine(verdicts) if verdicts else "not measured",
            "; ".join(ev),
        )
    )
    # 3. TV and Tik_hf have the lowest worst-case ASR (Table II).
    tv = [r for r in wb if r.startswith("tv_")]
    others = [r for r in wb if r in paper.TABLE2 and not r.startswith("tv_") and r != "tik_hf"]
    ev, verdicts = [], []
    if tv and "tik_hf" in wb and others:
        best_tv = min(tv, key=lambda r: _stack(wb[r]).mean(axis=-1).max(axis=-1).mean())
        for defended in (best_tv, "tik_hf"):
            for other in others:
                seeds = _common(wb[defended], wb[other])
                d = intervals.paired_difference(
                    _stack(wb[defended], seeds=seeds), _stack(wb[other], seeds=seeds), "worst_asr"
                )
                verdicts.append(intervals.verdict(d, -1))
                ev.append(f"{defended} − {other}: {_fmt(d)}")
    out.append(
        (
            "TV and Tik_hf have the lowest white-box worst-case ASR (Table II; paired worst-ASR differences "
            "against every other row)",
            _combine(verdicts) if verdicts else "not measured",
            "; ".join(ev),
        )
    )
    # 4. PGD breaks every model (Table IV): ASR at least 90%.
    ev, verdicts = [], []
    for row, per_seed in seeds_data["pgd"].items():
        r = intervals.asr_interval(_stack(per_seed))
        verdicts.append(at_least(r["lo"], r["hi"], 0.9))
        ev.append(f"{row} {100 * r['mean']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]")
    out.append(
        (
            "PGD (ε 8/255, 10 steps) breaks every model (ASR ≥ 90%) (Table IV)",
            _combine(verdicts) if verdicts else "not measured",
            ", ".join(ev),
        )
    )
    # 5. The low-frequency attack hurts conv_5 most: (lowfreq − white-box) of conv_5 minus that of the others.
    lf = seeds_data["lowfreq"]
    ev, verdicts = [], []
    if "conv_5" in lf and "conv_5" in wb:
        for other in (r for r in lf if r != "conv_5" and r in wb):
            seeds = _common(lf["conv_5"], wb["conv_5"], lf[other], wb[other])
            arrays = [_stack(x, seeds=seeds) for x in (lf["conv_5"], wb["conv_5"], lf[other], wb[other])]
            d = intervals.paired_contrast(arrays, [1, -1, -1, 1])
            verdicts.append(intervals.verdict(d, +1))
            ev.append(f"gain of conv_5 − gain of {other}: {_fmt(d)}")
    out.append(
        (
            "The low-frequency attack hurts the 5x5 conv model most (increase of average ASR over white-box)",
            _combine(verdicts) if verdicts else "not measured",
            "; ".join(ev),
        )
    )
    return out


def table(seeds_data, disagreements):
    """Markdown: Table II-V rows with seeds, mean [95% interval], the paper's number and whether our
    interval holds it. Rows whose interval misses the paper's number are listed in `disagreements`."""
    iv = row_intervals(seeds_data)
    return intervals_table(iv, seeds_data["seeds"], disagreements), iv


def intervals_table(iv, seeds, disagreements):
    """The Markdown of table() from its intervals (as tables.json stores them)."""
    lines = [
        "| table | row | seeds | metric | ours: mean [95% interval] | paper | paper inside? |",
        "|---|---|---|---|---|---|---|",
    ]

    def line(tab, row, metric, r, ref, fmt="pct"):
        show = (lambda v: f"{100 * v:.1f}") if fmt == "pct" else (lambda v: f"{v:.3f}")
        inside = "–" if ref is None else ("yes" if intervals.agrees(r, ref) else "**no**")
        if ref is not None and not intervals.agrees(r, ref):
            disagreements.append(
                f"{tab} {row} {metric}: ours {show(r['mean'])} [{show(r['lo'])}, {show(r['hi'])}], paper {show(ref)}"
            )
        lines.append(
            f"| {tab} | {row} | {r['seeds']} | {metric} | {show(r['mean'])} [{show(r['lo'])}, "
            f"{show(r['hi'])}] | {'–' if ref is None else show(ref)} | {inside} |"
        )

    for row, m in iv.get("models", {}).items():
        line("II", row, "legit acc.", m["legit_accuracy"], paper.TABLE2.get(row, {}).get("legit"))
    for row, m in iv.get("whitebox", {}).items():
        ref = paper.TABLE2.get("baseline" if row == rundir.ORIGINAL else row, {})
        for metric in ("avg_asr", "worst_asr"):
            line("II", row, metric.replace("_", " "), m[metric], ref.get(metric))
        line("II", row, "L2", m["l2"], ref.get("l2"), fmt="num")
    for stage, ref_table in (
        ("lowfreq", paper.TABLE3),
        ("adaptive", paper.TABLE3),
        ("adaptive_adv_train", paper.TABLE5),
    ):
        for row, m in iv.get(stage, {}).items():
            for metric in ("avg_asr", "worst_asr"):
                line(
                    "III" if stage != "adaptive_adv_train" else "V",
                    f"{row} ({stage})",
                    metric.replace("_", " "),
                    m[metric],
                    ref_table.get(row, {}).get(metric),
                )
    for row, m in iv.get("pgd", {}).items():
        line("IV", row, "PGD ASR", m["asr"], paper.TABLE4["asr"])
    head = (
        f"Seeds {seeds}: each seeded row is trained once per seed and attacked with that seed's RP2 noise "
        "initialisation (the original weights: one noise seed per seed). Interval: 95% percentile bootstrap "
        f"({intervals.N_BOOT} replicates) drawing seeds, then the 17 targets and the 40 victims within each "
        "seed (legit accuracy: seeds, then the test images binomially; L2: seeds, then targets). A worst-case "
        "ASR's bootstrap leans low (the maximum of a resample is at most the sample's)."
    )
    return "\n".join([head, ""] + lines)
