"""Reproduce the papers: train, attack, and write results/REPORT.md with Tables I-V and Figs. 1-6.

    python -m blurnet_tf.cli.reproduce --profile=quick   # ./run.sh  (two seeds; about 6 min on 2 CPU cores)
    python -m blurnet_tf.cli.reproduce --profile=full    # ./run.sh full  (the paper's budgets)

Every step is skipped when it finished before with the same settings, so a killed run picks up
where it stopped. Step outputs live in runs/<profile>/; the report in results/<profile>/ and
results/REPORT.md.
"""

import fnmatch
import importlib
import os
import pathlib
import time

from absl import flags

from blurnet_tf.pipeline.plan import PROFILES  # (planning imports no TensorFlow)

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "profile",
    "quick",
    list(PROFILES),
    "; ".join(f"{name}: {profile.what}" for name, profile in PROFILES.items()) + ".",
)
flags.DEFINE_string("work_dir", None, "Step outputs (default runs/<profile>).")
flags.DEFINE_string("results_dir", "results", "Where REPORT.md, tables.json and figures go.")
flags.DEFINE_string("data_dir", None, "Data directory (default: $BLURNET_DATA, ../shared/data, cache).")
flags.DEFINE_list("stages", None, "Run only these stages (e.g. train,whitebox); the report is always written.")
flags.DEFINE_list(
    "steps",
    None,
    "Run only the steps whose names match these shell patterns, e.g. "
    "train/baseline_holdout,pixel_deflection/* (names: see the report's step list).",
)
flags.DEFINE_list(
    "seeds",
    None,
    "Training / RP2 noise seeds of the Table I-V rows (default: the profile's; "
    "quick 0,1, full 0,1,2). The λ sweep, Pixel Deflection and Defend++ use the first.",
)
flags.DEFINE_integer(
    "jobs",
    None,
    "Steps run at once, the cores shared out among them (default: the profile's; "
    "quick 2, full 1). 2 on 2 cores is 1.3-1.4x as fast; results match another --jobs to float32 "
    "rounding, not bit for bit (the thread count changes TensorFlow's summation order); step.json "
    "records the threads.",
    lower_bound=1,
    upper_bound=1024,
)
flags.DEFINE_string(
    "address",
    None,
    "A running Ray cluster to run the steps on (host:port, or 'auto'; default: "
    "$RAY_ADDRESS, else a Ray instance on this machine with --jobs places, started and stopped here).",
)
flags.DEFINE_float(
    "cpus_per_step",
    None,
    "CPUs each step asks Ray for (fractions allowed; default: this machine's "
    "cores shared out among --jobs, 1 on a cluster); also its TensorFlow threads.",
)
flags.DEFINE_float(
    "gpus_per_step",
    0.0,
    "GPUs each step asks Ray for (0.5: two steps share one); a step sees only its own (CUDA_VISIBLE_DEVICES).",
)
flags.register_validator(
    "cpus_per_step",
    lambda v: v is None or 0.01 <= v <= 1024,  # (NaN fails both)
    "expected a number in 0.01..1024",
)
flags.register_validator(
    "gpus_per_step", lambda v: 0 <= v <= 64, "expected a number in 0..64 (0.5: two steps share one)"
)
for _name in ("stages", "steps"):  # an empty value would select everything
    flags.register_validator(
        _name,
        lambda v: v is None or any(n.strip() for n in v),
        "expected at least one name (leave the flag out to run every one)",
    )
flags.DEFINE_boolean(
    "report_only",
    False,
    "Regenerate the report from finished steps without running any (refused "
    "where it would replace a report with one of fewer steps or seeds).",
)


def main(argv):  # noqa: C901 - issue 40's restructure splits it
    del argv
    from blurnet_tf import files, locks, rundir
    from blurnet_tf.data import find_data_dir
    from blurnet_tf.errors import DataError
    from blurnet_tf.pipeline.plan import Study, build_plan, with_seeds
    from blurnet_tf.pipeline.ray_executor import run_all_watched
    from blurnet_tf.pipeline.steps import is_done, status
    from blurnet_tf.reports.results_dirs import claim_results
    from blurnet_tf.reports.report_writer import write_report

    started = time.time()
    profile = PROFILES[FLAGS.profile]
    if FLAGS.seeds:
        from blurnet_tf import cli

        seeds = cli.int_list("seeds", ",".join(FLAGS.seeds))
        if len(set(seeds)) != len(seeds) or min(seeds) < 0 or max(seeds) > 2**32 - 1:  # 32-bit seeds
            raise cli.SettingError(
                "seeds", f"expected distinct integers in 0..{2**32 - 1}, got {','.join(FLAGS.seeds)}"
            )
        profile = with_seeds(profile, seeds)
    if FLAGS.address and not FLAGS.report_only:  # before anything is written
        from blurnet_tf.pipeline.ray_nodes import check_reachable

        check_reachable(FLAGS.address)
    elif os.environ.get("RAY_ADDRESS") and not FLAGS.report_only:
        from blurnet_tf.pipeline.ray_nodes import check_reachable

        check_reachable(os.environ["RAY_ADDRESS"], "RAY_ADDRESS")
    work_dir = FLAGS.work_dir or f"runs/{profile.name}"
    # Every path checked before the first step: a bad one costs seconds, never a finished profile.
    locks.check_writable_dir(FLAGS.results_dir, "results_dir")
    claim_results(
        FLAGS.results_dir,
        profile.name,
        writes_top_report=not isinstance(profile, Study),
    )
    if FLAGS.report_only:  # reads the work directory, writes nothing there
        if pathlib.Path(work_dir).exists() and not pathlib.Path(work_dir).is_dir():
            raise DataError(work_dir, "is a file, not a directory (--work_dir)")
    else:
        locks.check_writable_dir(work_dir, "work_dir")
    made_by = locks.owner(work_dir)
    if made_by not in (None, rundir.REPRODUCE_WRITER.name):
        raise DataError(work_dir, f"was written by `{made_by}`, not a reproduction; choose another --work_dir")
    find_data_dir(FLAGS.data_dir)  # fail early, with the path, if the data are missing
    if not pathlib.Path("flags/models").is_dir():
        raise DataError(pathlib.Path("flags/models").resolve(), "flagfiles not found: run from the repository root")
    plan = build_plan(profile, work_dir, FLAGS.data_dir)
    theirs = _users_files(pathlib.Path(work_dir), plan) if made_by is None else ""  # (made before the marker)
    if theirs:
        raise DataError(
            work_dir, f"holds files a reproduction did not write ({theirs}); choose a new or empty --work_dir"
        )
    if FLAGS.report_only and not (isinstance(profile, Study) and profile.merges_parts):  # (these merge by design)
        from blurnet_tf.reports.results_dirs import keep_a_fuller_report

        unfinished = [s.name for s in plan if status(s) != "done"]
        keep_a_fuller_report(
            pathlib.Path(FLAGS.results_dir) / profile.name, unfinished, len(plan), work_dir, profile.seeds
        )
    if FLAGS.report_only and not any(is_done(s) for s in plan):  # a typo in --work_dir: no empty report
        raise DataError(work_dir, "holds no finished step of this profile to report; check --work_dir and --profile")
    steps = plan
    if FLAGS.stages:
        unknown = set(FLAGS.stages) - {s.stage for s in steps}
        if unknown:
            raise flags.ValidationError(
                f"--stages: unknown {sorted(unknown)}; stages are {sorted({s.stage for s in steps})}"
            )
        steps = [s for s in steps if s.stage in FLAGS.stages]
    if FLAGS.steps:
        unmatched = [p for p in FLAGS.steps if not any(fnmatch.fnmatchcase(s.name, p) for s in steps)]
        if unmatched:
            raise flags.ValidationError(
                f"--steps: {unmatched} match no step of this profile{' and --stages' if FLAGS.stages else ''}"
            )
        steps = [s for s in steps if any(fnmatch.fnmatchcase(s.name, p) for p in FLAGS.steps)]
    print(
        f"profile {profile.name}: {len(steps)} steps, {sum(is_done(s) for s in steps)} already done; "
        f"outputs in {work_dir}",
        flush=True,
    )
    jobs = FLAGS.jobs or profile.jobs
    stage_seconds = {}
    if not FLAGS.report_only:
        with locks.RunLock(work_dir, flag="work_dir"):  # one runner per work directory
            locks.mark_owner(work_dir, rundir.REPRODUCE_WRITER)
            stage_seconds = run_all_watched(
                steps,
                log=lambda m: print(m, flush=True),
                jobs=jobs,
                address=FLAGS.address,
                cpus_per_step=FLAGS.cpus_per_step,
                gpus_per_step=FLAGS.gpus_per_step,
                shared_dir=work_dir,
                quiet=FLAGS.verbosity < 1,
            )
    states = {s.name: status(s) for s in plan}  # after the run: the whole plan, not only the steps run
    missing = [n for n, st in states.items() if st == "missing"]
    stale = [n for n, st in states.items() if st == "stale"]
    if isinstance(profile, Study):  # each study writes its own report, named by its budget's type
        write_report = importlib.import_module(f"blurnet_tf.reports.{profile.budget.REPORT}").write_report
    with files.all_or_nothing():  # a full disk leaves the last report whole, not half replaced
        report = write_report(
            profile,
            work_dir,
            FLAGS.results_dir,
            started,
            stage_seconds,
            [s.out for s in plan if states[s.name] == "done"],
            missing,
            stale,
        )
    top = "" if isinstance(profile, Study) else f" and {FLAGS.results_dir}/REPORT.md"
    print(f"wrote {report}{top} in {(time.time() - started) / 60:.1f} min", flush=True)
    for stage, seconds in stage_seconds.items():
        print(f"  {stage:>20}: {seconds / 60:5.1f} min", flush=True)


def _users_files(work_dir, plan):
    """What a work directory without the reproduction's marker holds beside the folders this profile's steps
    write; everything, when none of the plan's steps left a record there."""
    from blurnet_tf import locks

    if not work_dir.is_dir():
        return ""
    root = work_dir.absolute()  # not resolved: a step folder may be a link to another disk
    ours = {pathlib.Path(os.path.relpath(pathlib.Path(s.out).absolute(), root)).parts[0] for s in plan}
    recorded = any((pathlib.Path(s.out) / m).exists() for s in plan for m in (locks.STEP_DONE, locks.STEP_PENDING))
    names = sorted(p.name for p in work_dir.iterdir() if p.name not in locks.BOOKKEEPING)
    theirs = [n for n in names if not recorded or n not in ours]
    return ", ".join(theirs[:3]) + (f" and {len(theirs) - 3} more" if len(theirs) > 3 else "")


if __name__ == "__main__":
    from blurnet_tf import cli

    cli.run(main)
