"""The report's Defend++ section: its MNIST Table 2 and ablation (Table 1) beside the paper's,
Defend++ on LISA beside BlurNet's rows, the reconstruction ratio R (its Fig. 8) and its claims."""

import pathlib

from blurnet_tf import files, paper, rundir
from blurnet_tf.reports import defendpp_evidence
from blurnet_tf.reports.defendpp_evidence import accuracy as _acc
from blurnet_tf.reports.format import diff_from_paper, num, pct

ATTACKS = ("clean", "fgsm", "bim", "cw", "ddn")
LISA_ROWS = ("baseline", "defendpp", "adv_train", "tv_1e-4", "tik_hf", "conv_5")
PAPER_NET = "_resnet18"  # the rows run as the paper ran them: ResNet-18, the official split, SGD
FIGURES = "defendpp_figures"


def collect(work_dir):
    lay = rundir.Layout(work_dir)
    models, robustness, transfer = {}, {}, {}
    for metrics in sorted(lay.mnist_model_dir("*").parent.glob(f"*/{rundir.METRICS_FILE}")):
        m = rundir.read_model(metrics.parent)
        models[metrics.parent.name] = {
            "legit_accuracy": m.legit_accuracy,
            "epochs": m.epochs,
            "split": m.split,
            "wall_seconds": m.wall_seconds,
            "precision": m.precision,
            "architecture": m.flags.get("architecture") or "mnist_resnet",
            "reconstruction_weight": (m.flags.get("params") or {}).get("reconstruction_weight"),
        }
    for result in sorted(lay.mnist_robustness_dir("*").parent.glob(f"*/{rundir.RESULTS_FILE}")):
        r = files.read_json(result)
        entry = {"images": r["images"], "budget": r["budget"], "results": r["results"]}
        if r.get("source_model"):  # attacks made on another model (Tables 7-8)
            transfer[result.parent.name] = {
                **entry,
                "source": pathlib.Path(r["source_model"]).name,
                "target": pathlib.Path(r["model"]).name,
            }
        else:
            robustness[result.parent.name] = entry
    return {
        "models": models,
        "robustness": robustness,
        "transfer": transfer,
        "reconstructions": rundir.ResultRecord.read_values(lay.root / FIGURES / rundir.RESULTS_FILE),
    }


def _table(dpp, reference, disagreements, table_name):
    head = (
        "| model | "
        + " | ".join(f"{a} (ours / paper / Δ)" for a in ("clean", "FGSM", "BIM", "C&W", "DDN"))
        + " | C&W / DDN median L2 |"
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for row, ref in reference.items():
        if row not in dpp["robustness"]:
            continue
        cells, label = [], f"Defend++ {table_name} {ref['label']}"
        # A row already compared in Table 2 is shown again in Table 1 but flagged once.
        row_disagreements = [] if table_name == "Table 1" and row in paper.DEFENDPP_TABLE2 else disagreements
        for attack in ATTACKS:
            ours, theirs = _acc(dpp, row, attack), ref[attack] / 100
            cells.append(
                f"{pct(ours)} / {ref[attack]:.2f} / "
                + diff_from_paper(ours, theirs, row_disagreements, f"{label} {attack}")
            )
        res = dpp["robustness"][row]["results"]
        med = " / ".join(num(res.get(a, {}).get("median_l2"), 2).replace("inf", "∞") for a in ("cw", "ddn"))
        lines.append(f"| {row} ({ref['label']}) | " + " | ".join(cells) + f" | {med} |")
    return lines


def _lisa_table(data):
    lines = ["| model | legit acc. | white-box RP2 avg ASR | worst ASR | PGD ε 8/255 ASR |", "|---|---|---|---|---|"]
    for row in LISA_ROWS:
        wb, pgd, m = data["whitebox"].get(row), data["pgd"].get(row), data["models"].get(row)
        if not wb:
            continue
        a = wb["aggregate"][f"lambda={paper.RP2_LAMBDA:g}"]
        lines.append(
            f"| {row} | {pct(m and m['legit_accuracy'])} | {pct(a['avg_asr'])} | {pct(a['worst_asr'])} | "
            f"{pct(pgd and pgd['asr'])} |"
        )
    return lines


def _setting(dpp, rows):
    """How `rows` were trained and tested, from their records."""
    models = [dpp["models"][r] for r in rows if r in dpp["models"]]
    if not models:
        return "no training record"
    split, images = models[0]["split"], dpp["robustness"][rows[0]]["images"]
    epochs = ", ".join(map(str, sorted({m["epochs"] for m in models})))
    if split.get("mnist_split") == "official":
        held = f" ({split['validation_images']:,} held out)" if split.get("validation_images") else ""
        data = (
            f"trained on {split['train_images']:,} of the official 60,000 training images{held}, attacked on "
            f"the first {images} of the official 10,000 test images"
        )
    else:
        data = (
            f"**not the paper's data:** the 10,000 official test images split {split.get('train_images', '?')} "
            f"train / {split.get('test_images', '?')} test (seed {split.get('seed', '?')}), attacked on the "
            f"first {images}"
        )
    if models[0].get("architecture") == "mnist_resnet18":
        net = (
            f"ResNet-18 (11.2 M parameters) with the paper's SGD (momentum 0.9, weight decay 5e-4, batch 256, "
            f"rate 0.01 divided by 10 after 40% and 80% of the steps) for {epochs} epochs of the paper's 250"
        )
    else:
        net = (
            f"a 0.16 M-parameter residual net (`models/mnist_resnet.py`) trained with Adam for {epochs} "
            "epochs, not the paper's ResNet-18"
        )
    return f"{net}; {data}"


def section(data, disagreements):
    """Markdown of the Defend++ section ('' when nothing of it ran)."""
    dpp = data.get("defendpp") or {}
    if not dpp.get("robustness") and not data["whitebox"].get("defendpp"):
        return ""
    lines = []
    if dpp.get("robustness"):
        any_row = next(iter(dpp["robustness"].values()))
        b = any_row["budget"]
        lines += [
            f"MNIST, accuracy in %. Attacks: FGSM ε {b['fgsm_eps']}; BIM ε {b['bim_eps']}, {b['bim_steps']} steps of "
            f"{b['bim_step']}; C&W L2 {b['cw_search']} x {b['cw_steps']} iterations; DDN {b['ddn_steps']} steps. C&W "
            f"and DDN are minimum-norm attacks: their accuracy counts an image as broken only when the adversarial "
            f"found is within ‖δ‖₂ ≤ {b['l2_budget']} (the paper does not say how it scores them); their median "
            "smallest L2 is beside it (∞ when the attack failed on most images).",
            "",
        ]
        paper_rows = [r for r in paper.DEFENDPP_TABLE2_RESNET18 if r in dpp["robustness"]]
        if paper_rows:
            lines += [f"**Defend++ Table 2 as the paper ran it** ({_setting(dpp, paper_rows)}):", ""]
            lines += _table(dpp, paper.DEFENDPP_TABLE2_RESNET18, disagreements, "Table 2 (ResNet-18)")
            lines += [""]
        small = [r for r in dpp["robustness"] if r in paper.DEFENDPP_TABLE2 or r in paper.DEFENDPP_TABLE1]
        if small:
            lines += [
                f"**Defend++ Table 2 (comparison with no defence and FGSM adversarial training)** "
                f"({_setting(dpp, small)}):",
                "",
            ]
            lines += _table(dpp, paper.DEFENDPP_TABLE2, disagreements, "Table 2")
            lines += ["", "**Defend++ Table 1 (ablation: multi-scale low-pass objective, pyramid vs hourglass):**", ""]
            lines += _table(dpp, paper.DEFENDPP_TABLE1, disagreements, "Table 1")
        lines += defendpp_evidence.tables(dpp)
    rec = dpp.get("reconstructions") or {}
    if rec:
        lines += [
            "",
            "**Reconstructions (Fig. 8):** R = D_rc / D_ra, the distance from the auto-encoder's "
            "reconstruction of an FGSM image to the clean image over its distance to the FGSM image; the paper "
            "finds R < 1 for every image.",
            "",
            "| model | images | FGSM ε | R < 1 | median R | max R | clean reconstruction MSE |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in rec.items():
            lines.append(
                f"| {name} | {r['images']} | {r['fgsm_eps']:.3g} | {pct(r['fraction_below_1'])}% | "
                f"{r['ratio_median']:.2f} | {r['ratio_max']:.2f} | {r['reconstruction_error_clean']:.4f} |"
            )
    if data["whitebox"].get("defendpp"):
        lines += [
            "",
            "**Defend++ on LISA** (the LISA-CNN trained with the pyramid auto-encoder; also a row of Table II "
            "and Table IV), beside the baseline and BlurNet's defences; λ 0.002, 17 targets, 40 victims. "
            "The paper has no LISA numbers.",
            "",
        ]
        lines += _lisa_table(data)
    return "\n".join(lines)


def claims(data):
    """Defend++'s claims, as (claim, verdict, evidence) like the BlurNet claims."""
    dpp = data.get("defendpp") or {}
    out = []

    def acc(row, attack):
        return _acc(dpp, row, attack) if dpp.get("robustness") else None

    def verdict(values, ok):
        return "not measured" if any(v is None for v in values) else ("held" if ok() else "not held")

    attacks = ("fgsm", "bim", "cw", "ddn")
    base = [acc("mnist_baseline", a) for a in attacks]
    ours = [acc("mnist_defendpp", a) for a in attacks]
    out.append(
        (
            "Defend++ raises accuracy over no defence under every attack (FGSM, BIM, C&W, DDN; Table 2)",
            verdict(base + ours, lambda: all(o > b for o, b in zip(ours, base))),
            ", ".join(f"{a}: {pct(o)}% vs {pct(b)}%" for a, o, b in zip(attacks, ours, base)),
        )
    )
    pair = [acc("mnist_defendpp", "bim"), acc("mnist_fgsm_train", "bim")]
    t2 = paper.DEFENDPP_TABLE2
    out.append(
        (
            f"Defend++ beats FGSM adversarial training under BIM (Table 2: {t2['mnist_defendpp']['bim']:.2f} vs "
            f"{t2['mnist_fgsm_train']['bim']:.2f})",
            verdict(pair, lambda: pair[0] > pair[1]),
            f"{pct(pair[0])}% vs {pct(pair[1])}%",
        )
    )
    clean = [acc("mnist_defendpp", "clean"), acc("mnist_baseline", "clean")]
    out.append(
        (
            f"Defend++ keeps clean accuracy (within 0.5 points of no defence; Table 2: "
            f"{t2['mnist_defendpp']['clean']:.2f} vs {t2['mnist_baseline']['clean']:.2f})",
            verdict(clean, lambda: clean[0] >= clean[1] - 0.005),
            f"{pct(clean[0])}% vs {pct(clean[1])}%",
        )
    )
    for other, what in (
        ("mnist_defendpp_no_lowpass", "The multi-scale low-pass objective helps"),
        ("mnist_defendpp_hourglass", "The pyramid decoder beats the plain hourglass"),
    ):
        v = [acc("mnist_defendpp", "fgsm"), acc(other, "fgsm"), acc("mnist_defendpp", "bim"), acc(other, "bim")]
        out.append(
            (
                f"{what} (Table 1: higher FGSM and BIM accuracy)",
                verdict(v, lambda: v[0] > v[1] and v[2] > v[3]),
                f"FGSM {pct(v[0])}% vs {pct(v[1])}%, BIM {pct(v[2])}% vs {pct(v[3])}%",
            )
        )
    if any(r in (dpp.get("robustness") or {}) for r in paper.DEFENDPP_TABLE2_RESNET18):
        base = [acc("mnist_baseline" + PAPER_NET, a) for a in attacks]
        ours = [acc("mnist_defendpp" + PAPER_NET, a) for a in attacks]
        model = (dpp.get("models") or {}).get("mnist_defendpp" + PAPER_NET) or {}
        budget = (
            f"{model.get('epochs', '?')} of the paper's 250 epochs, "
            f"{(dpp['robustness'].get('mnist_defendpp' + PAPER_NET) or {}).get('images', '?')} test images"
        )
        out.append(
            (
                "Defend++ raises accuracy over no defence under every attack, in the paper's setting (ResNet-18, "
                f"the 60,000 / 10,000 split, SGD; {budget}; Table 2)",
                verdict(base + ours, lambda: all(o > b for o, b in zip(ours, base))),
                ", ".join(f"{a}: {pct(o)}% vs {pct(b)}%" for a, o, b in zip(attacks, ours, base)),
            )
        )
        clean = [acc("mnist_defendpp" + PAPER_NET, "clean"), acc("mnist_baseline" + PAPER_NET, "clean")]
        out.append(
            (
                f"Defend++ keeps clean accuracy in the paper's setting (within 0.5 points of no defence; {budget})",
                verdict(clean, lambda: clean[0] >= clean[1] - 0.005),
                f"{pct(clean[0])}% vs {pct(clean[1])}%",
            )
        )
    out += defendpp_evidence.claims(dpp)
    rec = (dpp.get("reconstructions") or {}).get("mnist_mnist_defendpp")
    out.append(
        (
            "The auto-encoder's reconstruction of an attacked image is closer to the clean image (R < 1 for "
            "every image; Fig. 8)",
            verdict([rec], lambda: rec["fraction_below_1"] == 1.0),
            f"R < 1 for {pct(rec['fraction_below_1'])}% of {rec['images']} images, median {rec['ratio_median']:.2f}"
            if rec
            else "",
        )
    )
    return out
