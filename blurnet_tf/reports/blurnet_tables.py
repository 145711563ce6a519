"""BlurNet's Tables I-V and the Pixel Deflection tables as Markdown, ours beside the paper's."""

from blurnet_tf import paper
from blurnet_tf.reports.format import diff_from_paper, num, pct

SWEEP_KEY = "best_lambda_per_target"


def _agg(result, lam=paper.RP2_LAMBDA):
    return None if result is None else result["aggregate"].get(f"lambda={float(lam):g}")


def _legit(data, row):
    if row == "original":  # measured by the Table I step on our test split
        t = data["transfer"].get("original")
        return t and t["variants"]["none"]["legit_accuracy"]
    m = data["models"].get(row)
    return m and m["legit_accuracy"]


def table1(data, disagreements):
    lines = []
    for source, result in data["transfer"].items():
        if not result:
            continue
        lines += [
            f"\n*Stickers optimised on {'the original RP2 weights' if source == 'original' else 'our baseline'}"
            f" (λ {result['lambda']}), moved to the same weights with a fixed box blur.*\n",
            "| model | victim acc. (ours / paper) | ASR target 12 (ours / paper / Δ) | avg ASR, 17 targets |"
            " worst ASR | legit acc. (test split) |",
            "|---|---|---|---|---|---|",
        ]
        for name, v in result["variants"].items():
            key = "baseline" if name == "none" else name
            p = paper.TABLE1.get(key, {})
            label = "baseline (no blur)" if name == "none" else name.replace("_", " ")
            lines.append(
                f"| {label} | {pct(v['victim_accuracy'])} / {pct(p.get('accuracy'))} | "
                f"{pct(v['asr_target_12'])} / {pct(p.get('asr'))} / "
                + diff_from_paper(v["asr_target_12"], p.get("asr"), disagreements, f"Table I {source} {label} ASR")
                + " | "
                f"{pct(v['avg_asr'])} | {pct(v['worst_asr'])} | {pct(v['legit_accuracy'])} |"
            )
    return "\n".join(lines)


def _table2_rows(data):
    rows = []
    for row, w in data["whitebox"].items():
        if w:
            rows.append(
                (row, _legit(data, row), w["aggregate"], paper.TABLE2.get("baseline" if row == "original" else row))
            )
    for sigma, s in data["smoothing"].items():
        if s:
            rows.append(
                (f"smoothing_{sigma}", s["legit_accuracy"], s["aggregate"], paper.TABLE2.get(f"smoothing_{sigma}"))
            )
    return rows


def table2(data, disagreements, lambdas):
    sweep = len(lambdas) > 1
    head = (
        "| model | legit acc. (ours / paper / Δ) | avg ASR (ours / paper / Δ) | worst ASR (ours / paper / Δ) |"
        " L2 (ours / paper) |" + (" sweep: avg / worst (best λ per target) |" if sweep else "")
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for row, legit, agg, p in _table2_rows(data):
        a = agg[f"lambda={lambdas[0]}"]
        p = p or {}
        name = "original RP2 weights" if row == "original" else row
        cells = [
            f"{pct(ours)} / {pct(p.get(key))} / "
            + diff_from_paper(ours, p.get(key), disagreements, f"Table II {name} {what}")
            for ours, key, what in (
                (legit, "legit", "legit"),
                (a["avg_asr"], "avg_asr", "avg ASR"),
                (a["worst_asr"], "worst_asr", "worst ASR"),
            )
        ]
        line = f"| {name} | {' | '.join(cells)} | {num(a['l2'])} / {num(p.get('l2'))} |"
        if sweep:
            s = agg[SWEEP_KEY]
            line += f" {pct(s['avg_asr'])} / {pct(s['worst_asr'])} |"
        lines.append(line)
    return "\n".join(lines) if len(lines) > 2 else ""  # no rows: "not run in this profile"


def table3(data, disagreements):
    lines = [
        "| model | attack | avg ASR (ours / paper / Δ) | worst ASR (ours / paper / Δ) | L2 (ours / paper) |"
        " white-box avg / worst (ours) |",
        "|---|---|---|---|---|---|",
    ]
    entries = [
        (k.split("/")[0], "low-frequency RP2, DCT 16", v)
        for k, v in data["lowfreq"].items()
        if k.endswith("/dct16") and v
    ]
    entries += [(r, "regulariser-aware RP2", v) for r, v in data["adaptive"].items() if v]
    for row, attack, v in entries:
        a, p, w = _agg(v), paper.TABLE3.get(row, {}), _agg(data["whitebox"].get(row))
        lines.append(
            f"| {row} | {attack} | {pct(a['avg_asr'])} / {pct(p.get('avg_asr'))} / "
            f"{diff_from_paper(a['avg_asr'], p.get('avg_asr'), disagreements, f'Table III {row} avg ASR')} | "
            f"{pct(a['worst_asr'])} / {pct(p.get('worst_asr'))} / "
            f"{diff_from_paper(a['worst_asr'], p.get('worst_asr'), disagreements, f'Table III {row} worst ASR')} | "
            f"{num(a['l2'])} / {num(p.get('l2'))} | "
            f"{pct(w and w['avg_asr'])} / {pct(w and w['worst_asr'])} |"
        )
    return "\n".join(lines)


def table4(data, disagreements):
    lines = ["| model | ASR (ours / paper / Δ) | L2 (ours / paper) |", "|---|---|---|"]
    for row, p in data["pgd"].items():
        if p:
            l2p = paper.TABLE4["l2"].get(row)
            lo, hi = paper.TABLE4["l2_range"]
            name = "original RP2 weights" if row == "original" else row
            lines.append(
                f"| {name} | {pct(p['asr'])} / {pct(paper.TABLE4['asr'])} / "
                f"{diff_from_paper(p['asr'], paper.TABLE4['asr'], disagreements, f'Table IV {name} PGD ASR')} | "
                f"{num(p['l2'])} / {num(l2p) if l2p else f'{lo}–{hi}'} |"
            )
    return "\n".join(lines)


def table5(data, disagreements):
    lines = [
        "| adaptive attack on adv-train | avg ASR (ours / paper / Δ) | worst ASR (ours / paper / Δ) |"
        " L2 (ours / paper) |",
        "|---|---|---|---|",
    ]
    for reg, v in data["adaptive_adv_train"].items():
        if v:
            a, p = _agg(v), paper.TABLE5.get(reg, {})
            lines.append(
                f"| {reg} | {pct(a['avg_asr'])} / {pct(p.get('avg_asr'))} / "
                f"{diff_from_paper(a['avg_asr'], p.get('avg_asr'), disagreements, f'Table V {reg} avg ASR')} | "
                f"{pct(a['worst_asr'])} / {pct(p.get('worst_asr'))} / "
                f"{diff_from_paper(a['worst_asr'], p.get('worst_asr'), disagreements, f'Table V {reg} worst ASR')} | "
                f"{num(a['l2'])} / {num(p.get('l2'))} |"
            )
    return "\n".join(lines)


def pixel_deflection_tables(data):
    """Pixel Deflection: chosen parameters, the paper's Table 2 / 3 / 4 shapes, adaptive attacks."""
    pd = data.get("pixel_deflection")
    if not pd:
        return ""
    acc, p = pd["accuracy"], pd["parameters"]
    ens = next(k for k in acc if k.startswith("PD+WD (Ens-"))
    attacks = list(acc["no defence"])
    lines = [
        f"Classifier: `{pd['model']}` (the baseline recipe without the validation tracks). Parameters chosen by "
        f"the paper's linear search on the validation tracks ({len(pd['search'])} settings tried, objective "
        f"= mean of clean and FGSM accuracy): **{p['deflections']} deflections, window {p['window']}, "
        f"σ {p['sigma']}** (paper, for 299x299 ImageNet: 100, 10, 0.04). Attacks are made on the bare "
        f"classifier, then defended; accuracy on {pd['test_images']} test images the classifier gets right "
        f"(and on the {pd['victims_correct']} of 40 victims it gets right for RP2"
        f"{'; none is right, so all 40 are used' if not pd['victims_correct'] else ''}). Paper columns: ResNet-50 on "
        f"ImageNet (its Table 2).{_slow_attack_budget(pd['budget'])}",
        "",
        "| attack | L2 (ours / paper) | no defence (ours / paper) | PD+WD single (ours / paper) | "
        f"{ens} (ours / paper Ens-10) |",
        "|---|---|---|---|---|",
    ]
    for a in attacks:
        ref = paper.PD_TABLE2.get(a)
        l2 = pd["l2"].get(a)
        lines.append(
            f"| {a} | {num(l2) if l2 is not None else '0'} / {num(ref[3], 2) if ref else '–'} | "
            f"{pct(acc['no defence'][a])} / {ref[0] if ref else '–'} | "
            f"{pct(acc['PD+WD (single)'][a])} / {ref[1] if ref else '–'} | "
            f"{pct(acc[ens][a])} / {ref[2] if ref else '–'} |"
        )
    for name, reason in pd.get("not_run", {}).items():  # older runs: the attacks we could not run then
        lines.append(f"| {name} | not run: {reason} | | | |")
    lines += _bracketed_table(
        acc,
        attacks,
        "ablation",
        ["PD", "WD", "PD+WD", "JPEG", "PD+JPEG"],
        paper.PD_TABLE3,
        "Ablation (single run; paper's Ens-10 numbers in brackets, its Table 3):",
    )
    lines += _bracketed_table(
        acc,
        attacks,
        "threshold",
        ["Hard", "VisuShrink", "BayesShrink"],
        paper.PD_TABLE4,
        "Thresholding after deflection (single run; paper's Table 4 in brackets):",
    )
    ad = pd["adaptive_accuracy"]
    b = pd["budget"]
    lines += [
        "",
        f"Adaptive attacker: BPDA (identity backward pass) + EOT over {b['eot_samples']} random defences "
        f"per step; PGD L∞ ε 8/255, {b['adaptive_pgd_steps']} steps on {min(200, pd['test_images'])} test images; "
        "RP2 λ 0.002 "
        f"{b['adaptive_rp2_epochs']} epochs, targets {pd['adaptive_rp2_targets']}. Accuracy under the real "
        "(random) defence:",
        "",
        "| attack | L2 | no defence | PD+WD single | " + ens + " |",
        "|---|---|---|---|---|",
    ]
    for a in ad["no defence"]:
        lines.append(
            f"| {a} | {num(pd['adaptive_l2'][a])} | {pct(ad['no defence'][a])} | "
            f"{pct(ad['PD+WD (single)'][a])} | {pct(ad[ens][a])} |"
        )
    return "\n".join(lines)


def _slow_attack_budget(b):
    """The optimisation attacks' budgets (runs before they were added have none)."""
    if "lbfgs_steps" not in b:
        return ""
    classes = b.get("deepfool_classes", 10) or "all"  # runs before the field used ART's top-10 shortcut
    return (
        f" Budgets: C&W {b['cw_search']} constants x {b['cw_steps']} steps; DeepFool at most {b['deepfool_steps']} "
        f"steps (overshoot 0.02, {classes} classes); JSMA θ +1, γ {b['jsma_gamma']:g}; "
        f"L-BFGS {b['lbfgs_search']} constants "
        f"x {b['lbfgs_steps']} L-BFGS-B iterations; JSMA and L-BFGS target one seeded random other class."
    )


def _bracketed_table(acc, attacks, prefix, cols, reference, caption):
    """Rows = attacks, columns = defence variants, the paper's number in brackets where it has one."""
    lines = ["", caption, "", "| attack | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for a in attacks:
        ref = reference.get(a, {})
        lines.append(
            f"| {a} | "
            + " | ".join(f"{pct(acc[f'{prefix}: {c}'][a])}" + (f" ({ref[c]})" if c in ref else "") for c in cols)
            + " |"
        )
    return lines
