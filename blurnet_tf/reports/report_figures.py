"""The report's figures, drawn from the runs' records and stored arrays."""

import shutil

import numpy as np

from blurnet_tf import files, paper, rundir
from blurnet_tf.reports import accuracy_curve, figures
from blurnet_tf.reports.blurnet_tables import _agg


def draw_figures(data, profile, work_dir, fig_dir):
    """Figs. 1-6 and Defend++'s reconstructions; returns {name: file}."""
    lay = rundir.Layout(work_dir)
    made = _spectra(lay.root / "figures", data.get("spectra"), fig_dir)
    made.update(_reconstructions(lay.root / "defendpp_figures", fig_dir))
    curves = {
        row: r["results"]["fgsm_curve"]
        for row, r in ((data.get("defendpp") or {}).get("robustness") or {}).items()
        if "fgsm_curve" in r["results"]
    }
    if curves:
        figures.accuracy_vs_eps(
            {row: (c["eps"], c["accuracies"]) for row, c in curves.items()}, fig_dir / "defendpp_fig7_fgsm_eps.png"
        )
        made["defendpp_fig7"] = "defendpp_fig7_fgsm_eps.png"
    if data.get("accuracy_curve"):
        figures.asr_vs_accuracy(
            accuracy_curve.figure_series(data["accuracy_curve"]), fig_dir / "accuracy_curve_asr_vs_legit.png"
        )
        made["accuracy_curve"] = "accuracy_curve_asr_vs_legit.png"
    dims = [d for d in profile.dct_dims if data["lowfreq"].get(f"conv_7/dct{d}")]
    if dims:
        aggs = [_agg(data["lowfreq"][f"conv_7/dct{d}"]) for d in dims]
        figures.asr_vs_dct(
            dims,
            [a["avg_asr"] for a in aggs],
            [a["worst_asr"] for a in aggs],
            paper.FIG3_CONV7,
            fig_dir / "fig3_lowfreq_dct_size.png",
        )
        made["fig3"] = "fig3_lowfreq_dct_size.png"
    groups = {
        "fig5": (
            ("conv_3", "conv_5", "conv_7", "tv_1e-4", "tv_1e-5"),
            "Fig. 5: ASR vs L2 per target, conv and TV models",
        ),
        "fig6": (
            ("tik_hf", "tik_pseudo", "gaussian_aug_0.1", "gaussian_aug_0.2", "gaussian_aug_0.3"),
            "Fig. 6: ASR vs L2 per target, Tikhonov and Gaussian models",
        ),
    }
    lam = float(profile.lambdas[0]) if profile.lambdas else None  # None: no LISA rows, nothing to draw
    for fig, (rows, title) in groups.items():
        series = {
            r: [(x["l2"], x["asr"]) for x in data["whitebox"][r]["rows"] if x["lambda"] == lam]
            for r in rows
            if data["whitebox"].get(r)
        }
        if series:
            name = f"{fig}_asr_vs_l2.png"
            figures.asr_vs_l2(series, title, fig_dir / name)
            made[fig] = name
    return made


def _spectra(step_dir, summary, fig_dir):
    """Figs. 1, 2, 4 from the spectra step's arrays (a run made before arrays were stored: its PNGs)."""
    made = {}
    arrays = step_dir / rundir.ARRAYS_FILE
    if not arrays.is_file():
        for png in sorted(step_dir.glob("fig*.png")):
            shutil.copyfile(png, files.ensure_dir(fig_dir) / png.name)
            made[png.stem.split("_")[0]] = png.name
        return made
    with np.load(arrays) as a:
        figures.image_spectra(a["clean"], a["stickered"], fig_dir / "fig1_image_spectra.png")
        made["fig1"] = "fig1_image_spectra.png"
        for fig, layer in summary["layers"].items():
            name = f"{fig}_{layer}_spectra.png"
            figures.feature_map_spectra(
                a[f"{fig}_clean"],
                a[f"{fig}_adversarial"],
                a[f"{fig}_difference"],
                a[f"{fig}_blurred_difference"],
                a[f"{fig}_channels"].tolist(),
                layer,
                fig_dir / name,
            )
            made[fig] = name
    return made


def _reconstructions(step_dir, fig_dir):
    """Defend++ Figs. 6 / 8 per model, from the reconstruction step's arrays (or its PNGs)."""
    made = {}
    arrays = step_dir / rundir.ARRAYS_FILE
    if not arrays.is_file():
        for png in sorted(step_dir.glob("*.png")):
            shutil.copyfile(png, files.ensure_dir(fig_dir) / f"defendpp_{png.name}")
            made[f"defendpp_{png.stem}"] = f"defendpp_{png.name}"
        return made
    with np.load(arrays) as a:
        for name in sorted({k.split("/")[0] for k in a.files}):
            get = lambda key: a[f"{name}/{key}"]  # noqa: E731
            figures.reconstructions(
                get("clean"),
                get("reconstructed_clean"),
                get("fgsm"),
                get("reconstructed_fgsm"),
                get("ratio"),
                name,
                fig_dir / f"defendpp_{name}.png",
            )
            made[f"defendpp_{name}"] = f"defendpp_{name}.png"
    return made


def store_stickers(work_dir, folder, lam=paper.RP2_LAMBDA):
    """Keeps the λ 0.002 sticker noise of the original and baseline white-box runs beside the
    report (17 small .npy each), so the stored Table I / II numbers can be re-measured."""
    lay = rundir.Layout(work_dir)
    for row in (rundir.ORIGINAL, "baseline"):
        record = rundir.StickerRecord.read(lay.results("whitebox", row))
        for target in sorted({r["target"] for r in record.rows if r["lambda"] == lam} if record else ()):
            source = record.noise_file(lay.result_dir("whitebox", row), lam, target)
            if source.is_file():  # a record copied without its arrays (a test fixture) has none
                files.write_bytes(folder / row / f"lambda{lam:g}_target{target}.npy", source.read_bytes())


def forest_plots(seed_intervals, fig_dir):
    """Forest plots of Table II (average and worst ASR), Table III and Table IV: {name: file}."""
    made = {}
    wb = seed_intervals.get("whitebox", {})
    ref2 = lambda row: paper.TABLE2.get("baseline" if row == rundir.ORIGINAL else row, {})  # noqa: E731
    specs = {
        "forest_table2_avg": (
            "Table II: white-box RP2, average ASR",
            "average ASR over 17 targets (%)",
            [(r, m["avg_asr"], ref2(r).get("avg_asr")) for r, m in wb.items()],
        ),
        "forest_table2_worst": (
            "Table II: white-box RP2, worst-case ASR",
            "worst ASR over 17 targets (%)",
            [(r, m["worst_asr"], ref2(r).get("worst_asr")) for r, m in wb.items()],
        ),
        "forest_table3": (
            "Table III: adaptive attacks, average ASR",
            "average ASR (%)",
            [
                (f"{r} ({stage})", m["avg_asr"], paper.TABLE3.get(r, {}).get("avg_asr"))
                for stage in ("lowfreq", "adaptive")
                for r, m in seed_intervals.get(stage, {}).items()
            ],
        ),
        "forest_table4": (
            "Table IV: PGD L∞ ε 8/255, ASR",
            "ASR on the 40 victims (%)",
            [(r, m["asr"], paper.TABLE4["asr"]) for r, m in seed_intervals.get("pgd", {}).items()],
        ),
    }
    for name, (title, xlabel, rows) in specs.items():
        if rows:
            figures.forest(rows, title, xlabel, fig_dir / f"{name}.png")
            made[name] = f"{name}.png"
    return made
