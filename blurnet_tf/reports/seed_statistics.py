"""Numbers with seeds behind them: every seed's records of the seeded rows, 95% intervals for each
metric (evaluation.intervals), the papers' numbers checked against them, and BlurNet's claims as
paired comparisons with one of three verdicts: held, not held, inconclusive."""

import numpy as np

from blurnet_tf import paper, rundir
from blurnet_tf.evaluation import intervals

VICTIMS = 40


def _success(record, lam=paper.RP2_LAMBDA):
    """[targets, victims] 0/1 at lambda, in target order; schema-0 rows (no per-victim vector) are
    rebuilt from their ASR (the count is right, which victims is not known)."""
    rows = sorted((r for r in record["rows"] if abs(r["lambda"] - lam) < 1e-12), key=lambda r: r["target"])
    return [r.get("success") or [1] * round(r["asr"] * VICTIMS) + [0] * (VICTIMS - round(r["asr"] * VICTIMS))
            for r in rows] or None


def _rows(record):
    return record and {"rows": record.rows if hasattr(record, "rows") else record["rows"]}


def collect_seeds(lay, profile):
    """{stage: {row: {seed: {...}}}} for the seeded rows (and the original weights' noise seeds)."""
    rows = tuple(r for r in profile.rows if r in profile.seeded_rows)
    out = {"seeds": list(profile.seeds), "models": {}, "whitebox": {}, "pgd": {}, "lowfreq": {}, "adaptive": {},
           "adaptive_adv_train": {}, "transfer": {}}
    for seed in profile.seeds:
        for row in rows:
            m = rundir.read_model(lay.model_dir(row, seed))
            if m:
                out["models"].setdefault(row, {})[seed] = {"legit_accuracy": m.legit_accuracy,
                                                           "test_images": m.test_images}
        for row in (rundir.ORIGINAL,) + rows:
            w = rundir.StickerRecord.read(lay.results("whitebox", row, seed))
            if w:
                out["whitebox"].setdefault(row, {})[seed] = {"success": _success({"rows": w.rows}),
                                                             "l2": _l2(w.rows)}
            p = rundir.PgdRecord.read(lay.results("pgd", row, seed))
            if p:
                n = round(p.pgd["asr"] * VICTIMS)
                out["pgd"].setdefault(row, {})[seed] = {"success": [p.pgd.get("success") or [1] * n + [0] * (VICTIMS - n)]}
        for row in (r for r in rows if r.startswith("conv_")):
            _add(out["lowfreq"], row, seed, rundir.StickerRecord.read(lay.results("lowfreq", f"{row}/dct16", seed)))
        for row in rows:
            _add(out["adaptive"], row, seed, rundir.StickerRecord.read(lay.results("adaptive", row, seed)))
        if "adv_train" in rows:
            for reg in profile.table5_regularisers:
                _add(out["adaptive_adv_train"], reg, seed,
                     rundir.StickerRecord.read(lay.results("adaptive_adv_train", reg, seed)))
        for source in (s for s in (rundir.ORIGINAL, "baseline") if s in (rundir.ORIGINAL,) + rows):
            t = rundir.ResultRecord.read_values(lay.results("transfer", source, seed))
            if t:
                out["transfer"].setdefault(source, {})[seed] = {
                    name: {"success": _success(v, t["lambda"])} for name, v in t["variants"].items()}
    return out


def _add(table, row, seed, record):
    if record:
        table.setdefault(row, {})[seed] = {"success": _success({"rows": record.rows}), "l2": _l2(record.rows)}


def _l2(rows, lam=paper.RP2_LAMBDA):
    return [r["l2"] for r in sorted(rows, key=lambda r: r["target"]) if abs(r["lambda"] - lam) < 1e-12]


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
                "l2": intervals.values_interval(_stack(per_seed, "l2"))}
    for row, per_seed in seeds_data["pgd"].items():
        out.setdefault("pgd", {})[row] = {"asr": intervals.asr_interval(_stack(per_seed), "avg_asr")}
    for row, per_seed in seeds_data["models"].items():
        out.setdefault("models", {})[row] = {"legit_accuracy": intervals.accuracy_interval(
            [v["legit_accuracy"] for v in per_seed.values()], next(iter(per_seed.values()))["test_images"])}
    return out


def _common(*per_seeds):
    return sorted(set.intersection(*(set(p) for p in per_seeds))) if per_seeds else []


def _combine(verdicts):
    """All held: held; any not held: not held; else inconclusive."""
    return "held" if verdicts and all(v == "held" for v in verdicts) else (
        "not held" if "not held" in verdicts else "inconclusive")


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
    out.append(("Feature-map blur beats input blur at equal kernel size (Table I, average ASR over 17 targets)",
                _combine(verdicts) if verdicts else "not measured", "; ".join(ev)))
    # 2. TV and Tik_hf have the lowest worst-case ASR (Table II).
    wb = seeds_data["whitebox"]
    tv = [r for r in wb if r.startswith("tv_")]
    others = [r for r in wb if r in paper.TABLE2 and not r.startswith("tv_") and r != "tik_hf"]
    ev, verdicts = [], []
    if tv and "tik_hf" in wb and others:
        best_tv = min(tv, key=lambda r: _stack(wb[r]).mean(axis=-1).max(axis=-1).mean())
        for defended in (best_tv, "tik_hf"):
            for other in others:
                seeds = _common(wb[defended], wb[other])
                d = intervals.paired_difference(_stack(wb[defended], seeds=seeds), _stack(wb[other], seeds=seeds),
                                                "worst_asr")
                verdicts.append(intervals.verdict(d, -1))
                ev.append(f"{defended} − {other}: {_fmt(d)}")
    out.append(("TV and Tik_hf have the lowest white-box worst-case ASR (Table II; paired worst-ASR differences "
                "against every other row)", _combine(verdicts) if verdicts else "not measured", "; ".join(ev)))
    # 3. PGD breaks every model (Table IV): ASR at least 90%.
    ev, verdicts = [], []
    for row, per_seed in seeds_data["pgd"].items():
        r = intervals.asr_interval(_stack(per_seed))
        verdicts.append("held" if r["lo"] >= 0.9 else ("not held" if r["hi"] < 0.9 else "inconclusive"))
        ev.append(f"{row} {100 * r['mean']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]")
    out.append(("PGD (ε 8/255, 10 steps) breaks every model (ASR ≥ 90%) (Table IV)",
                _combine(verdicts) if verdicts else "not measured", ", ".join(ev)))
    # 4. The low-frequency attack hurts conv_5 most: (lowfreq − white-box) of conv_5 minus that of the others.
    lf = seeds_data["lowfreq"]
    ev, verdicts = [], []
    if "conv_5" in lf and "conv_5" in wb:
        for other in (r for r in lf if r != "conv_5" and r in wb):
            seeds = _common(lf["conv_5"], wb["conv_5"], lf[other], wb[other])
            arrays = [_stack(x, seeds=seeds) for x in (lf["conv_5"], wb["conv_5"], lf[other], wb[other])]
            d = intervals.paired_contrast(arrays, [1, -1, -1, 1])
            verdicts.append(intervals.verdict(d, +1))
            ev.append(f"gain of conv_5 − gain of {other}: {_fmt(d)}")
    out.append(("The low-frequency attack hurts the 5x5 conv model most (increase of average ASR over white-box)",
                _combine(verdicts) if verdicts else "not measured", "; ".join(ev)))
    return out


def table(seeds_data, disagreements):
    """Markdown: Table II-V rows with seeds, mean [95% interval], the paper's number and whether our
    interval holds it. Rows whose interval misses the paper's number are listed in `disagreements`."""
    iv = row_intervals(seeds_data)
    seeds = seeds_data["seeds"]
    lines = ["| table | row | seeds | metric | ours: mean [95% interval] | paper | paper inside? |",
             "|---|---|---|---|---|---|---|"]

    def line(tab, row, metric, r, ref, fmt="pct"):
        show = (lambda v: f"{100 * v:.1f}") if fmt == "pct" else (lambda v: f"{v:.3f}")
        inside = "–" if ref is None else ("yes" if intervals.agrees(r, ref) else "**no**")
        if ref is not None and not intervals.agrees(r, ref):
            disagreements.append(f"{tab} {row} {metric}: ours {show(r['mean'])} [{show(r['lo'])}, {show(r['hi'])}], "
                                 f"paper {show(ref)}")
        lines.append(f"| {tab} | {row} | {r['seeds']} | {metric} | {show(r['mean'])} [{show(r['lo'])}, "
                     f"{show(r['hi'])}] | {'–' if ref is None else show(ref)} | {inside} |")

    for row, m in iv.get("models", {}).items():
        line("II", row, "legit acc.", m["legit_accuracy"], paper.TABLE2.get(row, {}).get("legit"))
    for row, m in iv.get("whitebox", {}).items():
        ref = paper.TABLE2.get("baseline" if row == rundir.ORIGINAL else row, {})
        for metric in ("avg_asr", "worst_asr"):
            line("II", row, metric.replace("_", " "), m[metric], ref.get(metric))
        line("II", row, "L2", m["l2"], ref.get("l2"), fmt="num")
    for stage, ref_table in (("lowfreq", paper.TABLE3), ("adaptive", paper.TABLE3), ("adaptive_adv_train", paper.TABLE5)):
        for row, m in iv.get(stage, {}).items():
            for metric in ("avg_asr", "worst_asr"):
                line("III" if stage != "adaptive_adv_train" else "V", f"{row} ({stage})", metric.replace("_", " "),
                     m[metric], ref_table.get(row, {}).get(metric))
    for row, m in iv.get("pgd", {}).items():
        line("IV", row, "PGD ASR", m["asr"], paper.TABLE4["asr"])
    head = (f"Seeds {seeds}: each seeded row is trained once per seed and attacked with that seed's RP2 noise "
            "initialisation (the original weights: one noise seed per seed). Interval: 95% percentile bootstrap "
            f"({intervals.N_BOOT} replicates) drawing seeds, then the 17 targets and the 40 victims within each "
            "seed (legit accuracy: seeds, then the test images binomially; L2: seeds, then targets). A worst-case "
            "ASR's bootstrap leans low (the maximum of a resample is at most the sample's).")
    return "\n".join([head, ""] + lines), iv
