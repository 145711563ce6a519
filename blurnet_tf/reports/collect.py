"""Every number of the report, read from a reproduction's run directory through its records."""

from blurnet_tf import paper, rundir
from blurnet_tf.reports import defendpp_section


def _attack(path):
    record = rundir.StickerRecord.read(path)
    return record and {"aggregate": record.aggregate, "rows": record.rows}


def collect(work_dir, profile):
    """All numbers of the report as one JSON-able dict (rows not run yet are None)."""
    lay = rundir.Layout(work_dir)
    rows = (rundir.ORIGINAL,) + tuple(profile.rows)
    models = {r: rundir.read_model(lay.model_dir(r)) for r in profile.rows}
    whitebox = {r: rundir.StickerRecord.read(lay.results("whitebox", r)) for r in rows}
    values = rundir.ResultRecord.read_values
    return {
        "profile": profile.name,
        "lambda": paper.RP2_LAMBDA,
        "models": {r: m and {"legit_accuracy": m.legit_accuracy, "victims_correct": m.victims_correct,
                             "wall_seconds": m.wall_seconds, "epochs": m.epochs} for r, m in models.items()},
        "whitebox": {r: w and {"aggregate": w.aggregate, "rows": w.rows,
                               "clean_victim_accuracy": w.clean_victim_accuracy} for r, w in whitebox.items()},
        "transfer": {s: values(lay.results("transfer", s)) for s in (rundir.ORIGINAL, "baseline")},
        "smoothing": {p.name: values(p / rundir.RESULTS_FILE) for p in sorted((lay.root / "smoothing").glob("*"))
                      if rundir.is_result_dir(p)},
        "lowfreq": {f"{p.parent.name}/{p.name}": _attack(p / rundir.RESULTS_FILE)
                    for p in sorted((lay.root / "lowfreq").glob("*/dct*")) if rundir.is_result_dir(p)},
        "adaptive": {r: _attack(lay.results("adaptive", r)) for r in profile.rows},
        "adaptive_adv_train": {g: _attack(lay.results("adaptive_adv_train", g)) for g in profile.table5_regularisers},
        "pgd": {r: (p := rundir.PgdRecord.read(lay.results("pgd", r))) and p.pgd for r in rows},
        "spectra": values(lay.root / "figures" / rundir.RESULTS_FILE),
        "pixel_deflection": values(lay.root / "pixel_deflection" / rundir.RESULTS_FILE),
        "defendpp": defendpp_section.collect(work_dir),
    }
