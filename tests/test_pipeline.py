"""The reproduction pipeline: step skipping and resume, the scheduler, the plan and the report's logic.
The end-to-end run of every stage is in test_reproduce_smoke.py."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest

import dataclasses

from blurnet_tf.errors import StepFailed
from blurnet_tf.pipeline.mnist_steps import MNIST_ROWS, PAPER_MNIST_ROWS
from blurnet_tf.pipeline.plan import DEFENDPP_ROW, PD_ROW, PROFILES, TABLE2_ROWS, build_plan
from blurnet_tf.pipeline.ray_executor import run_all, step_threads
from blurnet_tf.pipeline.step_process import THREAD_VARIABLES
from blurnet_tf.pipeline.steps import Step, is_done, run_step, status, step_key
from blurnet_tf.reports import format as report_format, report_writer

from conftest import ROOT, probe_step as _probe, ran as _ran, ray_token_env, run_python, stop_ray_leftovers


from probe_experiments import CALLS, Counted, Recorded, Timed


def test_finished_step_is_skipped_and_changed_settings_rerun(tmp_path):
    CALLS.clear()
    step = Step("demo/a", "demo", tmp_path / "a", experiment=Counted(x=1))
    assert run_step(step, log=lambda m: None)[1] is False
    assert run_step(step, log=lambda m: None)[1] is True and len(CALLS) == 1
    step.experiment = Counted(x=2)  # other settings: the old output is not reused, but kept aside
    assert not is_done(step)
    run_step(step, log=lambda m: None)
    assert len(CALLS) == 2
    kept = list(tmp_path.glob("a.superseded-*"))
    assert len(kept) == 1 and (kept[0] / "result.txt").read_text() == "ok"


def test_one_job_runs_the_plan_in_order_and_stops_at_a_failure(tmp_path, probes, monkeypatch):
    """Under a TMPDIR too long for Ray's socket paths (107 bytes): the instance's folder goes under /tmp."""
    import tempfile

    long_tmp = tmp_path / ("t" * 90)
    long_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(long_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    first, inproc, fails, never = (
        _probe(tmp_path, "first", "--sleep=0.5"),
        Step("probe/inproc", "probe", tmp_path / "inproc", experiment=Timed()),
        _probe(tmp_path, "fails", "--fail"),
        _probe(tmp_path, "never"),
    )
    lines = []
    with pytest.raises(StepFailed, match="probe/fails"):
        run_all([first, inproc, fails, never], log=lines.append)
    assert _ran(first)["end"] <= _ran(inproc)["start"]
    assert _ran(first)["intra_op_threads"] == str(len(os.sched_getaffinity(0)))  # one place: every core
    assert not (never.out / "started.json").exists()
    assert not any(line.startswith("stopping:") for line in lines)  # nothing else was running


def test_no_step_process_starts_once_the_run_is_stopping(tmp_path, probes):
    from blurnet_tf.pipeline.step_process import StepProcesses

    processes, step = StepProcesses(), _probe(tmp_path, "late")
    processes.stop()
    with pytest.raises(StepFailed, match="probe/late not started: the run is stopping"):
        run_step(step, log=lambda m: None, processes=processes)
    assert not (step.out / "started.json").exists() and not is_done(step)


def test_a_step_whose_runner_is_gone_does_not_start(tmp_path, probes):
    (tmp_path / "x").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "step_probe", f"--out={tmp_path / 'x'}"],
        capture_output=True,
        text=True,
        env={**os.environ, "BLURNET_RUNNER_PID": "1"},
    )
    assert proc.returncode == 1 and not (tmp_path / "x" / "started.json").exists()
    assert (
        proc.stderr.strip()
        == "error: BLURNET_RUNNER_PID: the pipeline runner (pid 1) is gone; this step does not start"
    )


def test_a_step_gets_its_cpus_as_threads_unless_the_user_set_threads(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert step_threads(4) == {"TF_NUM_INTRAOP_THREADS": "4", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "4"}
    assert step_threads(0.5)["TF_NUM_INTRAOP_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert step_threads(2) == {"OMP_NUM_THREADS": "3"}


@pytest.mark.parametrize("value", ["abc", "0", "-2", "", "\u00b2", "99999999999"])
def test_a_thread_variable_that_is_not_a_count_is_refused(monkeypatch, value):
    from blurnet_tf.errors import DataError

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", value)
    with pytest.raises(
        DataError, match=f"^environment variable TF_NUM_INTRAOP_THREADS: expected a whole number >= 1, got {value!r}$"
    ):
        run_all([], log=lambda m: None)


def test_steps_asking_for_a_gpu_each_see_their_own_on_a_cluster_with_a_fake_gpu_count(tmp_path, probes):
    """Ray schedules by the GPU count (two fake GPUs: at most two steps of one GPU at once) and gives each
    step only its own device (CUDA_VISIBLE_DEVICES)."""
    import ray

    ray.init(
        address="local", num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
    )
    try:
        steps = [_probe(tmp_path, f"g{i}", "--sleep=2") for i in range(3)]
        run_all(steps, log=lambda m: None, cpus_per_step=1, gpus_per_step=1)
    finally:
        ray.shutdown()
    seen = [_ran(s)["cuda_visible_devices"] for s in steps]
    assert all(v in ("0", "1") for v in seen) and len(set(seen[:2])) == 2
    spans = sorted((_ran(s)["start"], _ran(s)["end"]) for s in steps)
    assert spans[2][0] >= min(spans[0][1], spans[1][1]) - 0.05  # the third waited for a free GPU
    assert [json.loads((s.out / "step.json").read_text())["placement"]["resources"]["GPU"] for s in steps] == [1.0] * 3


# Ctrl-C at a terminal: a suite started in the background from a script inherits SIGINT ignored
# (POSIX), so the runner restores Python's own handler first.
_RUNNER = """
import pathlib, signal, sys
from blurnet_tf import cli
from blurnet_tf.pipeline.steps import Step
from blurnet_tf.pipeline.ray_executor import run_all_watched
signal.signal(signal.SIGINT, signal.default_int_handler)
root = pathlib.Path(sys.argv[1])
steps = [Step(f"probe/{n}", "probe", root / n, command=["step_probe", f"--out={root / n}", "--sleep=60"])
         for n in ("a", "b")]
cli.run(lambda argv: run_all_watched(steps, log=print, jobs=2))  # as the reproduce binary runs it (in a child)
"""


def _pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _runner_with_two_running_steps(tmp_path, env):
    import time

    runner = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    started = [tmp_path / n / "started.json" for n in ("a", "b")]
    deadline = time.time() + 60
    while not all(p.is_file() and p.read_text() for p in started) and time.time() < deadline:
        time.sleep(0.1)
    return runner, [json.loads(p.read_text())["pid"] for p in started]


def _gone(pids, within=10.0):
    import time

    deadline = time.time() + within
    while any(_pid_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.1)
    return not any(_pid_alive(p) for p in pids)


@pytest.mark.slow  # a runner process with a Ray instance of its own per signal: about 6 s each
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the death signal is Linux's")
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_runner_stops_its_step_processes(tmp_path, probes, how):
    """Ctrl-C, SIGTERM and a kill of the runner all end the running steps, and none is marked done; the first
    two end in one line and the shell's status (130 / 143), not a traceback or Ray's C++ stack."""
    env = ray_token_env()
    try:
        runner, pids = _runner_with_two_running_steps(tmp_path, env)
        runner.send_signal(how)
        output = runner.communicate(timeout=30)[0]
        assert _gone(pids), output
    finally:
        stop_ray_leftovers(env)
    assert not any((tmp_path / n / "step.json").exists() for n in ("a", "b"))
    if how != signal.SIGKILL:
        name, status = ("Ctrl-C", 130) if how == signal.SIGINT else ("SIGTERM", 143)
        assert runner.returncode == status, output
        assert output.strip().splitlines()[-1].startswith(f"error: stopped by {name}; finished work is kept"), output
        assert "Traceback" not in output and "SIGTERM received" not in output, output


def test_every_field_of_every_planned_experiment_is_in_its_key():
    """Step keys come from the experiment's fields: changing any one of them changes the key."""
    for step in build_plan(PROFILES["smoke"], "runs/smoke"):
        if step.experiment is None:
            continue
        for field in dataclasses.fields(step.experiment):
            value = getattr(step.experiment, field.name)
            other = (
                value + 1
                if isinstance(value, (int, float)) and not isinstance(value, bool)
                else (not value)
                if isinstance(value, bool)
                else dataclasses.replace(value, **{dataclasses.fields(value)[0].name: 99})
                if dataclasses.is_dataclass(value)
                else value + (("x", 1),)
                if isinstance(value, tuple)
                else f"{value}-changed"
            )
            changed = dataclasses.replace(step, experiment=dataclasses.replace(step.experiment, **{field.name: other}))
            assert step_key(changed) != step_key(step), (step.name, field.name)


def test_changed_input_file_reruns_the_step(tmp_path):
    CALLS.clear()
    model = tmp_path / "model.keras"
    model.write_bytes(b"v1")
    step = Step("demo/b", "demo", tmp_path / "b", experiment=Counted(), inputs=[model])
    run_step(step, log=lambda m: None)
    model.write_bytes(b"v2")  # retrained model
    assert not is_done(step)
    run_step(step, log=lambda m: None)
    assert len(CALLS) == 2


def test_killed_step_keeps_its_partial_work_and_stale_work_is_cleared(tmp_path):
    step = Step("demo/c", "demo", tmp_path / "c", experiment=Counted(fail=True))
    with pytest.raises(KeyboardInterrupt):
        run_step(step, log=lambda m: None)
    assert (step.out / "partial.txt").is_file() and not is_done(step)
    (step.out / "resume-state").write_text("epoch 7")
    with pytest.raises(KeyboardInterrupt):  # same key: the binaries' own resume state must survive
        run_step(step, log=lambda m: None)
    assert (step.out / "resume-state").is_file()
    stale = Step("demo/c", "demo", tmp_path / "c", experiment=Counted(x=5))
    run_step(stale, log=lambda m: None)
    assert not (stale.out / "resume-state").exists() and is_done(stale)


def test_a_directory_not_written_by_the_pipeline_is_moved_aside_not_deleted(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mine.txt").write_text("user data")
    run_step(Step("demo/d", "demo", tmp_path / "d", experiment=Counted(x=7)), log=lambda m: None)
    assert (tmp_path / "d.not-a-step" / "mine.txt").read_text() == "user data"


@pytest.mark.parametrize(
    "marker,text",
    [("step.json", "[1, 2]"), ("step.json", '{"key": 7}'), ("step.pending.json", '"a string"'), ("step.json", "null")],
)
def test_a_step_marker_of_the_wrong_shape_is_moved_aside_and_the_step_rerun(tmp_path, marker, text):
    """Valid JSON that is not a marker reads as no marker: the directory is kept aside, the step runs again."""
    CALLS.clear()
    step = Step("demo/m", "demo", tmp_path / "m", experiment=Counted(x=3))
    step.out.mkdir()
    (step.out / marker).write_text(text)
    assert status(step) == "missing"
    run_step(step, log=lambda m: None)
    assert is_done(step) and len(CALLS) == 1
    assert (tmp_path / "m.not-a-step" / marker).read_text() == text


@pytest.mark.parametrize("damage", ["moved aside", "truncated archive", "a list, not a record"])
def test_a_finished_step_whose_records_are_damaged_runs_again(tmp_path, damage):
    """The advice "move it aside to start this result again", followed, re-runs the step: step.json lists
    the records the step left, and a step with one gone or unreadable is not done."""
    CALLS.clear()
    step = Step("demo/r", "demo", tmp_path / "r", experiment=Recorded(x=4))
    run_step(step, log=lambda m: None)
    assert json.loads((step.out / "step.json").read_text())["records"] == ["results.json", "arrays.npz"]
    assert status(step) == "done" and run_step(step, log=lambda m: None)[1]  # skipped: intact
    if damage == "moved aside":
        (step.out / "results.json").rename(tmp_path / "results.json.aside")
    elif damage == "truncated archive":
        data = (step.out / "arrays.npz").read_bytes()
        (step.out / "arrays.npz").write_bytes(data[: len(data) // 2])
    else:
        (step.out / "results.json").write_text("[1, 2]")
    assert status(step) == "missing"
    lines = []
    assert not run_step(step, log=lines.append)[1]
    assert len(CALLS) == 2 and status(step) == "done" and "missing or damaged" in lines[0]
    assert (tmp_path / "r.damaged" / "step.json").is_file()  # the damaged result is kept, not deleted


@pytest.mark.slow
def test_failed_command_names_the_step_and_its_log(tmp_path):
    step = Step(
        "train/broken",
        "train",
        tmp_path / "broken",
        command=["blurnet_tf.cli.train", "--defence=nonsense", f"--out={tmp_path / 'x'}"],
    )
    with pytest.raises(StepFailed, match=r"train/broken failed .*log\.txt"):
        run_step(step, log=lambda m: None)
    assert "nonsense" in (step.out / "log.txt").read_text()


def test_full_plan_has_the_papers_budgets():
    plan = build_plan(PROFILES["full"], "runs/full")
    trained = {s.name.split("/")[1] for s in plan if s.stage == "train"}
    curve = {"mnist_defendpp_rw0.1", "mnist_defendpp_rw10", "mnist_defendpp_rw100"}
    single = set(TABLE2_ROWS) | {PD_ROW, DEFENDPP_ROW} | set(MNIST_ROWS) | set(PAPER_MNIST_ROWS) | curve
    assert trained == single | {f"{r}-seed{k}" for r in TABLE2_ROWS for k in (1, 2)}  # 3 seeds of Table II
    assert any(s.stage == "pixel_deflection" for s in plan)
    whitebox = [s for s in plan if s.stage == "whitebox"]
    first = [s for s in whitebox if "-seed" not in s.name]
    assert len(first) == len(TABLE2_ROWS) + 2  # + the original weights and Defend++
    assert len(whitebox) == len(first) + 2 * (len(TABLE2_ROWS) + 1)  # seeds 1, 2: Table II rows + original
    robustness = [s for s in plan if s.stage == "defendpp" and s.command and "_from_" not in s.name]
    assert {s.name.split("/")[1] for s in robustness} == set(MNIST_ROWS) | set(PAPER_MNIST_ROWS) | curve
    for s in robustness:  # Defend++'s MNIST budgets: BIM 100 iterations, C&W 5 x 20
        images = "--images=200" if s.name.split("/")[1] in PAPER_MNIST_ROWS else "--images=1000"
        assert {"--bim_steps=100", "--cw_search=5", "--cw_steps=20", images} <= set(s.command)
        attacks = (
            "clean,fgsm,bim" if s.name.split("/")[1] in curve else "clean,fgsm,bim,cw,ddn,fgsm_curve,strength_checks"
        )
        assert f"--attacks={attacks}" in s.command
    train = {s.name.split("/")[1]: s.command for s in plan if s.stage == "train"}
    for row in PAPER_MNIST_ROWS:  # ResNet-18: its flagfile (the paper's 250 epochs), 1 epoch here
        assert f"--flagfile=flags/models/{row}.flags" in train[row] and "--epochs=1" in train[row]
    for row in MNIST_ROWS + ("mnist_defendpp_rw10",):  # the small net on the same 60,000 / 10,000 split
        assert "--mnist_split=official" in train[row]
    assert "--reconstruction_weight=10" in train["mnist_defendpp_rw10"]
    transfer = {s.name: s for s in plan if "_from_" in s.name}
    step = transfer["defendpp/mnist_defendpp_resnet18_from_mnist_baseline"]
    assert "--source_model=runs/full/mnist/models/mnist_baseline" in step.command
    assert "--attacks=fgsm,bim,fgsm_curve" in step.command
    assert step.inputs[-1].as_posix() == "runs/full/mnist/models/mnist_baseline/model.keras"  # re-run on a new source
    recon = next(s for s in plan if s.name == "defendpp/reconstructions").experiment
    assert {pathlib.Path(p).name for _, p in recon.runs} >= {"mnist_defendpp_resnet18", "mnist_defendpp_rw0.1"}
    for s in whitebox:
        assert "--epochs=300" in s.command
        lambdas = "--lambdas=0.002,0.02,0.2" if s in first else "--lambdas=0.002"  # the sweep on the first seed
        assert lambdas in s.command and ("--seed=" in " ".join(s.command)) == (s not in first)
        assert not any(a.startswith("--targets=") for a in s.command)  # all 17 from the flagfile
    assert {s.name for s in plan if s.stage == "lowfreq"} >= {
        "lowfreq/conv_3/dct16",
        "lowfreq/conv_5/dct16",
        "lowfreq/conv_7/dct8",
        "lowfreq/conv_5/dct16-seed2",
    }
    assert "lowfreq/conv_7/dct8-seed1" not in {s.name for s in plan}  # Fig. 3's sweep: first seed only
    assert all("--epochs=300" in s.command for s in plan if s.stage == "lowfreq")
    assert {s.name for s in plan if s.stage == "adaptive_adv_train"} == {
        f"adaptive_adv_train/{r}{k}" for r in ("tv", "tik_hf", "tik_pseudo") for k in ("", "-seed1", "-seed2")
    }
    for s in plan:  # every flagfile a step names exists
        for a in s.command or []:
            if a.startswith("--flagfile="):
                assert (ROOT / a.split("=", 1)[1]).is_file(), a


def test_quick_plan_gives_the_slower_low_frequency_runs_their_own_budget():
    """The DCT-restricted RP2 still gains at epoch 80 where the white-box one is flat from epoch 20
    (measured; docs/reproduction.md), so the quick profile cuts only the latter."""
    plan = build_plan(PROFILES["quick"], "runs/quick")
    epochs = {}
    for s in plan:
        if s.stage in ("whitebox", "accuracy_curve", "adaptive", "adaptive_adv_train", "lowfreq"):
            epochs.setdefault(s.stage, set()).update(a for a in s.command if a.startswith("--epochs="))
    assert epochs == {
        "whitebox": {"--epochs=20"},
        "accuracy_curve": {"--epochs=20"},
        "adaptive": {"--epochs=20"},
        "lowfreq": {"--epochs=80"},
    }


def test_table2_plan_trains_every_table2_row_under_three_seeds_at_the_papers_lambda():
    plan = build_plan(PROFILES["table2"], "runs/table2")
    train = {s.name.split("/")[1]: s.command for s in plan if s.stage == "train"}
    assert set(train) == {f"{r}{k}" for r in TABLE2_ROWS for k in ("", "-seed1", "-seed2")}
    assert all("--epochs=10" in c for c in train.values())
    whitebox = [s.command for s in plan if s.stage == "whitebox"]
    assert len(whitebox) == 3 * (len(TABLE2_ROWS) + 1)  # + the original weights under each noise seed
    assert all({"--epochs=30", "--lambdas=0.002"} <= set(c) for c in whitebox)
    snapshots = {s.name for s in plan if s.stage == "accuracy_curve"}  # seed 0's weights along training
    assert snapshots == {f"accuracy_curve/{r}/epoch{e}" for r in TABLE2_ROWS for e in (1, 2, 3, 5)}
    assert all("--snapshot_epochs=1,2,3,5" in train[r] for r in TABLE2_ROWS)


def test_mnist_plan_is_the_full_plans_small_defendpp_steps_and_nothing_of_lisa():
    full = {s.name: s for s in build_plan(PROFILES["full"], "runs/w")}
    plan = build_plan(PROFILES["mnist"], "runs/w")
    assert {s.stage for s in plan} == {"train", "defendpp"}
    assert not [s for s in plan if "resnet18" in s.name or s.name.startswith("train/") and "mnist_" not in s.name]
    # step for step the full profile's (same command, same output), so its runs stand in for those steps
    assert all(
        s.command == full[s.name].command and s.out == full[s.name].out
        for s in plan
        if s.name != "defendpp/reconstructions"
    )
    small = {name for name in full if name.startswith(("train/mnist_", "defendpp/mnist_")) and "resnet18" not in name}
    assert {s.name for s in plan} == small | {"defendpp/reconstructions"}
    assert {s.name for s in plan if s.stage == "train"} >= {
        f"train/mnist_{r}" for r in ("baseline", "defendpp", "defendpp_rw0.1", "defendpp_rw10", "defendpp_rw100")
    }


@pytest.mark.slow
def test_a_profile_without_lisa_rows_reports_what_it_ran_and_leaves_the_lisa_sections_not_run(tmp_path):
    # --report_only needs one finished step (a mistyped --work_dir is refused, not reported empty): the first
    # step of the plan is marked finished with no records.
    first = build_plan(PROFILES["mnist"], tmp_path / "w")[0]
    first.out.mkdir(parents=True)
    (first.out / "step.json").write_text(
        json.dumps({"key": step_key(first), "name": first.name, "seconds": 0.0, "records": []})
    )
    run_python(
        "-m",
        "blurnet_tf.cli.reproduce",
        "--profile=mnist",
        "--report_only",
        f"--work_dir={tmp_path / 'w'}",
        f"--results_dir={tmp_path / 'r'}",
    )
    report = (tmp_path / "r" / "mnist" / "REPORT.md").read_text()
    assert "Budgets: no LISA rows in this profile; MNIST (Defend++): mnist_baseline, " in report
    for title in ("Table II: white-box RP2 (rectangle stickers, 17 targets)", "Seeds and 95% intervals (Tables II-V)"):
        assert f"## {title}\n\n_not run in this profile_" in report


def _rows(p, seeds=2, targets=17, victims=40, seed=0):
    """{seed: {"success": [targets, victims], "l2": [...]}} with success probability p per target."""
    rng = np.random.default_rng(seed)
    p = np.broadcast_to(np.asarray(p, float), (targets,))
    return {
        s: {"success": (rng.random((targets, victims)) < p[:, None]).astype(int).tolist(), "l2": [0.2] * targets}
        for s in range(seeds)
    }


def _seeds(whitebox=None, pgd=None, lowfreq=None, transfer=None):
    return {
        "seeds": [0, 1],
        "models": {},
        "whitebox": whitebox or {},
        "pgd": pgd or {},
        "lowfreq": lowfreq or {},
        "adaptive": {},
        "adaptive_adv_train": {},
        "transfer": transfer or {},
    }


def test_claims_are_paired_tests_with_three_verdicts():
    from blurnet_tf.reports.seed_statistics import claims

    verdict = lambda data, i: claims(data)[i][1]  # noqa: E731
    low, high = 0.05, 0.8
    clear = {
        "tv_1e-4": _rows(low, seed=1),
        "tik_hf": _rows(low, seed=2),
        "baseline": _rows(high, seed=3),
        "conv_7": _rows(high, seed=4),
    }
    assert verdict(_seeds(whitebox=clear), 2) == "held"
    assert verdict(_seeds(whitebox={**clear, "conv_7": _rows(0.0, seed=4)}), 2) == "not held"
    same = {r: _rows(0.3, seed=i) for i, r in enumerate(("tv_1e-4", "tik_hf", "baseline"))}
    assert verdict(_seeds(whitebox=same), 2) == "inconclusive"
    assert verdict(_seeds(whitebox={"tv_1e-4": _rows(low)}), 2) == "not measured"
    ones = {s: {"success": [[1] * 40]} for s in range(2)}
    zeros = {s: {"success": [[0] * 40]} for s in range(2)}
    assert verdict(_seeds(pgd={"a": ones, "b": ones}), 3) == "held"
    assert verdict(_seeds(pgd={"a": ones, "b": zeros}), 3) == "not held"
    wb = {r: _rows(0.3, seed=i) for i, r in enumerate(("conv_5", "conv_7"))}
    lf = {"conv_5": _rows(0.95, seed=7), "conv_7": _rows(0.35, seed=8)}
    assert verdict(_seeds(whitebox=wb, lowfreq=lf), 4) == "held"
    assert verdict(_seeds(whitebox=wb, lowfreq={"conv_5": lf["conv_7"], "conv_7": lf["conv_5"]}), 4) == "not held"
    t = {
        "baseline": {
            s: {"input_blur_3": {"success": r["success"]}, "l1_blur_3": {"success": q["success"]}}
            for (s, r), q in zip(_rows(0.6, seed=9).items(), _rows(0.1, seed=10).values())
        }
    }
    assert verdict(_seeds(transfer=t), 0) == "held"


def test_the_blurnet_claim_judges_each_defence_against_the_baseline_on_shared_seeds():
    from blurnet_tf.reports.seed_statistics import claims

    def row(rate, seeds=(0, 1, 2)):  # every target and victim attacked with probability 0 or 1
        return {s: {"success": np.full((17, 40), rate).tolist(), "l2": [0.2] * 17} for s in seeds}

    data = {
        "transfer": {},
        "pgd": {},
        "lowfreq": {},
        "whitebox": {
            "baseline": row(1.0),
            "conv_7": row(0.0),
            "tv_1e-4": row(1.0, seeds=(1, 2)),
            "gaussian_aug_0.1": row(0.0),
        },
    }
    claim, verdict_, evidence = next(c for c in claims(data) if c[0].startswith("BlurNet's defences"))
    # conv_7 is never attacked: exactly -100 points; TV equals the baseline on the seeds both have: 0.
    assert "conv_7 − baseline: -100.0 pt [-100.0, -100.0] (paper -37.6)" in evidence
    assert "tv_1e-4 − baseline: +0.0 pt [+0.0, +0.0] (paper -41.3)" in evidence
    assert "gaussian" not in evidence and verdict_ == "inconclusive"
    data["whitebox"]["baseline"] = row(0.0)
    data["whitebox"]["conv_7"] = row(1.0)
    assert next(c for c in claims(data) if c[0].startswith("BlurNet's defences"))[1] == "not held"


def test_the_worst_case_claim_picks_the_tv_row_by_worst_asr_and_judges_worst_not_average_asr():
    from blurnet_tf.reports.seed_statistics import claims

    def worst_claim(wb):
        return next(c for c in claims(_seeds(whitebox=wb)) if c[0].startswith("TV and Tik_hf"))

    spiky = [0.0] * 16 + [1.0]  # the lowest average ASR (1/17) but one target always falls: worst 100%
    wb = {
        "tv_1e-4": _rows(0.1, seed=1),
        "tv_1e-5": _rows(spiky, seed=2),
        "tik_hf": _rows(0.1, seed=3),
        "baseline": _rows(0.5, seed=4),
    }
    _, verdict_, evidence = worst_claim(wb)
    assert verdict_ == "held" and "tv_1e-4 − baseline" in evidence and "tv_1e-5 −" not in evidence
    # tik_hf attacked less on average than the baseline (5/17), but 5 targets always fall: worst 100%
    # (5, not 1: a resample of the targets misses all 5 with p = (12/17)^17 < 0.3%).
    _, verdict_, evidence = worst_claim({**wb, "tik_hf": _rows([1.0] * 5 + [0.0] * 12, seed=3)})
    assert verdict_ == "not held" and "tik_hf − baseline: +" in evidence


def test_the_pgd_claim_reads_its_90_percent_floor_inclusively_and_a_straddling_interval_is_inconclusive():
    from blurnet_tf.reports.seed_statistics import at_least, claims

    assert at_least(0.9, 0.95, 0.9) == "held" and at_least(0.8, 0.9, 0.9) == "inconclusive"
    assert at_least(0.8, 0.89, 0.9) == "not held"
    nine_in_ten = {s: {"success": [[1] * 36 + [0] * 4]} for s in range(2)}  # 90% on 40 victims: about ±10 points
    assert claims(_seeds(pgd={"a": nine_in_ten}))[3][1] == "inconclusive"


def test_row_intervals_give_each_metric_its_own_statistic():
    from blurnet_tf.reports.seed_statistics import row_intervals

    five = _rows([1.0] * 5 + [0.0] * 12)  # 5 of 17 targets always fall, the rest never; L2 0.2 everywhere
    iv = row_intervals(_seeds(whitebox={"tv_1e-4": five}))["whitebox"]["tv_1e-4"]
    assert iv["avg_asr"]["mean"] == pytest.approx(5 / 17)
    assert iv["worst_asr"]["mean"] == 1.0 and iv["worst_asr"]["hi"] == 1.0
    assert iv["l2"] == pytest.approx({"mean": 0.2, "lo": 0.2, "hi": 0.2, "seeds": 2})


def test_differences_over_ten_points_are_flagged():
    flags = []
    assert report_format.diff_from_paper(0.5, 0.45, flags, "small") == "+5.0"
    assert report_format.diff_from_paper(0.1, 0.3, flags, "large") == "**-20.0**"
    assert flags == ["large: ours 10.0%, paper 30.0% (-20.0 pt)"]


def test_spectrum_helpers_on_hand_made_maps():
    from blurnet_tf.evaluation.spectra import high_frequency_fraction, log_spectrum

    flat = np.ones((8, 8))
    spec = log_spectrum(flat)
    assert spec[4, 4] == 1.0 and spec.sum() == 1.0  # all energy at the centred DC term
    assert high_frequency_fraction(flat) == 0.0
    checker = np.indices((8, 8)).sum(axis=0) % 2 * 2.0 - 1.0  # the highest frequency, zero mean
    assert high_frequency_fraction(checker) == pytest.approx(1.0)


def test_defendpp_transfer_and_strength_claims_read_their_records():
    from blurnet_tf.reports import defendpp_evidence, defendpp_section

    def res(**acc):
        return {"images": 10, "budget": {}, "results": {a: {"accuracy": v} for a, v in acc.items()}}

    checks = {
        "passed": False,
        "zero_gradient_fraction": 1.0,
        "unbounded_success": 0.0,
        "bim_eps": [0.1],
        "bim_accuracies": [0.9],
        "monotone": True,
        "accuracy": 0.9,
    }
    dpp = {
        "models": {},
        "reconstructions": {},
        "robustness": {"mnist_baseline": res(fgsm=0.3, bim=0.0), "mnist_defendpp": res(fgsm=0.5, bim=0.1)},
        "transfer": {
            "a": {**res(fgsm=0.6), "source": "net", "target": "mnist_defendpp"},
            "b": {**res(fgsm=0.7), "source": "net", "target": "mnist_baseline"},
            "c": {**res(fgsm=0.9), "source": "other", "target": "mnist_defendpp"},
        },
    }  # no baseline pair
    dpp["robustness"]["mnist_defendpp"]["results"]["strength_checks"] = checks
    assert defendpp_evidence._transfer_pairs(dpp) == [("net", 0.6, 0.7)]
    verdicts = {c[:40]: v for c, v, _ in defendpp_section.claims({"defendpp": dpp})}
    assert verdicts["Under FGSM made on another network, Defe"] == "not held"  # 60% < 70%
    assert verdicts["The attacks are not weakened by Defend++"] == "not held"
    table = "\n".join(defendpp_evidence._transfer_table(dpp))
    assert "| mnist_defendpp | net | 60.0 | 50.0 |" in table  # transferred beside white-box


def test_matched_accuracy_reads_each_row_nearest_the_papers_accuracy():
    from blurnet_tf.reports import accuracy_curve

    def point(epoch, legit, asr):  # 17 targets x 40 victims, `asr` of each target's victims attacked
        hit = round(asr * 40)
        return {
            "epoch": epoch,
            "legit_accuracy": legit,
            "avg_asr": asr,
            "worst_asr": asr,
            "success": [[1] * hit + [0] * (40 - hit)] * 17,
        }

    curves = {
        "baseline": [point(1, 0.65, 0.9), point(2, 0.86, 0.6), point(30, 0.99, 0.3)],
        "tv_1e-4": [point(1, 0.70, 0.5), point(2, 0.85, 0.1), point(30, 0.98, 0.05)],
    }
    assert accuracy_curve.nearest(curves["tv_1e-4"], 0.856)["epoch"] == 2  # the paper's 85.6%
    ((claim, verdict, evidence),) = accuracy_curve.claims(curves)
    assert verdict == "held" and "tv_1e-4 at 85.0% − baseline at 86.0%: -50.0 pt" in evidence
    curves["tv_1e-4"][1] = point(2, 0.85, 0.75)  # worse than the baseline at equal accuracy
    assert accuracy_curve.claims(curves)[0][1] == "not held"
    table = accuracy_curve.section(curves)
    assert "| tv_1e-4 | 85.6 | 2 | 85.0 | 75.0 [" in table and "| 7.9 | 75.0 | 17.5 |" in table


def test_stage_times_count_the_plans_steps_not_superseded_folders(tmp_path):
    for name, seconds in (("a", 10.0), ("a.superseded-0123", 100.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "step.json").write_text(json.dumps({"name": "train/a", "seconds": seconds}))
    meta = report_writer.metadata(PROFILES["smoke"], tmp_path, 0.0, {}, [tmp_path / "a"])
    assert meta["stage_seconds"] == {"train": 10.0} and meta["total_step_seconds"] == 10.0


def test_report_only_keeps_a_report_of_more_steps_or_more_seeds(tmp_path):
    from blurnet_tf.errors import DataError
    from blurnet_tf.reports import flat_records
    from blurnet_tf.reports.results_dirs import keep_a_fuller_report

    results = tmp_path / "results" / "quick"
    done, missing = (Step(f"probe/{n}", "probe", tmp_path / n, experiment=Counted(x=i)) for i, n in enumerate("ab"))
    run_step(done, log=lambda m: None)
    unfinished = [s.name for s in (done, missing) if status(s) != "done"]
    assert unfinished == ["probe/b"]
    keep_a_fuller_report(results, unfinished, 2, tmp_path, (0, 1))  # no report yet: nothing to keep
    b = flat_records.RecordBuilder("abc", False)
    for seed in (0, 1):
        b.add("models", "baseline", "legit_accuracy", 0.9, seed)
    flat_records.write(results, b.rows, "abc", False)
    with pytest.raises(DataError, match=r"lacking 1 of 2 steps not finished in .* \(e\.g\. probe/b\)"):
        keep_a_fuller_report(results, unfinished, 2, tmp_path, (0, 1))
    with pytest.raises(DataError, match=r"holds a report of seeds \[0, 1\]; --report_only with seeds \[0\]"):
        keep_a_fuller_report(results, [], 1, tmp_path, (0,))
    keep_a_fuller_report(results, [], 1, tmp_path, (0, 1))  # every step and seed: rewritten
