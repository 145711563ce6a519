"""Resumable experiment steps: each step writes one directory and is skipped when done.

A step is a command line of one of our binaries (what a user would type to run that experiment
alone) or an in-process function. Its key hashes the command, the content of the flagfiles it
reads and the files it depends on (e.g. the trained model), so a changed setting or a retrained
model re-runs exactly the steps that depend on it. The binaries resume themselves (training
checkpoints, finished target groups), so a step killed half-way loses at most one chunk.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

from blurnet_tf import files
from blurnet_tf.errors import StepFailed

DONE = "step.json"
PENDING = "step.pending.json"


@dataclasses.dataclass
class Step:
    name: str                     # e.g. "whitebox/tv_1e-4"
    stage: str                    # e.g. "train", "whitebox"
    out: pathlib.Path             # the directory the step fills
    command: list = None          # argv after `python -m`, e.g. ["blurnet_tf.cli.train", "--flagfile=..."]
    function: object = None       # or fn(out) run in-process
    params: dict = dataclasses.field(default_factory=dict)  # what else defines the result
    inputs: list = dataclasses.field(default_factory=list)  # files whose content the result depends on


def _file_digest(path):
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _name_of(function):
    if function is None:
        return None
    return getattr(function, "__qualname__", type(function).__qualname__)


def step_key(step):
    flagfiles = [a.split("=", 1)[1] for a in step.command or [] if a.startswith("--flagfile=")]
    payload = {"command": step.command, "function": _name_of(step.function),
               "params": step.params, "flagfiles": {f: _file_digest(f) for f in flagfiles},
               "inputs": {os.fspath(p): _file_digest(p) for p in step.inputs}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_done(step):
    done = step.out / DONE
    return done.is_file() and json.loads(done.read_text()).get("key") == step_key(step)


def run_step(step, log=print):
    """Runs one step unless done; returns (seconds, skipped)."""
    key = step_key(step)
    if is_done(step):
        return json.loads((step.out / DONE).read_text())["seconds"], True
    pending = step.out / PENDING
    if (step.out / DONE).is_file():
        # A finished result under other settings (or another work-dir path) is kept, not deleted.
        old = step.out.with_name(f"{step.out.name}.superseded-{json.loads((step.out / DONE).read_text())['key']}")
        shutil.rmtree(old, ignore_errors=True)
        step.out.rename(old)
        log(f"      {step.name}: finished under other settings; kept as {old}")
    elif step.out.exists() and not (pending.is_file() and json.loads(pending.read_text()).get("key") == key):
        shutil.rmtree(step.out)  # partial state written under other settings is not ours to resume
    files.write_json(files.ensure_dir(step.out) / PENDING, {"key": key})
    started = time.time()
    if step.command:
        _run_command(step, log)
    else:
        step.function(step.out)
    seconds = time.time() - started
    files.write_json(step.out / DONE, {"key": key, "name": step.name, "command": step.command,
                                    "params": step.params, "seconds": seconds,
                                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    pending.unlink()
    return seconds, False


def _run_command(step, log):
    """Runs `python -m ...`, echoing its progress lines; the full output goes to out/log.txt."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           "PYTHONUNBUFFERED": "1"}
    with open(step.out / "log.txt", "a") as logfile:
        proc = subprocess.Popen([sys.executable, "-m", *step.command], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=_die_with_parent)
        tail = []
        for line in proc.stdout:
            logfile.write(line)
            logfile.flush()  # readable while the step runs
            tail = (tail + [line.rstrip()])[-15:]
            if _is_progress(line):
                log(f"      {line.rstrip()}")
        if proc.wait() != 0:
            raise StepFailed(f"step {step.name} failed (exit {proc.returncode}); last lines of "
                             f"{step.out / 'log.txt'}:\n" + "\n".join(tail))


def _die_with_parent():
    """Linux: the step's process is killed with the runner, so a killed run leaves no writer behind."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _is_progress(line):
    return line.startswith(("Epoch ", "targets ", "lambda=", "best_lambda", "PGD ", "legit accuracy", "resuming"))


def run_all(steps, log=print):
    """Runs the steps in order with a progress line per step and returns per-stage seconds."""
    stage_seconds, total = {}, len(steps)
    for i, step in enumerate(steps, 1):
        if not is_done(step):
            log(f"[{i}/{total}] {step.stage}: {step.name} ...")
        seconds, skipped = run_step(step, log)
        stage_seconds.setdefault(step.stage, 0.0)
        if not skipped:
            stage_seconds[step.stage] += seconds
        log(f"[{i}/{total}] {step.stage}: {step.name} "
            f"{'done earlier, skipped' if skipped else f'done in {seconds:.1f}s'}")
    return stage_seconds
