"""The Ray executor's scheduling on one local Ray instance shared by this module's tests (run_all joins a
Ray already started in its process instead of starting one per call: one start, not six). The places are
the instance's CPUs, CPUS_PER_STEP each, as `--jobs=2` gives on two cores. What needs an instance of its own
(the default one place of every core, fake GPUs, a runner that is killed) is in test_pipeline.py."""

import json
import os

import pytest

from blurnet_tf.errors import StepFailed
from blurnet_tf.pipeline.ray_executor import run_all, step_threads
from blurnet_tf.pipeline.steps import Step, is_done
from conftest import ROOT, probe_step, ran

from probe_experiments import BadData, Timed

PLACES = 2
CPUS_PER_STEP = max(1, len(os.sched_getaffinity(0)) // PLACES)


@pytest.fixture(scope="module", autouse=True)
def shared_ray():
    """One local Ray instance of PLACES x CPUS_PER_STEP CPUs for the module; its workers start command steps
    with tests/ on the path (`python -m step_probe`), which they inherit from this process at start."""
    import shutil
    import tempfile

    import ray

    from blurnet_tf.pipeline.ray_executor import OBJECT_STORE

    # As run_all starts its own instance: a token of this session (conftest), no usage report, a small
    # object store and a temp dir of its own (removed after).
    assert os.environ.get("RAY_AUTH_TOKEN")
    old, temp = os.environ.get("PYTHONPATH"), tempfile.mkdtemp(prefix="blurnet-ray-")
    os.environ["PYTHONPATH"] = str(ROOT / "tests")
    try:
        ray.init(
            address="local",
            num_cpus=PLACES * CPUS_PER_STEP,
            num_gpus=0,
            object_store_memory=OBJECT_STORE,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            _temp_dir=temp,
        )
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def test_in_process_experiments_run_side_by_side_in_their_own_workers(tmp_path):
    """Each step is a Ray task: two in-process experiments take the two places at once."""
    steps = [Step(f"probe/e{i}", "probe", tmp_path / f"e{i}", experiment=Timed(sleep=3)) for i in range(2)]
    run_all(steps, log=lambda m: None, cpus_per_step=CPUS_PER_STEP)
    assert ran(steps[1])["start"] < ran(steps[0])["end"] and ran(steps[0])["start"] < ran(steps[1])["end"]
    assert ran(steps[0])["pid"] != ran(steps[1])["pid"] != os.getpid()


def test_two_jobs_overlap_independent_steps_and_wait_for_inputs(tmp_path, probes):
    slow = probe_step(tmp_path, "slow", "--sleep=3")
    after = probe_step(tmp_path, "after", inputs=[tmp_path / "slow" / "ran.json"])  # reads what `slow` writes
    free = probe_step(tmp_path, "free", "--sleep=1")
    inproc = Step("probe/inproc", "probe", tmp_path / "inproc", experiment=Timed(sleep=0.5))
    seconds = run_all([slow, after, free, inproc], log=lambda m: None, cpus_per_step=CPUS_PER_STEP)
    assert ran(free)["start"] < ran(slow)["end"]  # ran beside `slow`, though planned after `after`
    assert ran(inproc)["start"] < ran(slow)["end"]
    assert ran(after)["start"] >= ran(slow)["end"]
    threads = step_threads(CPUS_PER_STEP)
    assert ran(free)["intra_op_threads"] == threads["TF_NUM_INTRAOP_THREADS"]
    assert ran(free)["gpu_growth"] == "true"  # two steps share a GPU instead of the first taking all of it
    for step in (free, inproc):  # commands and in-process experiments alike: their threads and their node
        record = json.loads((step.out / "step.json").read_text())
        assert record["threads"] == threads and record["placement"]["resources"]["CPU"] == float(
            threads["TF_NUM_INTRAOP_THREADS"]
        )
        assert record["placement"]["node_id"] and record["placement"]["gpu_ids"] == []
    assert set(seconds) == {"probe"} and seconds["probe"] >= 4.5
    assert all(is_done(s) for s in (slow, after, free, inproc))


def test_an_in_process_step_s_own_error_reaches_the_runner_as_itself(tmp_path):
    """The step's DataError crosses the process boundary intact (the binaries print it as one line)."""
    from blurnet_tf.errors import DataError

    with pytest.raises(DataError, match="^victims.npz: expected 40 victims$"):
        run_all([Step("probe/bad", "probe", tmp_path / "bad", experiment=BadData())], log=lambda m: None)


def test_a_step_no_node_can_hold_is_refused_instead_of_waiting_for_ever(tmp_path):
    from blurnet_tf.errors import SettingError

    with pytest.raises(SettingError, match=r"^--gpus_per_step: a step asks for 1 GPUs, the largest Ray node has 0$"):
        run_all([Step("probe/t", "probe", tmp_path / "t", experiment=Timed())], log=lambda m: None, gpus_per_step=1)


def test_a_node_that_cannot_see_the_run_directory_is_named():
    import ray

    from blurnet_tf.pipeline.ray_nodes import nodes_not_seeing

    assert nodes_not_seeing("/nonexistent/token") == [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]


def test_after_a_failure_no_new_step_starts_and_the_running_one_finishes(tmp_path, probes):
    steps = [
        probe_step(tmp_path, "fails", "--fail"),
        probe_step(tmp_path, "running", "--sleep=4"),
        probe_step(tmp_path, "later"),
    ]
    lines = []
    with pytest.raises(StepFailed, match="probe/fails"):
        run_all(steps, log=lines.append, cpus_per_step=CPUS_PER_STEP)
    assert is_done(steps[1]) and not (steps[2].out / "ran.json").exists()
    assert any(line.startswith("stopping: probe/fails failed") and "probe/running" in line for line in lines)
