"""REPORT.md, results.json / results.csv (flat records) and tables.json of a reproduction: the
tables, claims, figures and run metadata.

Everything is read from the run's directory through its records, so the report can be
regenerated at any time: rows whose steps have not run yet are left out and listed as missing.
The numbers with seeds behind them go run directory -> flat records -> seed statistics.
"""

import os
import pathlib
import platform
import time

from blurnet_tf import files, paper, rundir
from blurnet_tf.reports import accuracy_curve
from blurnet_tf.reports import blurnet_tables as tables
from blurnet_tf.reports import defendpp_section as defendpp
from blurnet_tf.reports import flat_records
from blurnet_tf.reports import seed_statistics
from blurnet_tf.reports.collect import collect
from blurnet_tf.reports.format import DISAGREE_POINTS
from blurnet_tf.reports.report_figures import draw_figures, forest_plots, store_stickers

STAGES = (
    "train",
    "whitebox",
    "accuracy_curve",
    "transfer",
    "smoothing",
    "lowfreq",
    "adaptive",
    "adaptive_adv_train",
    "pgd",
    "pixel_deflection",
    "defendpp",
    "figures",
)


def metadata(profile, work_dir, started, stage_seconds_this_run, step_dirs):
    """`step_dirs`: the finished steps of the plan, whose step.json times are summed (a superseded
    step's folder beside them does not count)."""
    import tensorflow as tf

    seconds, codes = {}, set()
    for step_dir in step_dirs:
        d = files.read_json(pathlib.Path(step_dir) / "step.json")  # a finished step's: steps._marker checked it
        stage = d["name"].split("/")[0]
        seconds[stage] = seconds.get(stage, 0.0) + d["seconds"]
        codes.add(d.get("code"))  # None: finished before steps recorded their code
    seconds = dict(sorted(seconds.items(), key=lambda kv: STAGES.index(kv[0]) if kv[0] in STAGES else len(STAGES)))
    cpu = files.cpu_name()
    # The code the numbers come from: the digest every step ran under, else "mixed" (a resumed run's steps
    # from other code) -- never the code that merely wrote this report (tests/test_stored_results.py).
    code = codes.pop() if len(codes) == 1 and None not in codes else ("mixed" if codes else None)
    return {
        "profile": profile.name,
        "commit": files.git_commit(),
        "code": code,
        "versions": files.package_versions(),
        "seeds": _seeds(work_dir),
        "hardware": {
            "cpu": cpu,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        },
        "stage_seconds": seconds,
        "total_step_seconds": sum(seconds.values()),
        "this_invocation_seconds": time.time() - started,
        "stage_seconds_this_invocation": stage_seconds_this_run,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def seed_parts(profile, work_dir, results_dir, started, stage_seconds_this_run, step_dirs, fresh, experiment, key):
    """(out folder, metadata with the commit stamped, records, parts, commit) of a study run in parts of seeds (fair,
    physical): fresh(commit, dirty) builds this run's records, which replace the committed records of `experiment`
    with the same key(record); `parts` lists each part's seeds, commit, time and CPU (a part re-run replaces its
    entry). Nothing is written here."""
    out = files.ensure_dir(pathlib.Path(results_dir) / profile.name)
    meta = metadata(profile, work_dir, started, stage_seconds_this_run, step_dirs)
    commit, meta["dirty"] = flat_records.stamp(meta["commit"])
    fresh_rows = fresh(commit, meta["dirty"])
    old = out / flat_records.JSON_FILE
    made = {key(r) for r in fresh_rows}
    committed = flat_records.read(old) if old.is_file() else []
    records = [r for r in committed if r.experiment == experiment and key(r) not in made] + fresh_rows
    ran = sorted({r.seed for r in fresh_rows})
    parts = [
        p for p in (files.read_json(out / "tables.json") or {}).get("parts", []) if not set(p["seeds"]) <= set(ran)
    ]
    if ran:
        parts.append(
            {
                "seeds": ran,
                "commit": commit,
                "dirty": meta["dirty"],
                "generated": meta["generated"],
                "stage_seconds": meta["stage_seconds"],
                "hardware": meta["hardware"]["cpu"],
            }
        )
    return out, meta, records, parts, commit


def parts_table(parts) -> list[str]:
    """The report's "Parts and cost" lines of a study run in parts of seeds."""
    lines = ["| seeds | commit | generated | CPU | step minutes |", "|---|---|---|---|---|"]
    return lines + [
        f"| {', '.join(map(str, p['seeds']))} | `{p['commit']}`{' (dirty)' if p.get('dirty') else ''} | "
        f"{p['generated']} | {p['hardware']} | "
        + ", ".join(f"{s} {t / 60:.1f}" for s, t in p["stage_seconds"].items())
        + " |"
        for p in parts
    ]


def profile_records(profile, work_dir, results_dir, started, stage_seconds_this_run, step_dirs, fresh):
    """(out folder, metadata with the commit stamped, records) of a profile's own report (tradeoff, longtrain,
    robustness): fresh(commit, dirty) builds the flat records, written here as results.json / .csv."""
    out = files.ensure_dir(pathlib.Path(results_dir) / profile.name)
    meta = metadata(profile, work_dir, started, stage_seconds_this_run, step_dirs)
    commit, meta["dirty"] = flat_records.stamp(meta["commit"])
    records = fresh(commit, meta["dirty"])
    flat_records.write(out, records, commit, meta["dirty"])
    return out, meta, records


def report_head(title, meta):
    """A REPORT.md's first lines: its title, and a warning when the tree had uncommitted changes."""
    warning = [f"> **Warning: written from a tree with uncommitted changes** (commit `{meta['commit']}`).", ""]
    return [f"# {title}", ""] + (warning if meta.get("dirty") else [])


def provenance(meta):
    """A REPORT.md's last line: commit, CPU, when, and the step minutes per stage."""
    return (
        f"- commit `{meta['commit']}`, {meta['hardware']['cpu']} × {meta['hardware']['cpu_count']}; generated "
        f"{meta['generated']}; step minutes: "
        + ", ".join(f"{s} {t / 60:.1f}" for s, t in meta["stage_seconds"].items())
    )


def _seeds(work_dir):
    """The seeds the runs actually used, read from their records."""
    root = pathlib.Path(work_dir)
    models = [rundir.read_model(p.parent) for p in root.glob("models/*/" + rundir.METRICS_FILE)]
    attacks = [rundir.StickerRecord.read(p) for p in root.glob("whitebox/*/" + rundir.RESULTS_FILE)]
    return {
        "training": sorted({m.seed for m in models if m}),
        "split": sorted({m.flags.get("split_seed", 0) for m in models if m}),
        "rp2_noise_init": sorted({a.seed for a in attacks if a}),
        "smoothing": [0, 1, 2],
    }


def _precisions(value):
    """The compute precisions named by the collected runs (training and RP2 / PGD records carry one;
    the other evaluations compute in float32 and name none)."""
    if isinstance(value, dict):
        own = {value["precision"]} if isinstance(value.get("precision"), str) else set()
        return own.union(*(_precisions(v) for v in value.values()))
    return set().union(*(_precisions(v) for v in value)) if isinstance(value, list) else set()


def write_report(profile, work_dir, results_dir, started, stage_seconds_this_run, step_dirs, missing=(), stale=()):
    """Writes results/<profile>/{REPORT.md, results.json, results.csv, tables.json, figures/} and
    results/REPORT.md (links into it). `step_dirs`: the plan's finished steps, for the stage times."""
    results_dir = pathlib.Path(results_dir)
    out = files.ensure_dir(results_dir / profile.name)
    data = collect(work_dir, profile)
    figs = draw_figures(data, profile, work_dir, out / "figures")
    store_stickers(work_dir, out / "stickers")
    meta = metadata(profile, work_dir, started, stage_seconds_this_run, step_dirs)
    meta["stale_steps"] = list(stale)
    # A report from a tree with uncommitted changes is marked (dirty: true, and a warning atop
    # REPORT.md), not refused: the tests and work in progress write reports from such trees.
    commit, meta["dirty"] = flat_records.stamp(meta["commit"])
    records = flat_records.build(data, commit, meta["dirty"])
    meta["precisions"] = sorted(_precisions(data))
    flat_records.write(out, records, commit, meta["dirty"])
    seeds_data = seed_statistics.from_records(records, data["seeds"]["seeds"], data["seeds"]["rows"])
    disagreements, interval_misses = [], []
    seeds_table, seed_intervals = seed_statistics.table(seeds_data, interval_misses)
    sections = {
        "I": tables.table1(data, disagreements),
        "II": tables.table2(data, disagreements, profile.lambdas),
        "II_ACC": accuracy_curve.section(data.get("accuracy_curve")),
        "III": tables.table3(data, disagreements),
        "IV": tables.table4(data, disagreements),
        "V": tables.table5(data, disagreements),
        "PD": tables.pixel_deflection_tables(data),
        "DPP": defendpp.section(data, disagreements),
        "SEEDS": seeds_table if any(seed_intervals.values()) else "",
    }  # no seeded rows: "not run"
    verdicts = (
        seed_statistics.claims(seeds_data)
        + accuracy_curve.claims(data.get("accuracy_curve") or {})
        + defendpp.claims(data)
    )
    figs.update(forest_plots(seed_intervals, out / "figures"))
    meta["interval_misses"] = interval_misses
    files.write_json(out / "tables.json", tables_json(data, seed_intervals, verdicts, disagreements, meta))
    for prefix, path in (("figures/", out / "REPORT.md"), (f"{profile.name}/figures/", results_dir / "REPORT.md")):
        files.write_text(path, render(profile, sections, verdicts, disagreements, figs, meta, missing, prefix))
    return out / "REPORT.md"


def tables_json(data, seed_intervals, verdicts, disagreements, meta):
    """tables.json (schema 1): the first seed's numbers by table, aggregates as lists with a named
    "lambda" (not "lambda=<l>" keys), claims as objects; every seed's numbers are in results.json."""

    def named(value, key=None):
        if key == "aggregate" and isinstance(value, dict):
            return [
                {"lambda": lam, **({"selection": flat_records.SWEEP_KEY} if lam is None else {}), **summary}
                for lam, summary in flat_records.summaries(value)
            ]
        if isinstance(value, dict):
            return {k: named(v, k) for k, v in value.items()}
        return [named(v) for v in value] if isinstance(value, list) else value

    return {
        "schema": flat_records.SCHEMA,
        "data": named({k: v for k, v in data.items() if k != "seeds"}),
        "seeds": {k: data["seeds"][k] for k in ("seeds", "rows")},
        "intervals": seed_intervals,
        "claims": [{"claim": c, "verdict": v, "evidence": e} for c, v, e in verdicts],
        "disagreements": disagreements,
        "interval_misses": meta["interval_misses"],
        "metadata": meta,
        "paper": {
            "table1": paper.TABLE1,
            "table2": paper.TABLE2,
            "table3": paper.TABLE3,
            "table4": paper.TABLE4,
            "table5": paper.TABLE5,
            "defendpp_table1": paper.DEFENDPP_TABLE1,
            "defendpp_table2": paper.DEFENDPP_TABLE2,
        },
    }


TITLES = {
    "I": "Table I: black-box transfer into the same weights with a fixed blur",
    "II": "Table II: white-box RP2 (rectangle stickers, 17 targets)",
    "II_ACC": "Table II at the paper's legit accuracy: robustness along training",
    "III": "Table III: adaptive attacks (low-frequency RP2 on conv, regulariser-aware RP2 on TV / Tik)",
    "IV": "Table IV: PGD L∞ ε 8/255, step 0.01, 10 steps (untargeted, on the 40 victims)",
    "V": "Table V: the adversarially trained model under the adaptive attacks",
    "PD": "Pixel Deflection (Prakash et al.) on the LISA-CNN, non-adaptive and adaptive",
    "DPP": "Defend++ (Liu et al.): MNIST Tables 1-2, reconstructions, and on LISA",
    "SEEDS": "Seeds and 95% intervals (Tables II-V)",
}


def render(profile, sections, verdicts, disagreements, figs, meta, missing, prefix):
    quick = profile.name == "quick"
    label = " (QUICK PROFILE: reduced budgets, not the paper's)" if quick else ""
    adv = f" (adv-train {profile.adv_train_epochs or 30})" if "adv_train" in profile.rows else ""
    smoothing = (
        f", randomized smoothing {profile.smoothing_samples} samples"
        if any(r.startswith("gaussian_aug_") for r in profile.rows)
        else ""
    )
    budget = (
        f"training {profile.train_epochs or 30} epochs{adv}, RP2 {profile.attack_epochs} epochs (low-frequency "
        f"{profile.lowfreq_attack_epochs}), λ {', '.join(profile.lambdas)}, 17 targets, 40 victims{smoothing}; "
        f"rows: {', '.join(profile.rows)}; training seeds {', '.join(map(str, profile.seeds))}"
        if profile.rows
        else "no LISA rows in this profile"
    )
    if profile.mnist:
        m = profile.mnist
        budget += (
            f"; MNIST (Defend++): {', '.join(m.rows)} {m.epochs or 30} epochs on the "
            f"{'official 60,000' if m.official_split else '7,000-image split of the test set'}, "
            f"{m.images} test images attacked (BIM {m.bim_steps} steps, C&W {m.cw_search} x {m.cw_steps}, "
            f"DDN {m.ddn_steps})"
        )
        if m.paper_rows:
            budget += (
                f"; {', '.join(m.paper_rows)} {m.paper_epochs or 250} epochs, "
                f"{m.paper_images or m.images} test images attacked"
            )
    md = report_head(f"BlurNet reproduction report: {profile.name} profile{label}", meta)
    md += [
        f"Generated by `python -m blurnet_tf.cli.reproduce --profile={profile.name}`. Budgets: {budget}.",
        "Percentages; Δ = ours − paper in points, **bold** where it exceeds "
        f"{DISAGREE_POINTS:.0f} points. ASR counts a victim as attacked when its prediction differs from the "
        "clean prediction (the paper's definition); L2 = mean ‖x − x_adv‖₂ / ‖x‖₂. Every number comes from "
        "a step whose command line is in its `step.json`.",
        "",
    ]
    if quick:
        md += [
            "> Quick profile: models are trained for a few epochs and RP2 runs fewer epochs, so the numbers "
            "below show the pipeline working end to end, not the paper's settings. See the full profile.",
            "",
        ]
    md += [
        "## The papers' claims",
        "",
        "BlurNet's claims first, judged by paired 95% intervals on the difference "
        "(same seeds, targets and victims drawn for both sides; held / not held when the interval excludes "
        "0 on the claimed / other side, else inconclusive); then Defend++'s (MNIST, one seed, point "
        "comparisons).",
        "",
        "| claim | verdict | evidence |",
        "|---|---|---|",
    ]
    md += [f"| {c} | **{v}** | {e} |" for c, v, e in verdicts]
    for key, title in TITLES.items():
        md += ["", f"## {title}{label}", "", sections[key] or "_not run in this profile_"]
    md += ["", "## Figures", ""]
    captions = {
        "fig1": "Fig. 1: spectra of a clean and a stickered stop sign",
        "fig2": "Fig. 2: first-layer feature-map spectra",
        "fig3": "Fig. 3: ASR vs DCT mask size, 7x7 conv",
        "fig4": "Fig. 4: second-layer feature-map spectra",
        "fig5": "Fig. 5: ASR vs L2, conv and TV",
        "fig6": "Fig. 6: ASR vs L2, Tikhonov and Gaussian",
        "defendpp_mnist_mnist_defendpp": "Defend++ Figs. 6 / 8: MNIST reconstructions and R",
        "defendpp_lisa_defendpp": "Defend++ Figs. 6 / 8 on LISA: reconstructions and R",
        "defendpp_fig7": "Defend++ Fig. 7: accuracy against the FGSM ε (MNIST)",
        "accuracy_curve": "White-box average ASR against legit accuracy along training, the paper's points",
        "forest_table2_avg": "Table II, average ASR: our mean and 95% interval per row, the paper's value",
        "forest_table2_worst": "Table II, worst-case ASR: our mean and 95% interval, the paper's value",
        "forest_table3": "Table III: our mean and 95% interval, the paper's value",
        "forest_table4": "Table IV: our mean and 95% interval, the paper's value",
    }
    for key in sorted(figs):
        md += [f"**{captions.get(key, key)}**", "", f"![{key}]({prefix}{figs[key]})", ""]
    md += ["## Where our 95% interval misses the paper's number (rows with seeds)", ""]
    md += [f"- {f}" for f in meta.get("interval_misses", [])] or ["- none"]
    md += ["", "## Where we differ from the paper by more than 10 points (single-run tables above)", ""]
    md += [f"- {f}" for f in disagreements] or ["- none"]
    if missing:
        md += ["", "## Steps not run yet", ""] + [f"- {m}" for m in missing]
    md += [
        "",
        "## Run metadata",
        "",
        f"- commit `{meta['commit']}`; profile `{profile.name}`; generated {meta['generated']}",
        f"- hardware: {meta['hardware']['cpu']} × {meta['hardware']['cpu_count']} CPUs, "
        f"GPUs: {', '.join(meta['hardware']['gpus']) or 'none'}; {meta['hardware']['platform']}",
        f"- seeds: {meta['seeds']}; compute precision: {', '.join(meta.get('precisions') or ['float32'])}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- compute time of all steps: {meta['total_step_seconds'] / 60:.1f} min; this invocation: "
        f"{meta['this_invocation_seconds'] / 60:.1f} min",
        "",
        "| stage | minutes |",
        "|---|---|",
    ]
    md += [f"| {s} | {t / 60:.1f} |" for s, t in meta["stage_seconds"].items()]
    if meta.get("stale_steps"):
        md += [
            "",
            f"{len(meta['stale_steps'])} steps finished under other settings or inputs than the current "
            "plan's; their numbers are shown, and the next run redoes them: " + ", ".join(meta["stale_steps"]),
        ]
    return "\n".join(md) + "\n"
