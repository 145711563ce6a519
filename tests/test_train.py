"""Training: the baseline recipe, resume after a kill, metrics.json, MirroredStrategy."""

import json
import signal
import subprocess
import sys
import time

import numpy as np

from conftest import ROOT, run_python

TRAIN = ("-m", "blurnet_tf.cli.train", "--flagfile=flags/models/baseline.flags")


def test_baseline_recipe_reaches_the_papers_accuracy_quickly(tmp_path):
    """Five epochs of the baseline recipe already pass the paper's 91% on held-out tracks."""
    run_python(*TRAIN, f"--out={tmp_path}", "--epochs=5", "--checkpoint_every=5")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["legit_accuracy"] >= 0.91
    assert metrics["victims_correct"] == 40
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4, 5]
    assert metrics["split"]["test_images"] == metrics["test_images"]
    for key in ("per_class_accuracy", "flags", "data_hash", "versions", "wall_seconds"):
        assert key in metrics
    assert (tmp_path / "model.keras").is_file() and list((tmp_path / "tensorboard").rglob("*"))


def test_killed_training_resumes_without_losing_or_repeating_epochs(tmp_path):
    args = (*TRAIN, "--epochs=6", "--checkpoint_every=1", "--max_train_images=800")
    whole = tmp_path / "whole"
    run_python(*args, f"--out={whole}")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *args, f"--out={killed}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    done_before = json.loads(state.read_text())["epochs_done"]
    assert 3 <= done_before < 6
    out = run_python(*args, f"--out={killed}")
    assert f"resuming from {killed / 'checkpoint'} after epoch {done_before}" in out.stdout
    resumed = json.loads((killed / "metrics.json").read_text())
    uninterrupted = json.loads((whole / "metrics.json").read_text())
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4, 5, 6]
    assert resumed["training"]["resumed_from_epoch"] == done_before
    # The recorded training time covers the epochs before the kill too.
    assert resumed["training"]["train_seconds_total"] > resumed["training"]["train_seconds_this_run"]
    assert abs(resumed["legit_accuracy"] - uninterrupted["legit_accuracy"]) <= 0.03
    # The epochs before the kill are the same computation in both runs.
    np.testing.assert_allclose([h["loss"] for h in resumed["history"][:done_before]],
                               [h["loss"] for h in uninterrupted["history"][:done_before]], rtol=1e-4)


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from blurnet_tf.registry import build_model
from blurnet_tf.experiments.model_training import make_strategy, train
strategy = make_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
rng = np.random.default_rng(0)
x = rng.random((256, 32, 32, 3), dtype=np.float32)
y = (x[:, :16].mean(axis=(1, 2, 3)) > x[:, 16:].mean(axis=(1, 2, 3))).astype(np.int32)
model, history, _ = train(lambda: build_model("baseline"), (x, y), r"{tmp_path}", epochs=8,
                          batch_size=64, strategy="mirrored", verbose=0)
assert history[-1]["loss"] < history[0]["loss"], history
print("replicas", strategy.num_replicas_in_sync)
"""
    out = run_python("-c", script)
    assert "replicas 2" in out.stdout
