"""Runs the pipeline's steps on Ray (one task per step) on this machine or on a cluster.

Each step is a Ray task that needs `cpus_per_step` CPUs and `gpus_per_step` GPUs (fractions allowed; a
task given a GPU sees only its own: Ray sets CUDA_VISIBLE_DEVICES). A step waits for the steps that
write its inputs through Ray's own dependencies. Without an address a local Ray instance is started with
`jobs` places and stopped at the end; `address` (or RAY_ADDRESS) joins a running cluster. A task whose
node dies is retried on another (NODE_RETRIES times) and resumes from the step's own checkpoint (the
markers and resume rules of steps.run_step). After a failure no further step starts, the running ones
finish, and the first error is raised; Ctrl-C or a kill of this process cancels every running step
(its worker and the step's own process are killed) and leaves no writer behind.

We keep our own code only where Ray has no notion of it: the step keys and markers (steps.py), the checks
of the cluster before the first step (ray_nodes.py), and the per-step log lines."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from blurnet_tf import files
from blurnet_tf.errors import SettingError, StepFailed
from blurnet_tf.pipeline.step_process import THREAD_VARIABLES, check_thread_settings, killed_with_parent
from blurnet_tf.pipeline.ray_nodes import captured_stderr, check_fits, check_reachable, check_shared, placement
from blurnet_tf.pipeline.steps import Step, is_done, run_step

NODE_RETRIES = 3  # a step whose node or worker died is retried this often
OBJECT_STORE = 100 * 1024 * 1024  # bytes: steps pass only small records between them


def step_threads(cpus: float) -> dict[str, str]:
    """A step's thread settings for `cpus` CPUs (bench/step_concurrency.py: one inter-op thread, the
    CPUs as intra-op threads, ran two RP2 steps 1.40x as fast as one after another). The user's own
    thread variables win."""
    if any(name in os.environ for name in THREAD_VARIABLES):
        return {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}
    intra = str(max(1, round(cpus)))
    return {"TF_NUM_INTRAOP_THREADS": intra, "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": intra}


def run_all(
    steps: Sequence[Step],
    log: Callable[[str], None] = print,
    jobs: int = 1,
    *,
    address: str | None = None,
    cpus_per_step: float | None = None,
    gpus_per_step: float = 0.0,
    shared_dir: str | os.PathLike | None = None,
    quiet: bool = True,
) -> dict[str, float]:
    """Runs `steps` (skipping finished ones) and returns the seconds per stage, summed over steps.

    jobs: steps at once on the local instance (each takes one of `jobs` places); ignored on a cluster or a
    Ray already initialised in this process. cpus_per_step: a step's threads (default the cores shared out
    among `jobs` locally), and on a cluster the CPUs it asks of a node (default 1). shared_dir: the directory
    every node must see (default: the steps' common
    folder). quiet: keep Ray's own start-up and worker lines out of the output."""
    check_thread_settings()
    if not steps:
        return {}
    already = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    local = not already and address is None and not os.environ.get("RAY_ADDRESS")
    if not already and not local:
        check_reachable(*((address,) if address else (os.environ["RAY_ADDRESS"], "RAY_ADDRESS")))
    # Before Ray reads them (and caches them for this process): no usage report; locally a token of this
    # process (else Ray writes one to ~/.ray), kept for any later run here.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local and "RAY_AUTH_TOKEN" not in os.environ:
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    import ray

    temp = _ray_temp_dir() if local else None  # its own sockets and logs: no other
    try:  # Ray instance here is ever joined
        threads = cpus_per_step or (max(1, len(os.sched_getaffinity(0)) // jobs) if local and not already else 1)
        # Locally a step takes one of `jobs` places, whatever its threads: jobs=1 with 0.25 CPUs is one step at once.
        request = 1 if local and not already else threads
        if not already:
            sigterm = signal.getsignal(signal.SIGTERM)
            where = address or os.environ.get("RAY_ADDRESS")
            # Joining a cluster starts no process here: its C++ retry lines are held back and read (a token the
            # cluster refuses shows only there), and shown only with quiet=False.
            with contextlib.ExitStack() as stack:
                lines = [] if local else stack.enter_context(captured_stderr(show=not quiet))
                try:
                    ray.init(
                        address="local" if local else address,
                        num_cpus=jobs if local else None,
                        object_store_memory=OBJECT_STORE if local else None,
                        include_dashboard=False,
                        _temp_dir=temp,
                        log_to_driver=not quiet,
                        logging_level=logging.ERROR if quiet else logging.INFO,
                    )
                    failed = None
                except (ConnectionError, ray.exceptions.RayError) as error:  # one line, not Ray's traceback
                    failed = str(error).splitlines()[0]
            if failed is not None and any("InvalidAuthToken" in line or "Unauthenticated" in line for line in lines):
                raise SettingError(
                    "address",
                    f"the Ray cluster at {where} refused this run's token: set RAY_AUTH_TOKEN (with "
                    "RAY_AUTH_MODE=token) to the cluster's",
                )
            if failed is not None:
                raise SettingError("address", f"no Ray cluster answers at {where}: {failed}")
            if threading.current_thread() is threading.main_thread() and sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)  # Ray's C++ handler would print a stack and abort (134)
        try:
            return _run_on_ray(ray, list(steps), log, request, threads, gpus_per_step, shared_dir)
        finally:
            if not already:
                ray.shutdown()
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


def _ray_temp_dir() -> str:
    """A fresh folder for the local instance's sockets and logs, under TMPDIR when its path leaves room for
    Ray's socket names (a Unix socket path holds at most 107 bytes; Ray adds about 60), else under /tmp."""
    base = tempfile.gettempdir()
    if len(base) > 40 and os.access("/tmp", os.W_OK):
        base = "/tmp"
    return tempfile.mkdtemp(prefix="blurnet-ray-", dir=base)


def _run_on_ray(ray, steps, log, cpus, threads, gpus, shared_dir):
    check_fits(ray, cpus, gpus)
    shared = pathlib.Path(shared_dir or os.path.commonpath([os.path.abspath(s.out) for s in steps])).resolve()
    check_shared(shared)
    stop = shared / f".stopping-{uuid.uuid4().hex}"  # written by the first step that fails
    try:
        return _run(ray, steps, log, cpus, threads, gpus, os.fspath(stop))
    finally:
        stop.unlink(missing_ok=True)


def _run(ray, steps, log, cpus, threads, gpus, stop):
    from ray import cloudpickle
    from tqdm import tqdm

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here, where = ray.get_runtime_context().get_node_id(), ray.get_runtime_context().gcs_address
    state = (
        ray.remote(num_cpus=0)(RunState)
        .options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False))
        .remote()
    )
    env = {
        **step_threads(threads),
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        **{k: os.environ[k] for k in ("BLURNET_DATA",) if k in os.environ},
    }  # the driver's data on every node
    # A GPU step gets a fresh worker: TensorFlow binds its devices once per process.
    task = ray.remote(max_calls=1 if gpus else 0)(_step_task).options(
        num_cpus=cpus, num_gpus=gpus, max_retries=NODE_RETRIES, retry_exceptions=False, runtime_env={"env_vars": env}
    )
    needs = [
        [j for j in range(i) if any(pathlib.Path(p).is_relative_to(steps[j].out) for p in step.inputs)]
        for i, step in enumerate(steps)
    ]
    refs = []
    for i, step in enumerate(steps):
        head = f"[{i + 1}/{len(steps)}] {step.stage}: {step.name}"
        refs.append(
            task.remote(
                cloudpickle.dumps(step), i, head, sys.path, os.getcwd(), env, state, stop, *[refs[j] for j in needs[i]]
            )
        )
    pending = {ref: i for i, ref in enumerate(refs)}
    stage_seconds = {step.stage: 0.0 for step in steps}
    failures, unstarted = [], []
    bar = tqdm(total=len(steps), unit="step", desc="steps", disable=None, leave=False)
    try:
        while pending:
            try:  # the run's state lives on the driver's node: an error here is that node lost
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                lines, running = ray.get(state.drain.remote())
            except ray.exceptions.RayError:
                raise StepFailed(node_lost(where)) from None
            for line in lines:
                log(line)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    done = ray.get(ref)
                except ray.exceptions.RayError as error:  # the step's own error, or its worker / node lost for good
                    cause = getattr(error, "cause", None)
                    cause = (
                        cause
                        if isinstance(cause, Exception) and isinstance(error, ray.exceptions.RayTaskError)
                        else StepFailed(f"step {steps[i].name} failed: {str(error).strip().splitlines()[0]}")
                    )
                    if not failures:
                        files.write_text(stop, steps[i].name)  # (the step wrote it too, unless its node died)
                        busy = [name for name in ray.get(state.busy.remote()) if name != steps[i].name]
                        if busy:
                            log(f"stopping: {steps[i].name} failed; waiting for the running steps ({', '.join(busy)})")
                    failures.append(cause)
                    continue
                if done is None:
                    unstarted.append(steps[i].name)
                else:
                    seconds, skipped = done
                    stage_seconds[steps[i].stage] += 0.0 if skipped else seconds
            bar.set_postfix_str(f"{running} running")
            bar.update(len(ready))
        time.sleep(0.2)  # the steps' last lines are sent without waiting: let them land
        for line in ray.get(state.drain.remote())[0]:
            log(line)
    except BaseException:  # Ctrl-C or a kill: every running step goes, its process too
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
    if failures:
        raise failures[0]
    if unstarted:  # a stop with no failure to show for it: never a quiet success
        raise StepFailed(f"steps not started: {', '.join(unstarted)} (the run was stopping)")
    return stage_seconds


class RunState:
    """The run's shared state (a Ray actor on the driver's node): which steps run and the log lines they
    send (both by calls that wait for nothing)."""

    def __init__(self):
        self.running, self.lines = {}, []

    def begin(self, i, name):
        self.running[i] = name

    def end(self, i):
        self.running.pop(i, None)

    def say(self, line):
        self.lines.append(line)

    def busy(self):
        return list(self.running.values())

    def drain(self):
        lines, self.lines = self.lines, []
        return lines, len(self.running)


def _step_task(blob, i, head, path, cwd, env, state, stop, *upstream):
    """One step on a Ray worker: None when the run was stopping, else (seconds, skipped). Nothing here
    waits on Ray (a task blocked in ray.get gives its CPUs back, and another step would start)."""
    from ray import cloudpickle

    try:
        sys.path.extend(p for p in path if p not in sys.path)  # the driver's modules (e.g. a test's experiment)
        os.chdir(cwd)
        step = cloudpickle.loads(blob)
        if os.path.exists(stop):
            return None
        state.begin.remote(i, step.name)
        if not is_done(step):
            state.say.remote(f"{head} ...")
        seconds, skipped = run_step(
            step,
            lambda m: state.say.remote(m if step.name in m else f"      {step.name}: {m.strip()}"),
            env=env,
            where=placement(),
        )
        state.say.remote(f"{head} {'done earlier, skipped' if skipped else f'done in {seconds:.1f}s'}")
        return seconds, skipped
    except Exception:  # the step's own failure (not a kill: a killed worker's step is retried)
        files.write_text(stop, head)  # before this place frees: no step starts after a failure
        raise
    finally:
        state.end.remote(i)


def run_all_watched(steps: Sequence[Step], **kwargs: Any) -> dict[str, float]:
    """run_all in a forked child that this process waits for, so that losing Ray is named in one line.

    Ray ends its driver with a bare exit(1), past any Python handler, when the node the driver is attached
    to dies (the head node, or this machine's node of the cluster). The child runs the steps and reports
    its seconds or its error through a pipe; a child that exits 1 without a report lost its Ray node, and a
    StepFailed says so (finished steps are kept; the same command resumes); one killed by a signal is named
    by it. The child has a process group of its own: each Ctrl-C or SIGTERM reaching this process is handed
    on to it as SIGINT. From a process running other threads (a fork would copy their locks) it is run_all
    itself. Arguments: as run_all."""
    if threading.active_count() > 1 or "ray" in sys.modules or not sys.platform.startswith("linux"):
        return run_all(steps, **kwargs)
    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: whatever happens here ends in os._exit, never in the parent's code
        try:
            os.close(read)
            _run_child(steps, kwargs, parent, write)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text, status = _read_while_waiting(pipe, pid)
    if not text:
        if os.WIFSIGNALED(status):
            raise StepFailed(
                f"the run's process was killed by {signal.Signals(os.WTERMSIG(status)).name}; "
                "finished steps are kept: the same command resumes"
            )
        raise StepFailed(node_lost(kwargs.get("address") or os.environ.get("RAY_ADDRESS")))
    told = json.loads(text)
    if "seconds" in told:
        return told["seconds"]
    raise _rebuilt(told)


def _run_child(steps, kwargs, parent, write):
    os.setpgid(0, 0)
    _die_with(parent)
    if kwargs.get("quiet", True):  # Ray's C++ lines (written to fd 2) out; Python's own lines kept
        shown = os.dup(2)
        sys.stderr = os.fdopen(shown, "w", buffering=1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    try:
        report: dict[str, Any] = {"seconds": run_all(steps, **kwargs)}
    except BaseException as exc:  # every way out is reported; the parent raises it
        report = _error_report(exc)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # the report goes out whole
    sys.stdout.flush()
    sys.stderr.flush()
    with os.fdopen(write, "w") as pipe:
        pipe.write(json.dumps(report))


def node_lost(address: str | None) -> str:
    """The one line for a run whose Ray node died under it."""
    return (
        f"the Ray node this run was attached to died (Ray at {address or 'this machine'}: its head node, or this "
        "machine's node, is gone); finished steps are kept: start the cluster again and run the same command to resume"
    )


def _die_with(parent):
    """This process is killed with `parent`, or exits now if it is gone already."""
    killed_with_parent()
    if os.getppid() != parent:
        os._exit(1)


def _read_while_waiting(pipe, pid):
    """(the child's report, empty if it died first; its wait status). An interrupt here (Ctrl-C, or SIGTERM
    raised as KeyboardInterrupt by the binary's handler) is handed to the child, whose report then says so."""
    text = ""
    while True:
        try:
            text += pipe.read()
            break
        except KeyboardInterrupt:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
    while True:
        try:
            return text, os.waitpid(pid, 0)[1]
        except KeyboardInterrupt:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)


_REBUILT = {"SettingError": ("field", "problem"), "DataError": ("path", "problem")}


def _error_report(exc: BaseException) -> dict[str, Any]:
    from blurnet_tf.errors import DataError, TrainingDiverged

    if isinstance(exc, (SettingError, DataError)):
        return {"error": type(exc).__name__, "args": [getattr(exc, f) for f in _REBUILT[type(exc).__name__]]}
    if isinstance(exc, (StepFailed, TrainingDiverged, KeyboardInterrupt)):
        return {"error": type(exc).__name__, "args": [str(exc)]}
    import traceback

    traceback.print_exc()  # a bug: its traceback, from where it happened
    return {"error": "StepFailed", "args": [f"the run stopped on {type(exc).__name__} (traceback above)"]}


def _rebuilt(report: dict[str, Any]) -> BaseException:
    from blurnet_tf.errors import DataError, TrainingDiverged

    kinds: dict[str, type[BaseException]] = {
        "SettingError": SettingError,
        "DataError": DataError,
        "StepFailed": StepFailed,
        "TrainingDiverged": TrainingDiverged,
        "KeyboardInterrupt": KeyboardInterrupt,
    }
    kind = kinds.get(report.get("error", ""), StepFailed)
    return kind(*report.get("args", ["the run's report could not be read"]))
