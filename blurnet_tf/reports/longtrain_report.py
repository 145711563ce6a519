"""results/longtrain: the baseline, TV 1e-4 and Tik_hf trained far longer than Table II's rows, each
attacked after 10, 30, 100, ... epochs, with each epoch's cross-entropy and the penalty's share of the
loss and of the gradient norm (metrics.json history, training_monitors.PenaltyShare), beside the
3-seed spread at 10 epochs of results/table2 (the same rows, seeds 0-2, the same attack)."""

import pathlib

import numpy as np

from blurnet_tf import files, paper, rundir
from blurnet_tf.evaluation import intervals
from blurnet_tf.reports import flat_records
from blurnet_tf.reports.figures import _save, plt
from blurnet_tf.reports.format import pct
from blurnet_tf.reports.report_writer import profile_records, provenance, report_head

EXPERIMENT = "long_training"
MONITORS = ("monitor_ce", "monitor_penalty", "monitor_grad_ce", "monitor_grad_penalty")
PAPER_EPOCHS = paper.BLURNET_TRAIN_EPOCHS


def shares(history):
    """[(epoch, CE, penalty / (CE + penalty), |∇penalty| / (|∇CE| + |∇penalty|))] of a run's history."""
    out = []
    for h in history:
        if all(k in h for k in MONITORS):
            ce, pen, gce, gpen = (h[k] for k in MONITORS)
            out.append(
                (h["epoch"], ce, pen / (ce + pen) if ce + pen else 0.0, gpen / (gce + gpen) if gce + gpen else 0.0)
            )
    return out


def fresh_records(work_dir, budget, commit, dirty):
    lay, b = rundir.Layout(work_dir), flat_records.RecordBuilder(commit, dirty)
    for row in budget.rows:
        model = rundir.read_model(lay.model_dir(row))
        for point in budget.points():
            path = lay.epoch_model_file(row, point, budget.epochs)
            info = (
                files.read_json(path.with_suffix(".json"))
                if path.name != rundir.MODEL_FILE
                else model and {"legit_accuracy": model.legit_accuracy, "test_images": model.test_images}
            )
            attack = rundir.StickerRecord.read(lay.epoch_attack_dir(row, point) / rundir.RESULTS_FILE)
            if info and attack:
                b.add(
                    EXPERIMENT,
                    row,
                    "legit_accuracy",
                    info["legit_accuracy"],
                    budget.seed,
                    variant=point,
                    images=info["test_images"],
                )
                b.rp2(
                    EXPERIMENT,
                    row,
                    {"rows": attack.rows, "aggregate": attack.aggregate, "precision": attack.precision},
                    budget.seed,
                    variant=point,
                )
        for epoch, ce, loss_share, grad_share in shares(model.history if model else []):
            for metric, value in (
                ("cross_entropy", ce),
                ("penalty_loss_share", loss_share),
                ("penalty_gradient_share", grad_share),
            ):
                b.add(EXPERIMENT, row, metric, value, budget.seed, variant=f"epoch{epoch}")
        if model and model.training.get("train_seconds_total"):
            b.add(
                EXPERIMENT, row, "seconds_per_epoch", model.training["train_seconds_total"] / model.epochs, budget.seed
            )
    return b.rows


def points(records, row):
    """[(epoch, legit, avg ASR, worst ASR, success [T, V])] of one row, by epoch."""
    cells = {}
    for r in records:
        if r.model == row and r.variant and r.variant.startswith("epoch"):
            cell = cells.setdefault(int(r.variant[5:]), {"success": {}})
            if r.metric == "legit_accuracy":
                cell["legit"] = r.value
            elif r.metric == "asr" and r.target is not None and r.success:
                cell["success"][r.target] = [int(c) for c in r.success]
    out = []
    for epoch, c in sorted(cells.items()):
        if "legit" in c and c["success"]:
            s = np.array([c["success"][t] for t in sorted(c["success"])])
            out.append((epoch, c["legit"], s.mean(axis=1).mean(), s.mean(axis=1).max(), s))
    return out


def table2_spread(results_root, row):
    """Seeds 0-2 at 10 epochs (results/table2): [(seed, legit, avg ASR, worst ASR)]."""
    path = pathlib.Path(results_root) / "table2" / flat_records.JSON_FILE
    if not path.is_file():
        return []
    recs = [
        r for r in flat_records.read(path) if r.model == row and r.target is None and r.lam in (None, paper.RP2_LAMBDA)
    ]
    legit = {r.seed: r.value for r in recs if r.experiment == "models" and r.metric == "legit_accuracy"}
    asr = {(r.seed, r.metric): r.value for r in recs if r.experiment == "table2_whitebox"}
    return [(s, legit[s], asr[(s, "avg_asr")], asr[(s, "worst_asr")]) for s in sorted(legit) if (s, "avg_asr") in asr]


def table(records, rows, results_root):
    lines = [
        "| model | epochs | legit acc. % | avg ASR % [95%] | worst ASR % | CE | penalty share of loss / gradient |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        by = {(r.metric, r.variant): r.value for r in records if r.model == row}
        for epoch, legit, avg, worst, success in points(records, row):
            iv = intervals.asr_interval(success[None])
            ce, ls, gs = (
                by.get((m, f"epoch{epoch}")) for m in ("cross_entropy", "penalty_loss_share", "penalty_gradient_share")
            )
            monitor = f"{ce:.4f} | {pct(ls)}% / {pct(gs)}%" if ce is not None else "– | –"
            lines.append(
                f"| {row} | {epoch} | {pct(legit)} | {pct(avg)} [{pct(iv['lo'])}, {pct(iv['hi'])}] | "
                f"{pct(worst)} | {monitor} |"
            )
        spread = table2_spread(results_root, row)
        if spread:
            lines.append(
                f"| {row}, table2 seeds 0/1/2 | 10 | "
                + " / ".join(pct(s[1]) for s in spread)
                + " | "
                + " / ".join(pct(s[2]) for s in spread)
                + " | "
                + " / ".join(pct(s[3]) for s in spread)
                + " | – | – |"
            )
        ref = paper.TABLE2.get(row)
        if ref:
            lines.append(
                f"| {row}, paper | {PAPER_EPOCHS} | {pct(ref['legit'])} | {pct(ref['avg_asr'])} | "
                f"{pct(ref['worst_asr'])} | – | – |"
            )
    return "\n".join(lines)


def stored_table(results_dir):
    """The table recomputed from a committed results/longtrain (its records and results/table2 beside it)."""
    results_dir = pathlib.Path(results_dir)
    records = flat_records.read(results_dir / flat_records.JSON_FILE)
    rows = list(dict.fromkeys(r.model for r in records if r.metric == "legit_accuracy"))
    return table(records, rows, results_dir.parent)


def summary(results_dir):
    """The README's sentence on the long run, generated from a committed results/longtrain."""
    records = flat_records.read(pathlib.Path(results_dir) / flat_records.JSON_FILE)
    last = {row: points(records, row)[-1] for row in ("baseline", "tv_1e-4", "tik_hf") if points(records, row)}
    if len(last) < 3:
        return "_not run yet_"
    first = {row: points(records, row)[0] for row in last}
    share = {(r.model, r.metric): r.value for r in records if r.variant == f"epoch{last['tv_1e-4'][0]}"}
    tv, tik = paper.TABLE2["tv_1e-4"], paper.TABLE2["tik_hf"]
    return (
        f"Trained {last['tv_1e-4'][0]} epochs instead of {first['tv_1e-4'][0]} (the paper: {PAPER_EPOCHS}), until "
        f"the penalty is {pct(share[('tv_1e-4', 'penalty_loss_share')])}% (TV 1e-4) and "
        f"{pct(share[('tik_hf', 'penalty_loss_share')])}% (Tik_hf) of the loss and "
        f"{pct(share[('tv_1e-4', 'penalty_gradient_share')])}% / {pct(share[('tik_hf', 'penalty_gradient_share')])}% "
        f"of the gradient norm, TV 1e-4 and Tik_hf are attacked at {pct(last['tv_1e-4'][2])}% / "
        f"{pct(last['tik_hf'][2])}% average ASR (at {first['tv_1e-4'][0]} epochs {pct(first['tv_1e-4'][2])}% / "
        f"{pct(first['tik_hf'][2])}%; the baseline at {last['baseline'][0]} epochs {pct(last['baseline'][2])}%) "
        f"with {pct(last['tv_1e-4'][1])}% / {pct(last['tik_hf'][1])}% legit accuracy; the paper: "
        f"{pct(tv['avg_asr'])}% / {pct(tik['avg_asr'])}% at {pct(tv['legit'])}% / {pct(tik['legit'])}% "
        f"(one seed, `results/longtrain`)."
    )


def figure(records, rows, path):
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    for i, row in enumerate(rows):
        color = f"C{i}"  # one colour per model in every panel
        mon = sorted(
            (int(r.variant[5:]), r.metric, r.value)
            for r in records
            if r.model == row
            and r.variant
            and r.metric in ("cross_entropy", "penalty_loss_share", "penalty_gradient_share")
        )
        for ax, metric in zip(axes[:3], ("cross_entropy", "penalty_loss_share", "penalty_gradient_share")):
            e = [(ep, v) for ep, m, v in mon if m == metric]
            if e:
                ax.plot(*zip(*e), label=row, color=color)
        pts = points(records, row)
        if pts:
            axes[3].plot([p[0] for p in pts], [100 * p[2] for p in pts], "o-", color=color, label=f"{row} average")
            axes[3].plot([p[0] for p in pts], [100 * p[3] for p in pts], "x--", color=color, label=f"{row} worst")
    for ax, title in zip(
        axes,
        (
            "cross-entropy (first 512 training images)",
            "penalty share of the loss",
            "penalty share of the gradient norm",
            "white-box RP2 ASR (%)",
        ),
    ):
        ax.set_xscale("log")
        ax.set_xlabel("epochs")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    _save(fig, path, vector=True)


def write_report(profile, work_dir, results_dir, started, stage_seconds_this_run, step_dirs, missing=(), stale=()):
    budget = profile.budget
    out, meta, records = profile_records(
        profile,
        work_dir,
        results_dir,
        started,
        stage_seconds_this_run,
        step_dirs,
        lambda commit, dirty: fresh_records(work_dir, budget, commit, dirty),
    )
    figure(records, budget.rows, out / "figures" / "long_training.png")
    cost = {r.model: r.value for r in records if r.metric == "seconds_per_epoch"}
    files.write_json(
        out / "tables.json",
        {
            "schema": flat_records.SCHEMA,
            "seconds_per_epoch": cost,
            "metadata": {**meta, "missing_steps": list(missing)},
        },
    )
    md = report_head("The paper's training length, approached: longtrain profile", meta)
    md += [
        f"Generated by `python -m blurnet_tf.cli.reproduce --profile=longtrain`. {', '.join(budget.rows)} trained "
        f"{budget.epochs} epochs under seed {budget.seed} (the paper: {PAPER_EPOCHS}), each epoch's cross-entropy, "
        "α-weighted penalty and their gradient norms logged on the first 512 training images; the weights after "
        f"{', '.join(p.removeprefix('epoch') for p in budget.points())} epochs attacked like Table II (white-box RP2, "
        f"λ 0.002, {budget.attack_epochs} epochs, 17 targets, 40 victims; the interval resamples targets and "
        "victims). The 3-seed spread at 10 epochs comes from results/table2 (same rows, same attack).",
        "",
        "<!-- results:longtrain -->",
        table(records, budget.rows, pathlib.Path(results_dir)),
        "<!-- /results:longtrain -->",
        "",
        "![long training](figures/long_training.png)",
        "",
        "## Cost",
        "",
        "| model | seconds per epoch (fit, this machine) | 2,000 epochs on 2 cores |",
        "|---|---|---|",
    ]
    md += [f"| {row} | {s:.1f} | {s * PAPER_EPOCHS / 3600:.1f} h |" for row, s in cost.items()]
    md += [
        "",
        "The steps ran side by side (three at a time, beside other work): a lone run is faster. On one GPU: not "
        "measured (no GPU was lent to this project).",
        "",
        provenance(meta),
    ]
    files.write_text(out / "REPORT.md", "\n".join(md) + "\n")
    return out / "REPORT.md"
