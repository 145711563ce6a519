"""Tables I-V, Figs. 3/5/6, the paper's claims and REPORT.md from a reproduction's step outputs.

Everything is read from the run's directory (models/*/metrics.json, <stage>/<name>/results.json),
so the report can be regenerated at any time: rows whose steps have not run yet are left out
and listed as missing.
"""

import json
import os
import pathlib
import platform
import shutil
import time

from blurnet_tf import files
from blurnet_tf.evaluation.deflection_protocol import NOT_RUN
from blurnet_tf import paper
from blurnet_tf.reports import defendpp_section as defendpp, figures
from blurnet_tf.reports.format import DISAGREE_POINTS, _diff, _num, _pct

PGD_BROKEN = 0.9        # "PGD breaks a model": ASR at least this
SWEEP_KEY = "best_lambda_per_target"
STAGES = ("train", "whitebox", "transfer", "smoothing", "lowfreq", "adaptive", "adaptive_adv_train", "pgd",
          "pixel_deflection", "defendpp", "figures")


def _agg(result, lam="0.002"):
    return None if result is None else result["aggregate"].get(f"lambda={lam}")


def collect(work_dir, profile):
    """All numbers of the report as one JSON-able dict."""
    root = pathlib.Path(work_dir)
    rows = ("original",) + tuple(profile.rows)
    models = {r: files.read_json(root / "models" / r / "metrics.json") for r in profile.rows}
    whitebox = {r: files.read_json(root / "whitebox" / r / "results.json") for r in rows}
    smoothing = {p.name: files.read_json(p / "results.json") for p in sorted((root / "smoothing").glob("*"))}
    lowfreq = {f"{p.parent.name}/{p.name}": files.read_json(p / "results.json") for p in sorted((root / "lowfreq").glob("*/*"))}
    return {
        "profile": profile.name,
        "models": {r: m and {k: m[k] for k in ("legit_accuracy", "victims_correct", "wall_seconds")} | {
            "epochs": m["flags"]["epochs"]} for r, m in models.items()},
        "whitebox": {r: w and {"aggregate": w["aggregate"], "rows": w["rows"],
                               "clean_victim_accuracy": w["clean_victim_accuracy"]} for r, w in whitebox.items()},
        "transfer": {s: files.read_json(root / "transfer" / s / "results.json") for s in ("original", "baseline")},
        "smoothing": smoothing,
        "lowfreq": {k: v and {"aggregate": v["aggregate"], "rows": v["rows"]} for k, v in lowfreq.items()},
        "adaptive": {r: (a := files.read_json(root / "adaptive" / r / "results.json")) and
                     {"aggregate": a["aggregate"], "rows": a["rows"]} for r in profile.rows},
        "adaptive_adv_train": {g: (a := files.read_json(root / "adaptive_adv_train" / g / "results.json")) and
                               {"aggregate": a["aggregate"], "rows": a["rows"]} for g in profile.table5_regularisers},
        "pgd": {r: (p := files.read_json(root / "pgd" / r / "results.json")) and p["pgd"] for r in rows},
        "spectra": files.read_json(root / "figures" / "results.json"),
        "pixel_deflection": files.read_json(root / "pixel_deflection" / "results.json"),
        "defendpp": defendpp.collect(root),
    }


def _legit(data, row):
    if row == "original":  # measured by the Table I step on our test split
        t = data["transfer"].get("original")
        return t and t["variants"]["none"]["legit_accuracy"]
    m = data["models"].get(row)
    return m and m["legit_accuracy"]


def table1(data, flags):
    lines = []
    for source, result in data["transfer"].items():
        if not result:
            continue
        lines += [f"\n*Stickers optimised on {'the original RP2 weights' if source == 'original' else 'our baseline'}"
                  f" (λ {result['lambda']}), moved to the same weights with a fixed box blur.*\n",
                  "| model | victim acc. (ours / paper) | ASR target 12 (ours / paper / Δ) | avg ASR, 17 targets |"
                  " worst ASR | legit acc. (test split) |",
                  "|---|---|---|---|---|---|"]
        for name, v in result["variants"].items():
            key = "baseline" if name == "none" else name
            p = paper.TABLE1.get(key, {})
            label = "baseline (no blur)" if name == "none" else name.replace("_", " ")
            lines.append(f"| {label} | {_pct(v['victim_accuracy'])} / {_pct(p.get('accuracy'))} | "
                         f"{_pct(v['asr_target_12'])} / {_pct(p.get('asr'))} / "
                         f"{_diff(v['asr_target_12'], p.get('asr'), flags, f'Table I {source} {label} ASR')} | "
                         f"{_pct(v['avg_asr'])} | {_pct(v['worst_asr'])} | {_pct(v['legit_accuracy'])} |")
    return "\n".join(lines)


def _table2_rows(data):
    rows = []
    for row, w in data["whitebox"].items():
        if w:
            rows.append((row, _legit(data, row), w["aggregate"], paper.TABLE2.get("baseline" if row == "original" else row)))
    for sigma, s in data["smoothing"].items():
        if s:
            rows.append((f"smoothing_{sigma}", s["legit_accuracy"], s["aggregate"], paper.TABLE2.get(f"smoothing_{sigma}")))
    return rows


def table2(data, flags, lambdas):
    sweep = len(lambdas) > 1
    head = ("| model | legit acc. (ours / paper / Δ) | avg ASR (ours / paper / Δ) | worst ASR (ours / paper / Δ) |"
            " L2 (ours / paper) |" + (" sweep: avg / worst (best λ per target) |" if sweep else ""))
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for row, legit, agg, p in _table2_rows(data):
        a = agg[f"lambda={lambdas[0]}"]
        p = p or {}
        name = "original RP2 weights" if row == "original" else row
        line = (f"| {name} | {_pct(legit)} / {_pct(p.get('legit'))} / {_diff(legit, p.get('legit'), flags, f'Table II {name} legit')} | "
                f"{_pct(a['avg_asr'])} / {_pct(p.get('avg_asr'))} / {_diff(a['avg_asr'], p.get('avg_asr'), flags, f'Table II {name} avg ASR')} | "
                f"{_pct(a['worst_asr'])} / {_pct(p.get('worst_asr'))} / {_diff(a['worst_asr'], p.get('worst_asr'), flags, f'Table II {name} worst ASR')} | "
                f"{_num(a['l2'])} / {_num(p.get('l2'))} |")
        if sweep:
            s = agg[SWEEP_KEY]
            line += f" {_pct(s['avg_asr'])} / {_pct(s['worst_asr'])} |"
        lines.append(line)
    return "\n".join(lines)


def table3(data, flags):
    lines = ["| model | attack | avg ASR (ours / paper / Δ) | worst ASR (ours / paper / Δ) | L2 (ours / paper) |"
             " white-box avg / worst (ours) |", "|---|---|---|---|---|---|"]
    entries = [(k.split("/")[0], "low-frequency RP2, DCT 16", v) for k, v in data["lowfreq"].items()
               if k.endswith("/dct16") and v]
    entries += [(r, "regulariser-aware RP2", v) for r, v in data["adaptive"].items() if v]
    for row, attack, v in entries:
        a, p, w = _agg(v), paper.TABLE3.get(row, {}), _agg(data["whitebox"].get(row))
        lines.append(f"| {row} | {attack} | {_pct(a['avg_asr'])} / {_pct(p.get('avg_asr'))} / "
                     f"{_diff(a['avg_asr'], p.get('avg_asr'), flags, f'Table III {row} avg ASR')} | "
                     f"{_pct(a['worst_asr'])} / {_pct(p.get('worst_asr'))} / "
                     f"{_diff(a['worst_asr'], p.get('worst_asr'), flags, f'Table III {row} worst ASR')} | "
                     f"{_num(a['l2'])} / {_num(p.get('l2'))} | "
                     f"{_pct(w and w['avg_asr'])} / {_pct(w and w['worst_asr'])} |")
    return "\n".join(lines)


def table4(data, flags):
    lines = ["| model | ASR (ours / paper / Δ) | L2 (ours / paper) |", "|---|---|---|"]
    for row, p in data["pgd"].items():
        if p:
            l2p = paper.TABLE4["l2"].get(row)
            lo, hi = paper.TABLE4["l2_range"]
            name = "original RP2 weights" if row == "original" else row
            lines.append(f"| {name} | {_pct(p['asr'])} / {_pct(paper.TABLE4['asr'])} / "
                         f"{_diff(p['asr'], paper.TABLE4['asr'], flags, f'Table IV {name} PGD ASR')} | "
                         f"{_num(p['l2'])} / {_num(l2p) if l2p else f'{lo}–{hi}'} |")
    return "\n".join(lines)


def table5(data, flags):
    lines = ["| adaptive attack on adv-train | avg ASR (ours / paper / Δ) | worst ASR (ours / paper / Δ) |"
             " L2 (ours / paper) |", "|---|---|---|---|"]
    for reg, v in data["adaptive_adv_train"].items():
        if v:
            a, p = _agg(v), paper.TABLE5.get(reg, {})
            lines.append(f"| {reg} | {_pct(a['avg_asr'])} / {_pct(p.get('avg_asr'))} / "
                         f"{_diff(a['avg_asr'], p.get('avg_asr'), flags, f'Table V {reg} avg ASR')} | "
                         f"{_pct(a['worst_asr'])} / {_pct(p.get('worst_asr'))} / "
                         f"{_diff(a['worst_asr'], p.get('worst_asr'), flags, f'Table V {reg} worst ASR')} | "
                         f"{_num(a['l2'])} / {_num(p.get('l2'))} |")
    return "\n".join(lines)


def pixel_deflection_tables(data):
    """Pixel Deflection: chosen parameters, the paper's Table 2 / 3 / 4 shapes, adaptive attacks."""
    pd = data.get("pixel_deflection")
    if not pd:
        return ""
    acc, p = pd["accuracy"], pd["parameters"]
    ens = next(k for k in acc if k.startswith("PD+WD (Ens-"))
    attacks = list(acc["no defence"])
    lines = [f"Classifier: `{pd['model']}` (the baseline recipe without the validation tracks). Parameters chosen by "
             f"the paper's linear search on the validation tracks ({len(pd['search'])} settings tried, objective "
             f"= mean of clean and FGSM accuracy): **{p['deflections']} deflections, window {p['window']}, "
             f"σ {p['sigma']}** (paper, for 299x299 ImageNet: 100, 10, 0.04). Attacks are made on the bare "
             f"classifier, then defended; accuracy on {pd['test_images']} test images the classifier gets right "
             f"(and on the {pd['victims_correct']} of 40 victims it gets right for RP2"
             f"{'; none is right, so all 40 are used' if not pd['victims_correct'] else ''}). Paper columns: ResNet-50 on "
             "ImageNet (its Table 2).", "",
             "| attack | L2 (ours / paper) | no defence (ours / paper) | PD+WD single (ours / paper) | "
             f"{ens} (ours / paper Ens-10) |", "|---|---|---|---|---|"]
    for a in attacks:
        ref = paper.PD_TABLE2.get(a)
        l2 = pd["l2"].get(a)
        lines.append(f"| {a} | {_num(l2) if l2 is not None else '0'} / {_num(ref[3], 2) if ref else '–'} | "
                     f"{_pct(acc['no defence'][a])} / {ref[0] if ref else '–'} | "
                     f"{_pct(acc['PD+WD (single)'][a])} / {ref[1] if ref else '–'} | "
                     f"{_pct(acc[ens][a])} / {ref[2] if ref else '–'} |")
    for name, reason in NOT_RUN.items():
        lines.append(f"| {name} | not run: {reason} | | | |")
    lines += _bracketed_table(acc, attacks, "ablation", ["PD", "WD", "PD+WD", "JPEG", "PD+JPEG"], paper.PD_TABLE3,
                              "Ablation (single run; paper's Ens-10 numbers in brackets, its Table 3):")
    lines += _bracketed_table(acc, attacks, "threshold", ["Hard", "VisuShrink", "BayesShrink"], paper.PD_TABLE4,
                              "Thresholding after deflection (single run; paper's Table 4 in brackets):")
    ad = pd["adaptive_accuracy"]
    b = pd["budget"]
    lines += ["", f"Adaptive attacker: BPDA (identity backward pass) + EOT over {b['eot_samples']} random defences "
              f"per step; PGD L∞ ε 8/255, {b['adaptive_pgd_steps']} steps on {min(200, pd['test_images'])} test images; RP2 λ 0.002 "
              f"{b['adaptive_rp2_epochs']} epochs, targets {pd['adaptive_rp2_targets']}. Accuracy under the real "
              "(random) defence:", "",
              "| attack | L2 | no defence | PD+WD single | " + ens + " |", "|---|---|---|---|---|"]
    for a in ad["no defence"]:
        lines.append(f"| {a} | {_num(pd['adaptive_l2'][a])} | {_pct(ad['no defence'][a])} | "
                     f"{_pct(ad['PD+WD (single)'][a])} | {_pct(ad[ens][a])} |")
    return "\n".join(lines)


def _bracketed_table(acc, attacks, prefix, cols, reference, caption):
    """Rows = attacks, columns = defence variants, the paper's number in brackets where it has one."""
    lines = ["", caption, "", "| attack | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for a in attacks:
        ref = reference.get(a, {})
        lines.append(f"| {a} | " + " | ".join(
            f"{_pct(acc[f'{prefix}: {c}'][a])}" + (f" ({ref[c]})" if c in ref else "") for c in cols) + " |")
    return lines


def claims(data):
    """The paper's qualitative claims, each as (claim, verdict, evidence); verdict is
    'held', 'not held' or 'not measured' (its rows are missing from this profile)."""
    out = []
    # 1. Feature-map blur beats input blur at equal kernel size (Table I).
    ev, ok, seen = [], True, False
    for source, result in data["transfer"].items():
        if not result:
            continue
        v = result["variants"]
        for name in v:
            if name.startswith("input_blur_"):
                k = name.rsplit("_", 1)[1]
                a_in, a_l1 = v[name]["avg_asr"], v[f"l1_blur_{k}"]["avg_asr"]
                seen, ok = True, ok and a_l1 < a_in  # strictly: a tie is not "beats"
                ev.append(f"{source} {k}x{k}: avg ASR L1 blur {_pct(a_l1)}% vs input blur {_pct(a_in)}%")
    out.append(("Feature-map blur beats input blur at equal kernel size (Table I, average ASR over 17 targets)",
                _verdict(seen, ok), "; ".join(ev)))
    # 2. TV and Tik_hf have the lowest white-box worst-case ASR (Table II).
    worst = {row: agg[f"lambda={_first_lambda(agg)}"]["worst_asr"] for row, _, agg, p in _table2_rows(data)
             if row != "original" and p}  # the paper's own rows (Defend++ is ours)
    tv = [worst[r] for r in worst if r.startswith("tv_")]
    others = [v for r, v in worst.items() if not r.startswith("tv_") and r != "tik_hf"]
    seen = bool(tv) and "tik_hf" in worst and bool(others)
    ok = seen and max(min(tv), worst["tik_hf"]) < min(others)
    out.append(("TV and Tik_hf have the lowest white-box worst-case ASR (Table II; strictly below every other "
                "row, best TV row)", _verdict(seen, ok),
                ", ".join(f"{r} {_pct(v)}%" for r, v in sorted(worst.items(), key=lambda kv: kv[1]))))
    # 3. PGD breaks every model (Table IV).
    pgd = {r: p["asr"] for r, p in data["pgd"].items() if p}
    out.append((f"PGD (ε 8/255, 10 steps) breaks every model (ASR ≥ {PGD_BROKEN:.0%}) (Table IV)",
                _verdict(bool(pgd), all(v >= PGD_BROKEN for v in pgd.values())),
                ", ".join(f"{r} {_pct(v)}%" for r, v in pgd.items())))
    # 4. The low-frequency attack hurts the 5x5 conv model most (Table III vs II).
    gain = {}
    for key, v in data["lowfreq"].items():
        row = key.split("/")[0]
        if key.endswith("/dct16") and v and data["whitebox"].get(row):
            gain[row] = _agg(v)["avg_asr"] - _agg(data["whitebox"][row])["avg_asr"]
    seen = "conv_5" in gain and len(gain) > 1
    ok = seen and all(gain["conv_5"] > g for r, g in gain.items() if r != "conv_5")
    out.append(("The low-frequency attack hurts the 5x5 conv model most (increase of average ASR over white-box, "
                "strictly the largest)", _verdict(seen, ok),
                ", ".join(f"{r} {100 * g:+.1f} pt" for r, g in gain.items())))
    return out


def _first_lambda(agg):
    return next(k for k in agg if k.startswith("lambda=")).split("=")[1]


def _verdict(seen, ok):
    return "not measured" if not seen else ("held" if ok else "not held")


def draw_figures(data, profile, work_dir, fig_dir):
    """Figs. 1/2/4 (copied from the spectra step), 3, 5 and 6; returns {name: file}."""
    made = {}
    for png in sorted((pathlib.Path(work_dir) / "figures").glob("fig*.png")):
        shutil.copyfile(png, files.ensure_dir(fig_dir) / png.name)
        made[png.stem.split("_")[0]] = png.name
    dims = [d for d in profile.dct_dims if data["lowfreq"].get(f"conv_7/dct{d}")]
    if dims:
        aggs = [_agg(data["lowfreq"][f"conv_7/dct{d}"]) for d in dims]
        figures.asr_vs_dct(dims, [a["avg_asr"] for a in aggs], [a["worst_asr"] for a in aggs],
                           paper.FIG3_CONV7, fig_dir / "fig3_lowfreq_dct_size.png")
        made["fig3"] = "fig3_lowfreq_dct_size.png"
    groups = {"fig5": (("conv_3", "conv_5", "conv_7", "tv_1e-4", "tv_1e-5"),
                       "Fig. 5: ASR vs L2 per target, conv and TV models"),
              "fig6": (("tik_hf", "tik_pseudo", "gaussian_aug_0.1", "gaussian_aug_0.2", "gaussian_aug_0.3"),
                       "Fig. 6: ASR vs L2 per target, Tikhonov and Gaussian models")}
    lam = float(profile.lambdas[0])
    for fig, (rows, title) in groups.items():
        series = {r: [(x["l2"], x["asr"]) for x in data["whitebox"][r]["rows"] if x["lambda"] == lam]
                  for r in rows if data["whitebox"].get(r)}
        if series:
            name = f"{fig}_asr_vs_l2.png"
            figures.asr_vs_l2(series, title, fig_dir / name)
            made[fig] = name
    return made


def store_stickers(work_dir, folder, lam="0.002"):
    """Keeps the λ 0.002 sticker noise of the original and baseline white-box runs beside the
    report (17 small .npy each), so the stored Table I / II numbers can be re-measured."""
    for row in ("original", "baseline"):
        for npy in sorted((pathlib.Path(work_dir) / "whitebox" / row / "noise").glob(f"lambda{lam}_target*.npy")):
            shutil.copyfile(npy, files.ensure_dir(folder / row) / npy.name)


def metadata(profile, work_dir, started, stage_seconds_this_run):
    import tensorflow as tf

    seconds = {}
    for done in pathlib.Path(work_dir).rglob("step.json"):
        d = json.loads(done.read_text())
        stage = d["name"].split("/")[0]
        seconds[stage] = seconds.get(stage, 0.0) + d["seconds"]
    seconds = dict(sorted(seconds.items(), key=lambda kv: STAGES.index(kv[0]) if kv[0] in STAGES else len(STAGES)))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return {"profile": profile.name, "commit": files.git_commit(), "versions": files.package_versions(),
            "seeds": {"training": 0, "split": 0, "rp2_noise_init": 0, "smoothing": [0, 1, 2]},
            "hardware": {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
                         "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]},
            "stage_seconds": seconds, "total_step_seconds": sum(seconds.values()),
            "this_invocation_seconds": time.time() - started, "stage_seconds_this_invocation": stage_seconds_this_run,
            "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def write_report(profile, work_dir, results_dir, started, stage_seconds_this_run, missing=()):
    """Writes results/<profile>/{REPORT.md, tables.json, figures/} and results/REPORT.md (links into it)."""
    results_dir = pathlib.Path(results_dir)
    out = files.ensure_dir(results_dir / profile.name)
    data = collect(work_dir, profile)
    figs = draw_figures(data, profile, work_dir, out / "figures")
    figs.update(defendpp.copy_figures(work_dir, out / "figures"))
    store_stickers(work_dir, out / "stickers")
    meta = metadata(profile, work_dir, started, stage_seconds_this_run)
    flags = []
    sections = {"I": table1(data, flags), "II": table2(data, flags, profile.lambdas), "III": table3(data, flags),
                "IV": table4(data, flags), "V": table5(data, flags), "PD": pixel_deflection_tables(data),
                "DPP": defendpp.section(data, flags)}
    verdicts = claims(data) + defendpp.claims(data)
    files.write_json(out / "tables.json", {"data": data, "claims": verdicts, "disagreements": flags,
                                        "metadata": meta, "paper": {"table1": paper.TABLE1, "table2": paper.TABLE2,
                                                                    "table3": paper.TABLE3, "table4": paper.TABLE4,
                                                                    "table5": paper.TABLE5,
                                                                    "defendpp_table1": paper.DEFENDPP_TABLE1,
                                                                    "defendpp_table2": paper.DEFENDPP_TABLE2}})
    for prefix, path in (("figures/", out / "REPORT.md"), (f"{profile.name}/figures/", results_dir / "REPORT.md")):
        text = render(profile, sections, verdicts, flags, figs, meta, missing, prefix)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return out / "REPORT.md"


TITLES = {"I": "Table I: black-box transfer into the same weights with a fixed blur",
          "II": "Table II: white-box RP2 (rectangle stickers, 17 targets)",
          "III": "Table III: adaptive attacks (low-frequency RP2 on conv, regulariser-aware RP2 on TV / Tik)",
          "IV": "Table IV: PGD L∞ ε 8/255, step 0.01, 10 steps (untargeted, on the 40 victims)",
          "V": "Table V: the adversarially trained model under the adaptive attacks",
          "PD": "Pixel Deflection (Prakash et al.) on the LISA-CNN, non-adaptive and adaptive",
          "DPP": "Defend++ (Liu et al.): MNIST Tables 1-2, reconstructions, and on LISA"}


def render(profile, sections, verdicts, flags, figs, meta, missing, prefix):
    quick = profile.name == "quick"
    label = " (QUICK PROFILE: reduced budgets, not the paper's)" if quick else ""
    budget = (f"training {profile.train_epochs or 30} epochs (adv-train {profile.adv_train_epochs or 30}), RP2 "
              f"{profile.attack_epochs} epochs, λ {', '.join(profile.lambdas)}, 17 targets, 40 victims, "
              f"randomized smoothing {profile.smoothing_samples} samples; rows: {', '.join(profile.rows)}")
    md = [f"# BlurNet reproduction report: {profile.name} profile{label}", "",
          f"Generated by `python -m blurnet_tf.reproduce --profile={profile.name}`. Budgets: {budget}.",
          "Percentages; Δ = ours − paper in points, **bold** where it exceeds "
          f"{DISAGREE_POINTS:.0f} points. ASR counts a victim as attacked when its prediction differs from the "
          "clean prediction (the paper's definition); L2 = mean ‖x − x_adv‖₂ / ‖x‖₂. Every number comes from "
          "a step whose command line is in its `step.json`.", ""]
    if quick:
        md += ["> Quick profile: models are trained for a few epochs and RP2 runs fewer epochs, so the numbers "
               "below show the pipeline working end to end, not the paper's settings. See the full profile.", ""]
    md += ["## The papers' claims", "", "BlurNet's claims first, then Defend++'s (MNIST).", "",
           "| claim | verdict | evidence |", "|---|---|---|"]
    md += [f"| {c} | **{v}** | {e} |" for c, v, e in verdicts]
    for key, title in TITLES.items():
        md += ["", f"## {title}{label}", "", sections[key] or "_not run in this profile_"]
    md += ["", "## Figures", ""]
    captions = {"fig1": "Fig. 1: spectra of a clean and a stickered stop sign",
                "fig2": "Fig. 2: first-layer feature-map spectra", "fig3": "Fig. 3: ASR vs DCT mask size, 7x7 conv",
                "fig4": "Fig. 4: second-layer feature-map spectra", "fig5": "Fig. 5: ASR vs L2, conv and TV",
                "fig6": "Fig. 6: ASR vs L2, Tikhonov and Gaussian",
                "defendpp_mnist_mnist_defendpp": "Defend++ Figs. 6 / 8: MNIST reconstructions and R",
                "defendpp_lisa_defendpp": "Defend++ Figs. 6 / 8 on LISA: reconstructions and R"}
    for key in sorted(figs):
        md += [f"**{captions.get(key, key)}**", "", f"![{key}]({prefix}{figs[key]})", ""]
    md += ["## Where we differ from the paper by more than 10 points", ""]
    md += [f"- {f}" for f in flags] or ["- none"]
    if missing:
        md += ["", "## Steps not run yet", ""] + [f"- {m}" for m in missing]
    md += ["", "## Run metadata", "", f"- commit `{meta['commit']}`; profile `{profile.name}`; generated {meta['generated']}",
           f"- hardware: {meta['hardware']['cpu']} × {meta['hardware']['cpu_count']} CPUs, "
           f"GPUs: {', '.join(meta['hardware']['gpus']) or 'none'}; {meta['hardware']['platform']}",
           f"- seeds: {meta['seeds']}",
           "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
           f"- compute time of all steps: {meta['total_step_seconds'] / 60:.1f} min; this invocation: "
           f"{meta['this_invocation_seconds'] / 60:.1f} min", "", "| stage | minutes |", "|---|---|"]
    md += [f"| {s} | {t / 60:.1f} |" for s, t in meta["stage_seconds"].items()]
    return "\n".join(md) + "\n"
