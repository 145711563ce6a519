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
import threading
import time

from blurnet_tf import files, locks
from blurnet_tf.pipeline.step_process import StepProcesses, check_thread_settings, threads_per_job

DONE, PENDING = locks.STEP_DONE, locks.STEP_PENDING


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


def run_step(step, log=print, env=None, processes=None):
    """Runs one step unless done; returns (seconds, skipped). `env`: extra environment of a command;
    `processes`: the run's StepProcesses (a stop of the run kills the step's process)."""
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
        # Partial work under other settings, or a directory no step wrote: neither is resumable, and
        # either may hold a file of the user's, so it is moved aside (kept, logged), never deleted.
        old = _free_name(step.out, "not-a-step" if pending is None else f"superseded-{pending.get('key')}")
        step.out.rename(old)
        why = "was not written by this pipeline" if pending is None else "holds unfinished work under other settings"
        log(f"      {step.name}: {step.out} {why}; moved to {old}")
    files.write_json(files.ensure_dir(step.out) / PENDING, {"key": key})
    started = time.time()
    if step.command:
        threads = (processes or StepProcesses()).run(step.command, step.out, step.name, log, env or {})
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


def run_all(steps, log=print, jobs=1):
    """Runs the steps with a progress line per step and returns per-stage seconds (summed over steps:
    with jobs > 1 they overlap). Up to `jobs` steps run at once (jobs=1: plan order): a step starts
    once every earlier step that writes one of its inputs has finished. In-process experiments run on
    this thread, one at a time (they share TensorFlow's process-wide state, and Ctrl-C reaches them),
    each taking one of the `jobs` places; a place that frees meanwhile goes to the next command.
    After a failure no new step starts; the running ones finish, then the first error is raised."""
    check_thread_settings()
    processes = StepProcesses()
    # Several steps on one GPU: each takes memory as it needs it, not the whole device (TensorFlow's default).
    env = {} if jobs == 1 else {**threads_per_job(jobs), "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    needs = [{j for j in range(i) if any(pathlib.Path(p).is_relative_to(steps[j].out) for p in step.inputs)}
             for i, step in enumerate(steps)]
    stage_seconds = {step.stage: 0.0 for step in steps}
    changed = threading.Condition()  # guards everything below; notified when a step ends or is handed over
    waiting, running, finished, failures = list(range(len(steps))), {}, set(), []
    handed = []  # the experiment this thread runs next (at most one)
    state = {"experiment": None, "stopped": False}  # the experiment running on this thread

    def say(message):
        with changed:  # whole lines, though several steps print at once (the lock is re-entrant)
            log(message)

    def one(i):
        step, head = steps[i], f"[{i + 1}/{len(steps)}] {steps[i].stage}: {steps[i].name}"
        if not is_done(step):
            say(f"{head} ...")
        echo = say if jobs == 1 else (lambda m: say(m if step.name in m else f"      {step.name}: {m.strip()}"))
        seconds, skipped = run_step(step, echo, env, processes)
        say(f"{head} {'done earlier, skipped' if skipped else f'done in {seconds:.1f}s'}")
        return 0.0 if skipped else seconds

    def settle(i, seconds=0.0, error=None):  # under `changed`
        if error is None:
            stage_seconds[steps[i].stage] += seconds
            finished.add(i)
        else:
            failures.append(error)
            handed.clear()  # an experiment handed over but not begun does not start after a failure
            busy = [steps[j].name for j in [*running.values(), state["experiment"]] if j is not None]
            if busy:
                say(f"stopping: {steps[i].name} failed; waiting for the running steps ({', '.join(busy)})")
        fill()
        changed.notify_all()

    def ended(future):  # on the finishing command's thread
        with changed:
            try:
                i = running.pop(future)
                if future.cancelled():  # a stop's shutdown: nothing ran
                    return
                error = future.exception()
                settle(i, 0.0 if error is not None else future.result(), error)
            except BaseException as caught:  # concurrent.futures drops a callback's error: fail the run instead
                failures.append(caught)
            finally:
                changed.notify_all()

    def fill():  # under `changed`: the free places to the first ready steps in plan order
        while not failures and not state["stopped"]:
            experiment = state["experiment"] is not None or bool(handed)  # this thread's one place is taken
            ready = [i for i in waiting
                     if needs[i] <= finished and not (steps[i].experiment is not None and experiment)]
            if len(running) + experiment >= jobs or not ready:
                return
            i = ready[0]
            waiting.remove(i)
            if steps[i].experiment is not None:
                handed.append(i)  # this thread runs it
                continue
            future = pool.submit(one, i)
            running[future] = i
            future.add_done_callback(ended)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        with changed:
            fill()
        while True:
            with changed:
                while not handed and running:
                    changed.wait()
                if not handed:
                    break  # done, or a failure left the rest waiting
                i = state["experiment"] = handed.pop()
            try:  # beside the running commands
                seconds, error = one(i), None
            except Exception as caught:
                seconds, error = 0.0, caught
            with changed:
                state["experiment"] = None
                settle(i, seconds, error)
    except BaseException:  # Ctrl-C or a kill: the step processes go too, and nothing new starts
        with changed:
            state["stopped"] = True
        processes.stop()
        pool.shutdown(cancel_futures=True)  # quick: their processes are gone
        raise
    pool.shutdown()
    if failures:
        raise failures[0]
    return stage_seconds
