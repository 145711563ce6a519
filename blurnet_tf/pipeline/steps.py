"""Resumable experiment steps: each step writes one directory and is skipped when done.

A step is a command line of one of our binaries (what a user would type to run that experiment
alone) or an experiment run in-process (a settings dataclass with `run(out)`). Its key hashes the
command and the content of the flagfiles it reads, or every field of the experiment, plus the
files it depends on (e.g. the trained model): a changed setting or a retrained model re-runs
exactly the steps that depend on it, and no setting can be left out of the key by hand. The
binaries resume themselves (training checkpoints, finished target groups), so a step killed
half-way loses at most one chunk.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading
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
    experiment: object = None     # or a settings dataclass whose run(out) is called in-process
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


def step_key(step):
    flagfiles = [a.split("=", 1)[1] for a in step.command or [] if a.startswith("--flagfile=")]
    experiment = None if step.experiment is None else {
        "type": type(step.experiment).__qualname__, "settings": dataclasses.asdict(step.experiment)}
    payload = {"command": step.command, "experiment": experiment,
               "flagfiles": {f: _file_digest(f) for f in flagfiles},
               "inputs": {os.fspath(p): _file_digest(p) for p in step.inputs}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _marker(path):
    """A step marker's contents; a torn or corrupt marker reads as absent (the step re-runs)."""
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def is_done(step):
    done = _marker(step.out / DONE)
    return done is not None and done.get("key") == step_key(step)


def status(step):
    """'done', 'stale' (finished under other settings or inputs) or 'missing'."""
    done = _marker(step.out / DONE)
    return "missing" if done is None else ("done" if done.get("key") == step_key(step) else "stale")


def run_step(step, log=print, env=None):
    """Runs one step unless done; returns (seconds, skipped). `env`: extra environment of a command."""
    key = step_key(step)
    done, pending = _marker(step.out / DONE), _marker(step.out / PENDING)
    if done is not None and done.get("key") == key:
        return done["seconds"], True
    if done is not None:
        # A finished result under other settings (or another work-dir path) is kept, not deleted.
        old = _free_name(step.out, f"superseded-{done.get('key')}")
        step.out.rename(old)
        log(f"      {step.name}: finished under other settings; kept as {old}")
    elif step.out.exists() and (pending is None or pending.get("key") != key):
        if pending is not None:
            shutil.rmtree(step.out)  # our own partial work under other settings: not resumable
        else:  # not written by a step: never ours to delete
            old = _free_name(step.out, "not-a-step")
            step.out.rename(old)
            log(f"      {step.name}: {step.out} was not written by this pipeline; moved to {old}")
    files.write_json(files.ensure_dir(step.out) / PENDING, {"key": key})
    started = time.time()
    if step.command:
        threads = _run_command(step, log, env or {})
    else:
        step.experiment.run(step.out)
        threads = "in-process"  # the runner's own TensorFlow threads
    seconds = time.time() - started
    settings = None if step.experiment is None else dataclasses.asdict(step.experiment)
    files.write_json(step.out / DONE, {"key": key, "name": step.name, "command": step.command,
                                       "experiment": settings, "seconds": seconds, "threads": threads,
                                       "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    (step.out / PENDING).unlink()
    return seconds, False


def _free_name(path, suffix):
    """<path>.<suffix>, or <path>.<suffix>-<n> when that exists: an earlier copy is never replaced."""
    candidate, n = path.with_name(f"{path.name}.{suffix}"), 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.{suffix}-{n}"), n + 1
    return candidate


def _run_command(step, log, extra_env):
    """Runs `python -m ...`, echoing its progress lines; the full output goes to out/log.txt."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           "PYTHONUNBUFFERED": "1", **extra_env}
    threads = {name: env[name] for name in THREAD_VARIABLES if name in env} or "default"
    with open(step.out / "log.txt", "a") as logfile:
        proc = subprocess.Popen([sys.executable, "-m", *step.command], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=_die_with_parent)
        _CHILDREN.add(proc)
        try:
            tail = []
            for line in proc.stdout:
                logfile.write(line)
                logfile.flush()  # readable while the step runs
                tail = (tail + [line.rstrip()])[-15:]
                if _is_progress(line):
                    log(f"      {line.rstrip()}")
            returncode = proc.wait()
        finally:
            proc.kill()  # no-op once it exited; never leaves a writer behind an exception here
            proc.wait()
            _CHILDREN.discard(proc)
        if returncode != 0:
            raise StepFailed(f"step {step.name} failed (exit {returncode}); last lines of "
                             f"{step.out / 'log.txt'}:\n" + "\n".join(tail))
    return threads


_CHILDREN = set()  # the step processes running now

THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def threads_per_job(jobs):
    """The step processes' thread settings when `jobs` run at once: the cores shared out, one
    inter-op thread (bench/step_concurrency.py: two RP2 steps at once with one thread each ran 1.40x
    as fast as one after another, 1.28x with TensorFlow's default threads). Settings the user made win
    (and step.json records them)."""
    if any(name in os.environ for name in THREAD_VARIABLES):
        return {}
    intra = str(max(1, len(os.sched_getaffinity(0)) // jobs))  # the cores this process may use
    return {"TF_NUM_INTRAOP_THREADS": intra, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": intra}


def _resolve_prctl():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


_PRCTL = _resolve_prctl()  # looked up here: the forked child must not load libraries (other threads may hold locks)


def _die_with_parent():
    """Linux: the step's process is killed with the runner, so a killed run leaves no writer behind.
    The signal comes when the forking thread ends; run_all's threads wait for their children."""
    if _PRCTL is not None:
        _PRCTL(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def _is_progress(line):
    return line.startswith(("Epoch ", "targets ", "lambda=", "best_lambda", "PGD ", "legit accuracy", "resuming"))


def run_all(steps, log=print, jobs=1):
    """Runs the steps with a progress line per step and returns per-stage seconds (summed over steps:
    with jobs > 1 they overlap). With jobs > 1, up to `jobs` steps run at once: a step starts once
    every earlier step that writes one of its inputs has finished; in-process experiments run on
    this thread, one at a time (they share TensorFlow's process-wide state, and Ctrl-C reaches them).
    After a failure no new step starts; the running ones finish, then the first error is raised."""
    lock = threading.Lock()

    def say(message):
        with lock:  # whole lines, though several steps print at once
            log(message)

    stage_seconds, total = {step.stage: 0.0 for step in steps}, len(steps)

    env = {} if jobs == 1 else threads_per_job(jobs)

    def one(i, step, echo):
        if not is_done(step):
            say(f"[{i}/{total}] {step.stage}: {step.name} ...")
        seconds, skipped = run_step(step, echo, env)
        say(f"[{i}/{total}] {step.stage}: {step.name} {'done earlier, skipped' if skipped else f'done in {seconds:.1f}s'}")
        return step.stage, 0.0 if skipped else seconds

    def add(stage_and_seconds):
        stage_seconds[stage_and_seconds[0]] += stage_and_seconds[1]

    if jobs == 1:
        for i, step in enumerate(steps, 1):
            add(one(i, step, say))
        return stage_seconds
    needs = [{j for j in range(i) if any(pathlib.Path(p).is_relative_to(steps[j].out) for p in step.inputs)}
             for i, step in enumerate(steps)]
    waiting, running, finished, failures = list(range(total)), {}, set(), []

    def failed(i, error):
        failures.append(error)
        others = ", ".join(steps[j].name for j in running.values()) or "none"
        say(f"stopping: {steps[i].name} failed; waiting for the running steps ({others})")

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        while waiting or running:
            while not failures and len(running) < jobs:
                i = next((i for i in waiting if needs[i] <= finished), None)
                if i is None:
                    break
                waiting.remove(i)
                step, echo = steps[i], (lambda m, name=steps[i].name: say(m if name in m else f"      {name}: {m.strip()}"))
                if step.experiment is None:
                    running[pool.submit(one, i + 1, step, echo)] = i
                    continue
                try:  # on this thread: at most one at a time, beside the running commands
                    add(one(i + 1, step, echo))
                    finished.add(i)
                except Exception as error:
                    failed(i, error)
            if not running:
                break  # only after a failure: what is left waits for it
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                if future.exception() is None:
                    add(future.result())
                    finished.add(i)
                else:
                    failed(i, future.exception())
    except BaseException:  # Ctrl-C or a kill: the step processes go too, and nothing new starts
        for proc in list(_CHILDREN):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    if failures:
        raise failures[0]
    return stage_seconds
