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


def keep_a_fuller_report(results, plan, work_dir, seeds):
    """For --report_only: refuses (DataError) to replace the report in `results` with one made from fewer
    finished steps of `plan`, or of fewer seeds (a fresh clone's empty runs/ would otherwise wipe the
    committed results; --seeds=0 over a two-seed report would halve it)."""
    from blurnet_tf import rundir
    from blurnet_tf.errors import DataError
    from blurnet_tf.reports import flat_records

    results = pathlib.Path(results)
    if not (results / rundir.RESULTS_FILE).exists():
        return
    missing = [s.name for s in plan if status(s) != "done"]
    if missing:
        raise DataError(
            results,
            f"holds a report; --report_only would replace it with one lacking {len(missing)} of "
            f"{len(plan)} steps not finished in {work_dir} (e.g. {missing[0]}): run them first "
            "(without --report_only), or choose another --results_dir",
        )
    try:
        stored = {r.seed for r in flat_records.read(results / rundir.RESULTS_FILE)}
    except (DataError, OSError, ValueError, KeyError, TypeError):  # not a report of ours: nothing to compare
        stored = set()
    if stored - set(seeds):
        raise DataError(
            results,
            f"holds a report of seeds {sorted(stored)}; --report_only with seeds {list(seeds)} "
            "would replace it with less: pass its seeds, or choose another --results_dir",
        )


def claim_results(results_dir, profile_name, writes_top_report):
    """Before any work: the files a report writes in `results_dir` are a report's, or new. A <profile>/ folder
    holding files but no report record (results.json with its records), or a top-level REPORT.md without a
    report's provenance line, is the user's: refused (DataError), so nothing of theirs is replaced."""
    from blurnet_tf import rundir
    from blurnet_tf.errors import DataError

    out = pathlib.Path(results_dir) / profile_name
    if out.is_dir() and any(out.iterdir()):
        try:
            record = json.loads((out / rundir.RESULTS_FILE).read_text())
        except (OSError, ValueError):
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("records"), list)):
            raise DataError(
                out,
                f"holds files a report did not write (no {rundir.RESULTS_FILE} of a reproduction); "
                "choose another --results_dir",
            )
    top = pathlib.Path(results_dir) / "REPORT.md"
    if writes_top_report and (top.is_dir() or top.exists() and not _is_report_text(top)):
        raise DataError(top, "is not a report a reproduction wrote (no provenance line); choose another --results_dir")


def _is_report_text(path):
    try:
        return any(
            line.startswith("- commit `") and "; generated " in line
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        )
    except OSError:
        return False
