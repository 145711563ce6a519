import os
import pathlib
import re
import signal
import subprocess
import sys
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests never touch the user's cache, nor ~/.ray: every Ray instance a test starts uses a token of
    the session (Ray would write one to ~/.ray/auth_token) and reports nothing home."""
    import secrets

    os.environ["BLURNET_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if "RAY_AUTH_TOKEN" not in os.environ:
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))


@pytest.fixture(scope="session", autouse=True)
def _start_smoke_run_first(request, _isolated_cache):
    """Starts the smoke reproduction with the session's first test when any selected test reads it:
    it runs beside the in-process tests, which leave the second core idle most of the time."""
    if any("smoke_run" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("smoke_run")


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
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def probe_step(tmp_path, name, *args, inputs=()):
    """A command step running tests/step_probe.py (the `probes` fixture puts it on the path)."""
    from blurnet_tf.pipeline.steps import Step

    out = tmp_path / name
    return Step(f"probe/{name}", "probe", out, command=["step_probe", f"--out={out}", *args], inputs=list(inputs))


def ran(step):
    """What a probe step recorded of its run (ran.json)."""
    import json

    return json.loads((step.out / "ran.json").read_text())


@pytest.fixture
def probes(monkeypatch):
    """`python -m step_probe` importable, and no thread variable of the user's in the way."""
    from blurnet_tf.pipeline.step_process import THREAD_VARIABLES

    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests"))
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def ray_token_env():
    """A Ray token of one test's own: every process of the local Ray instance a runner started under it
    carries it, so the test can find and stop by process id what a killed runner leaves behind."""
    import secrets

    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}


def stop_ray_leftovers(env):
    """Kills (by pid) the processes whose environment holds `env`'s Ray token: Ray's agents outlive a
    SIGKILLed driver (Ray 2.60). Returns how many there were."""
    marker = f"RAY_AUTH_TOKEN={env['RAY_AUTH_TOKEN']}".encode()
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            continue
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(found)


class SmokeRun:
    """`reproduce --profile=smoke --jobs=2` in the background, SIGKILLed once `kill_after` steps have
    finished and then run again to the end (the resume). `result()` waits for both runs."""

    def __init__(self, root, data_dir, kill_after=13):
        self.work, self.results = root / "work", root / "results"
        self.command = [
            sys.executable,
            "-m",
            "blurnet_tf.cli.reproduce",
            "--profile=smoke",
            "--jobs=2",
            f"--work_dir={self.work}",
            f"--results_dir={self.results}",
            f"--data_dir={data_dir}",
        ]
        self.kill_after, self.finished_before_kill = kill_after, []
        self.killed_output, self.resumed, self.error = "", None, None
        self._proc, self._stopping, self.ray_env = None, False, ray_token_env()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _start(self):
        if self._stopping:
            raise RuntimeError("the session ended before the smoke run started")
        self._proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **self.ray_env},
        )
        return self._proc

    def _run(self):
        try:
            proc, lines = self._start(), []
            for line in proc.stdout:
                lines.append(line)
                done = re.match(r"\[\d+/\d+\] \S+: (\S+) done in", line)
                if done:
                    self.finished_before_kill.append(done.group(1))
                if len(self.finished_before_kill) == self.kill_after:
                    proc.send_signal(signal.SIGKILL)
                    break
            proc.wait()
            proc.stdout.close()
            stop_ray_leftovers(self.ray_env)
            self.killed_output = "".join(lines)
            proc = self._start()
            out, _ = proc.communicate()
            self.resumed = subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
        except BaseException as exc:  # re-raised by result() in the test that asks
            self.error = exc

    def result(self, timeout=3600):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the smoke reproduction did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        return self

    def stop(self):
        self._stopping = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()  # its step processes die with it (PR_SET_PDEATHSIG)
        self._thread.join(60)
        stop_ray_leftovers(self.ray_env)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_dir):
    """Every stage of the pipeline on the real data at smoke budgets, killed after 13 steps and resumed;
    shared by the tests that read its outputs (test_reproduce_smoke.py)."""
    run = SmokeRun(tmp_path_factory.mktemp("smoke"), data_dir)
    yield run
    run.stop()
