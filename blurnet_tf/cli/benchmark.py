"""Benchmark any Keras classifier on your own data: the evaluation our reports give the papers' models.

    python -m blurnet_tf.cli.benchmark --model=model.keras --data=test.npz --out=runs/bench
    python -m blurnet_tf.cli.benchmark --model=model.keras --data=test.npz --out=runs/bench \\
        --threat_models=clean,linf,l2,sticker --mask=mask.npy --targets=1,3 --seeds=0,1,2
    python -m blurnet_tf.cli.benchmark --model=model.keras --data=test.npz --out=runs/robustbench \\
        --threat_models=clean,Linf,L2 --linf_eps=0.0157,0.0314,0.0627 --l2_eps=0.25,0.5

--data is an .npz with `x` (float images [N, H, W, C] in [0, 1]) and `y` (integer labels); --mask an
.npy of 0 and 1 shaped like one image. Writes OUT/results.json (the flat records, one per number,
blurnet_tf.evaluation.robustness_benchmark, with the flags, package versions, commit, seconds and time
of the run), OUT/results.csv (the records), OUT/REPORT.md and, where a threat model ran at more than one
ε, OUT/robust_accuracy.png (robust accuracy against ε). The same function is the library's:
`from blurnet_tf.evaluation.robustness_benchmark import benchmark`.
"""

import inspect
import pathlib
import sys
import time
import zipfile
import zlib

from absl import flags

from blurnet_tf import cli
from blurnet_tf.evaluation import threat_models as threats

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A .keras classifier returning logits (loaded with safe_mode).", required=True)
flags.DEFINE_string("data", None, "An .npz with x (float images in [0, 1]) and y (integer labels).", required=True)
flags.DEFINE_string("out", None, "Output directory for results.json, results.csv and REPORT.md.", required=True)
flags.DEFINE_boolean("overwrite", False, "Write into an --out holding files a benchmark did not write.")
flags.DEFINE_list(
    "custom_objects",
    [],
    "The model's own layers or functions, as module:Name (found as `python -m` finds modules: the working "
    "directory, then PYTHONPATH); "
    "a bare module is imported for the classes it registers with Keras.",
)
flags.DEFINE_list(
    "threat_models",
    ["clean", "linf", "l2"],
    "Any of clean, Linf, L2 (RobustBench's: AutoAttack at each --linf_eps / --l2_eps), linf (PGD), l2 (DDN), "
    "sticker (RP2), physical (RP2 over viewing conditions, scored on the stationary grid), autoattack (Linf's "
    "older name), checks.",
)
flags.DEFINE_string("mask", None, "sticker, physical: an .npy of 0 and 1 shaped like one image.")
flags.DEFINE_list("targets", [], "sticker, physical: the target classes.")
flags.DEFINE_list("seeds", ["0"], "Seeds: PGD random starts and RP2 noise initialisations.")
flags.DEFINE_integer("n_examples", 0, "Use the first N images (0: all).", lower_bound=0)
flags.DEFINE_integer(
    "batch_size", 0, "Images per call of PGD, DDN and AutoAttack (0: all at once; RP2 keeps one call).", lower_bound=0
)
flags.DEFINE_list(
    "linf_eps",
    ["0.03137254901960784"],
    "Linf, linf, autoattack: the L-inf radii (8/255; a list gives accuracy against eps).",
)
flags.DEFINE_list("l2_eps", ["0.5"], "L2: the L2 radii (RobustBench's 0.5; a list gives accuracy against eps).")
flags.DEFINE_integer("linf_steps", 50, "linf: PGD steps per start.", lower_bound=1)
flags.DEFINE_float("linf_step", None, "linf: PGD's step (default: Madry's 2.5 eps / steps).")
flags.DEFINE_boolean("linf_random_start", True, "linf: start PGD at a random point of the ball (else at the image).")
flags.DEFINE_integer(
    "autoattack_steps", 100, "autoattack: iterations of each APGD run (AutoAttack's 100).", lower_bound=1
)
flags.DEFINE_integer("square_queries", 5000, "autoattack: Square's queries (AutoAttack's 5,000).", lower_bound=1)
flags.DEFINE_string("source", None, "checks: a second .keras model the transfer check crafts PGD on.")
flags.DEFINE_integer("check_steps", 50, "checks: PGD steps of the PGD checks.", lower_bound=1)
flags.DEFINE_integer("check_rp2_epochs", 30, "checks: RP2 epochs of the RP2 checks (needs --targets).", lower_bound=1)
flags.DEFINE_integer("ddn_steps", 100, "l2: DDN steps.", lower_bound=1)
flags.DEFINE_integer("rp2_epochs", 300, "sticker: RP2 epochs (the paper's 300).", lower_bound=1)
flags.DEFINE_float("rp2_lambda", 0.002, "sticker: RP2's λ (the paper's 0.002).")
flags.DEFINE_integer(
    "physical_samples",
    4,
    "physical: views of every image a step of the EOT sticker (attacks.PhysicalConditions).",
    lower_bound=1,
    upper_bound=64,
)


def _array(path, flag, keys):
    import numpy as np

    from blurnet_tf.errors import DataError

    path = pathlib.Path(path)
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)  # a truncated or foreign file
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            arrays = (data,)
        else:
            with data:
                for names in keys:
                    if not any(k in data.files for k in names):
                        raise DataError(
                            path, f"expected an array named {' or '.join(names)} (--{flag}); has {data.files}"
                        )
                arrays = tuple(data[next(k for k in names if k in data.files)] for names in keys)
    except DataError:
        raise  # ours, already naming the file (a DataError is a ValueError too)
    except unreadable as exc:
        raise DataError(
            path,
            f"cannot read it as a NumPy .npy / .npz file (--{flag}): {str(exc).splitlines()[0] or type(exc).__name__}",
        ) from None
    for array in arrays:
        if array.dtype.kind not in "biuf":
            raise DataError(path, f"expected numeric arrays (--{flag}); got dtype {array.dtype}")
    return arrays[0] if isinstance(data, np.ndarray) else arrays


def _custom_objects(specs):
    """{Name: object} of `module:Name` specs (a bare `module` is imported for what it registers), or a
    SettingError naming the spec that cannot be imported."""
    import importlib

    found = {}
    for spec in specs:
        module, _, name = spec.partition(":")
        try:
            imported = importlib.import_module(module)
            if name:
                found[name] = getattr(imported, name)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module may fail in any way: one line
            text = str(exc).splitlines()[0] if str(exc) else ""
            raise cli.SettingError("custom_objects", f"cannot import {spec!r} ({type(exc).__name__}: {text})") from None
    return found or None


def main(argv):
    del argv
    cli.check_model(FLAGS.model)  # a missing or broken file: one line before TensorFlow loads
    from blurnet_tf import files, locks, rundir

    started = time.time()
    out = pathlib.Path(FLAGS.out)
    locks.check_writable_dir(out, "out")  # a file or an unwritable place: refused before the benchmark runs
    locks.claim_dir(out, rundir.BENCHMARK_WRITER, FLAGS.overwrite)
    x, y = _array(FLAGS.data, "data", [("x", "images"), ("y", "labels")])
    mask = _array(FLAGS.mask, "mask", []) if FLAGS.mask else None
    targets = cli.int_list("targets", ",".join(FLAGS.targets)) if FLAGS.targets else None
    seeds = cli.int_list("seeds", ",".join(FLAGS.seeds))
    linf_eps, l2_eps = cli.float_list("linf_eps", FLAGS.linf_eps), cli.float_list("l2_eps", FLAGS.l2_eps)
    for name, values in (("linf_eps", linf_eps), ("l2_eps", l2_eps)):  # before TensorFlow loads (benchmark's rules)
        problem = threats.radii_problem(name, values)
        if problem:
            raise cli.SettingError(name, f"{problem}, got {','.join(getattr(FLAGS, name)) or 'none'}")
    unknown = threats.unknown_threat_models(FLAGS.threat_models)
    if unknown:
        raise cli.SettingError("threat_models", unknown)
    from blurnet_tf.evaluation.robustness_benchmark import benchmark  # TensorFlow: only once the files are checked
    from blurnet_tf.registry import load_model

    custom = _custom_objects(FLAGS.custom_objects)
    model = load_model(FLAGS.model, custom_objects=custom)
    source = load_model(FLAGS.source, custom_objects=custom) if FLAGS.source else None
    try:
        records = benchmark(
            model,
            x,
            y,
            threat_models=tuple(FLAGS.threat_models),
            targets=targets,
            mask=mask,
            seeds=seeds,
            n_examples=FLAGS.n_examples or None,
            batch_size=FLAGS.batch_size or None,
            linf_eps=linf_eps,
            l2_eps=l2_eps,
            linf_steps=FLAGS.linf_steps,
            linf_step=FLAGS.linf_step,
            linf_random_start=FLAGS.linf_random_start,
            ddn_steps=FLAGS.ddn_steps,
            rp2_epochs=FLAGS.rp2_epochs,
            rp2_lambda=FLAGS.rp2_lambda,
            physical_samples=FLAGS.physical_samples,
            autoattack_steps=FLAGS.autoattack_steps,
            square_queries=FLAGS.square_queries,
            source=source,
            check_steps=FLAGS.check_steps,
            check_rp2_epochs=FLAGS.check_rp2_epochs,
            name=pathlib.Path(FLAGS.model).stem,
        )
    except ValueError as exc:
        name, _, problem = str(exc).partition(": ")  # benchmark() names the argument first
        if name not in inspect.signature(benchmark).parameters:
            raise  # not a setting of ours: a real error, shown as one (never as a made-up flag)
        raise cli.SettingError(
            {"images": "data", "labels": "data", "x": "data", "y": "data"}.get(name, name), problem
        ) from None
    with locks.RunLock(out):
        locks.mark_owner(out, rundir.BENCHMARK_WRITER)
        arguments = {f.name: f.value for f in FLAGS.get_key_flags_for_module(sys.modules[__name__])}
        files.write_json(
            out / "results.json",
            {
                "schema": 1,
                "kind": rundir.BENCHMARK_KIND,
                "arguments": arguments,
                "versions": files.package_versions(),
                "seconds": time.time() - started,
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "records": records,
            },
        )
        fields = list(records[0])
        files.write_csv(
            out / "results.csv", [fields] + [[r[f] if r[f] is not None else "" for f in fields] for r in records]
        )
        lines = [
            f"# Benchmark of {FLAGS.model}",
            "",
            f"Data: {FLAGS.data} ({min(len(y), FLAGS.n_examples or len(y))} images); seeds "
            f"{', '.join(map(str, seeds))}. 95% intervals.",
            "",
            "| threat model | attack | budget | target | metric | value | interval |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['threat_model']} | {r['attack']} | {r['budget']} | {'' if r['target'] is None else r['target']} | "
            f"{r['metric']} | {r['value']:.4g} | "
            + ("" if not r["interval"] else f"[{r['interval'][0]:.3g}, {r['interval'][1]:.3g}]")
            + " |"
            for r in records
            if r["seed"] is None
        ]
        plot = _accuracy_against_eps(records)
        if plot is not None:
            files.write_bytes(out / "robust_accuracy.png", plot)
            lines += ["", "![robust accuracy against ε](robust_accuracy.png)"]
        files.write_text(out / "REPORT.md", "\n".join(lines) + "\n")
    print(f"{len(records)} records; wrote {out}/results.json, results.csv and REPORT.md", flush=True)


def _accuracy_against_eps(records):
    """PNG bytes of robust accuracy against ε, one panel per threat model run at more than one ε; else None."""
    curves = {}
    for r in records:
        if r["metric"] == "robust_accuracy" and r["seed"] is None and r["budget"].startswith("eps="):
            eps = float(r["budget"].split(",")[0].removeprefix("eps="))
            curves.setdefault(r["threat_model"], []).append((eps, r["value"]))
    curves = {threat: sorted(points) for threat, points in curves.items() if len(points) > 1}
    if not curves:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3), squeeze=False)
    for ax, (threat, points) in zip(axes[0], curves.items()):
        ax.plot(*zip(*points), marker="o")
        ax.set(xlabel="ε", ylabel="robust accuracy", title=threat, ylim=(0, 1))
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


if __name__ == "__main__":
    cli.run(main)
