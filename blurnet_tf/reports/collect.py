"""Every number of the report, read from a reproduction's run directory through its records."""

from blurnet_tf import paper, rundir
from blurnet_tf.reports import defendpp_section



def _attack(path):
    record = rundir.StickerRecord.read(path)
    return record and {"aggregate": record.aggregate, "rows": record.rows}


def collect(work_dir, profile):
    """All numbers of the report under the profile's first seed, as one JSON-able dict (rows not run
    yet are None); `seeds` holds every seed's records of the seeded rows (reports.seed_statistics)."""
    from blurnet_tf.reports.seed_statistics import collect_seeds

    lay, first = rundir.Layout(work_dir), profile.seeds[0]
    rows = (rundir.ORIGINAL,) + tuple(profile.rows)
    models = {r: rundir.read_model(lay.model_dir(r, first)) for r in profile.rows}
    whitebox = {r: rundir.StickerRecord.read(lay.results("whitebox", r, first)) for r in rows}
    values = rundir.ResultRecord.read_values
    conv = [r for r in profile.rows if r.startswith("conv_")]
    gaussian = [r.removeprefix("gaussian_aug_") for r in profile.rows if r.startswith("gaussian_aug_")]
    return {
        "profile": profile.name,
        "lambda": paper.RP2_LAMBDA,
        "models": {r: m and {"legit_accuracy": m.legit_accuracy, "victims_correct": m.victims_correct,
                             "wall_seconds": m.wall_seconds, "epochs": m.epochs} for r, m in models.items()},
        "whitebox": {r: w and {"aggregate": w.aggregate, "rows": w.rows,
                               "clean_victim_accuracy": w.clean_victim_accuracy} for r, w in whitebox.items()},
        "transfer": {s: values(lay.results("transfer", s, first)) for s in (rundir.ORIGINAL, "baseline")},
        "smoothing": {sigma: values(lay.results("smoothing", sigma, first)) for sigma in gaussian},
        "lowfreq": {f"{r}/dct{d}": _attack(lay.results("lowfreq", f"{r}/dct{d}", first))
                    for r in conv for d in (profile.dct_dims if r == "conv_7" else (16,))},
        "adaptive": {r: _attack(lay.results("adaptive", r, first)) for r in profile.rows},
        "adaptive_adv_train": {g: _attack(lay.results("adaptive_adv_train", g, first))
                               for g in profile.table5_regularisers},
        "pgd": {r: (p := rundir.PgdRecord.read(lay.results("pgd", r, first))) and p.pgd for r in rows},
        "spectra": values(lay.root / "figures" / rundir.RESULTS_FILE),
        "pixel_deflection": values(lay.root / "pixel_deflection" / rundir.RESULTS_FILE),
        "defendpp": defendpp_section.collect(work_dir),
        "seeds": collect_seeds(lay, profile),
    }
