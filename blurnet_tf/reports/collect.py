"""Every number of the report, read from a reproduction's run directory through its records."""

from blurnet_tf import paper, rundir
from blurnet_tf.reports import accuracy_curve, defendpp_section


def _model(m):
    return m and {
        "legit_accuracy": m.legit_accuracy,
        "victims_correct": m.victims_correct,
        "wall_seconds": m.wall_seconds,
        "epochs": m.epochs,
        "test_images": m.test_images,
        "precision": m.precision,
    }


def _attack(path):
    record = rundir.StickerRecord.read(path)
    return record and {
        "aggregate": record.aggregate,
        "rows": record.rows,
        "clean_victim_accuracy": record.clean_victim_accuracy,
        "precision": record.precision,
    }


def _pgd(path):
    record = rundir.PgdRecord.read(path)
    return record and {**record.pgd, "precision": record.precision}


def _runs(lay, profile, seed, rows):
    """One seed's numbers of `rows` (None where a step has not run): the first seed's every row and
    sweep, the other seeds' the steps the plan repeats under every seed."""
    first = seed == profile.seeds[0]
    attacked = (rundir.ORIGINAL,) + rows
    values = rundir.ResultRecord.read_values
    conv = [r for r in rows if r.startswith("conv_")]
    return {
        "models": {r: _model(rundir.read_model(lay.model_dir(r, seed))) for r in rows},
        "whitebox": {r: _attack(lay.results("whitebox", r, seed)) for r in attacked},
        "transfer": {
            s: values(lay.results("transfer", s, seed)) for s in (rundir.ORIGINAL, "baseline") if first or s in attacked
        },
        "lowfreq": {
            f"{r}/dct{d}": _attack(lay.results("lowfreq", f"{r}/dct{d}", seed))
            for r in conv
            for d in (profile.dct_dims if r == "conv_7" and first else (16,))
        },
        "adaptive": {r: _attack(lay.results("adaptive", r, seed)) for r in rows},
        "adaptive_adv_train": {
            g: _attack(lay.results("adaptive_adv_train", g, seed))
            for g in profile.table5_regularisers
            if first or "adv_train" in rows
        },
        "pgd": {r: _pgd(lay.results("pgd", r, seed)) for r in attacked},
    }


def collect(work_dir, profile):
    """All numbers of the report under the profile's first seed, as one JSON-able dict (rows not run
    yet are None); `seeds` holds the other seeds' numbers of the seeded rows, in the same shape
    (`runs`: {seed: ...}). reports.flat_records turns the whole into one record per number."""
    lay, first = rundir.Layout(work_dir), profile.seeds[0]
    seeded = tuple(r for r in profile.rows if r in profile.seeded_rows)
    values = rundir.ResultRecord.read_values
    gaussian = [r.removeprefix("gaussian_aug_") for r in profile.rows if r.startswith("gaussian_aug_")]
    runs = _runs(lay, profile, first, tuple(profile.rows))
    return {
        "profile": profile.name,
        "lambda": paper.RP2_LAMBDA,
        **runs,
        "smoothing": {sigma: values(lay.results("smoothing", sigma, first)) for sigma in gaussian},
        "spectra": values(lay.root / "figures" / rundir.RESULTS_FILE),
        "pixel_deflection": values(lay.root / "pixel_deflection" / rundir.RESULTS_FILE),
        "defendpp": defendpp_section.collect(work_dir),
        "accuracy_curve": accuracy_curve.collect(work_dir, profile),
        "seeds": {
            "seeds": list(profile.seeds),
            "rows": list(seeded),
            "runs": {seed: _runs(lay, profile, seed, seeded) for seed in profile.seeds[1:]},
        },
    }
