"""Resumable experiment steps: each step writes one directory and is skipped when done.

A step is a command line of one of our binaries (what a user would type to run that experiment
alone) or an experiment run in-process (a settings dataclass with `run(out)`). Its key hashes the
command and the content of the flagfiles it reads, or every field of the experiment, plus the
files it depends on (e.g. the trained model): a changed setting or a retrained model re-runs
exactly the steps that depend on it, and no setting can be left out of the key by hand. The
binaries resume themselves (training checkpoints, finished target groups), so a step killed
half-way loses at most one chunk.
"""

import dataclasses
from typing import Any
import hashlib
import json
import os
import pathlib
import time
import zipfile

from blurnet_tf import files, locks, rundir
from blurnet_tf.pipeline.step_process import THREAD_VARIABLES, StepProcesses

DONE, PENDING = locks.STEP_DONE, locks.STEP_PENDING


@dataclasses.dataclass
class Step:
    name: str  # e.g. "whitebox/tv_1e-4"
    stage: str  # e.g. "train", "whitebox"
    out: pathlib.Path  # the directory the step fills
    command: list | None = None  # argv after `python -m`, e.g. ["blurnet_tf.cli.train", "--flagfile=..."]
    experiment: Any = None  # or a settings dataclass whose run(out) is called in-process
    inputs: list = dataclasses.field(default_factory=list)  # files whose content the result depends on


def train_command(flags_dir, flagfile, out, *flags):
    """argv (after `python -m`) of the train binary on flags/models/<flagfile>.flags into `out`, then `flags`."""
    return [
        "blurnet_tf.cli.train",
        f"--flagfile={pathlib.Path(flags_dir) / 'models' / f'{flagfile}.flags'}",
        f"--out={out}",
        *flags,
    ]


def attack_command(flags_dir, flagfile, model, out, *flags):
    """argv of the attack binary: flags/attacks/<flagfile> on `model` into `out`, then `flags`."""
    return [
        "blurnet_tf.cli.attack",
        f"--flagfile={pathlib.Path(flags_dir) / 'attacks' / flagfile}",
        f"--model={model}",
        f"--out={out}",
        *flags,
    ]


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
    experiment = (
        None
        if step.experiment is None
        else {"type": type(step.experiment).__qualname__, "settings": dataclasses.asdict(step.experiment)}
    )
    payload = {
        "command": step.command,
        "experiment": experiment,
        "flagfiles": {f: _file_digest(f) for f in flagfiles},
        "inputs": {os.fspath(p): _file_digest(p) for p in step.inputs},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _marker(path):
    """A step marker's contents; a torn, corrupt or wrongly shaped marker (valid JSON, but not a marker) reads
    as absent: the step's directory is moved aside and the step re-runs."""
    try:
        data = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("key"), str)):
        return None
    finished = path.name == DONE  # a finished step's marker also says which step it was and how long it took
    timed = isinstance(data.get("seconds"), (int, float)) and not isinstance(data.get("seconds"), bool)
    return data if not finished or (isinstance(data.get("name"), str) and timed) else None


# The records a step leaves for the report: step.json lists those it found, and a step whose list is no longer
# all there and readable (moved aside, truncated, JSON of the wrong shape) is not done: it runs again.
RECORDS = (rundir.METRICS_FILE, rundir.RESULTS_FILE, rundir.ARRAYS_FILE)


def _records(out):
    return [name for name in RECORDS if (out / name).is_file()]


def _intact(out, names):
    for name in names if isinstance(names, list) else ():
        try:
            if name.endswith(".npz"):
                zipfile.ZipFile(out / name).close()  # a truncated archive has no central directory
            elif not isinstance(json.loads((out / name).read_text()), dict):
                return False
        except (OSError, ValueError, zipfile.BadZipFile):
            return False
    return True


def is_done(step):
    return status(step) == "done"


def status(step):
    """'done', 'stale' (finished under other settings or inputs) or 'missing' (never finished, or its records
    were moved aside or damaged since)."""
    done = _marker(step.out / DONE)
    if done is None:
        return "missing"
    if done.get("key") != step_key(step):
        return "stale"
    return "done" if _intact(step.out, done.get("records", [])) else "missing"


def run_step(step, log=print, env=None, processes=None, where=None):
    """Runs one step unless done; returns (seconds, skipped). `env`: extra environment of a command;
    `processes`: the run's StepProcesses (a stop of the run kills the step's process); `where`: the node
    and resources it runs with, recorded in step.json."""
    key = step_key(step)
    done, pending = _marker(step.out / DONE), _marker(step.out / PENDING)
    if done is not None and done.get("key") == key and _intact(step.out, done.get("records", [])):
        return done["seconds"], True
    if done is not None and done.get("key") == key:  # finished, but a record it left is gone or damaged
        old = _free_name(step.out, "damaged")
        step.out.rename(old)
        log(f"      {step.name}: a record it left is missing or damaged; kept as {old}, running it again")
    elif done is not None:
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
    files.write_json(files.ensure_dir(step.out) / PENDING, {"key": key, "placement": where})
    started = time.time()
    if step.command:
        threads = (processes or StepProcesses()).run(step.command, step.out, step.name, log, env or {})
    else:
        step.experiment.run(step.out)
        threads = {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ} or "default"
    seconds = time.time() - started
    settings = None if step.experiment is None else dataclasses.asdict(step.experiment)
    files.write_json(
        step.out / DONE,
        {
            "key": key,
            "name": step.name,
            "command": step.command,
            "experiment": settings,
            "seconds": seconds,
            "threads": threads,
            "placement": where,
            "code": files.code_digest(),  # what a report of this result ran
            "records": _records(step.out),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    (step.out / PENDING).unlink()
    return seconds, False


def _free_name(path, suffix):
    """<path>.<suffix>, or <path>.<suffix>-<n> when that exists: an earlier copy is never replaced."""
    candidate, n = path.with_name(f"{path.name}.{suffix}"), 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.{suffix}-{n}"), n + 1
    return candidate
