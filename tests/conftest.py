import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests never touch the user's cache."""
    os.environ["BLURNET_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def data_dir():
    from blurnet_tf.data import find_data_dir

    return find_data_dir(download=False)


@pytest.fixture(scope="session")
def lisa_split(data_dir):
    from blurnet_tf.data import load_lisa_split

    return load_lisa_split(data_dir)


@pytest.fixture(scope="session")
def victims(data_dir):
    from blurnet_tf.data import load_victims

    return load_victims(data_dir)[0]


@pytest.fixture(scope="session")
def original_model(data_dir):
    from blurnet_tf.models import load_original_lisa_cnn

    return load_original_lisa_cnn(data_dir)


def linear_classifier_case(seed=0, n=8):
    """(model, x, labels, minimal): a 2-class linear classifier on 4x4 images near 0.5, far from
    the box edges, and each image's smallest L2 perturbation to the boundary,
    |margin| / ||w_0 - w_1|| (the analytic reference for the minimum-norm attacks)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    w = rng.normal(size=(16, 2)).astype(np.float32)
    model.layers[-1].set_weights([w, np.zeros(2, np.float32)])
    x = (0.5 + 0.02 * rng.normal(size=(n, 4, 4, 1))).astype(np.float32)
    logits = model(x).numpy()
    minimal = np.abs(logits[:, 0] - logits[:, 1]) / np.linalg.norm(w[:, 0] - w[:, 1])
    return model, x, logits.argmax(axis=1), minimal


def run_python(*args, env=None, timeout=600, check=True):
    """Runs `python args...` in a fresh process from the repository root."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
