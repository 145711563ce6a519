"""A pipeline step's process: `python -m <binary>` with its output logged, tied to the process that
runs it (a Ray worker) so that a cancelled or killed step leaves no writer behind, and the check of the
user's thread settings."""

import collections
import os
import re
import subprocess
import sys
import threading

from blurnet_tf import locks
from blurnet_tf.errors import DataError, StepFailed

RUNNER_PID = "BLURNET_RUNNER_PID"  # set for a step's process: die_with_runner() ties it to the runner
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


class StepProcesses:
    """The step processes of one run: each started through run(); stop() kills the running ones, and
    none starts after it (a step being set up at that moment included)."""

    def __init__(self):
        self._lock, self._running, self._stopped = threading.Lock(), set(), False

    def run(self, command, out, step_name, log, extra_env):
        """Runs `python -m <command>`, echoing its progress lines; the full output goes to out/log.txt.
        Returns the thread settings it ran with."""
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "PYTHONUNBUFFERED": "1",
            RUNNER_PID: str(os.getpid()),
            **extra_env,
        }
        threads = {name: env[name] for name in THREAD_VARIABLES if name in env} or "default"
        with open(out / locks.STEP_LOG, "a") as logfile:
            with self._lock:
                if self._stopped:
                    raise StepFailed(f"step {step_name} not started: the run is stopping")
                proc = subprocess.Popen(
                    [sys.executable, "-m", *command],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                )
                self._running.add(proc)
            try:
                tail = collections.deque(maxlen=15)
                for line in proc.stdout:
                    logfile.write(line)
                    logfile.flush()  # readable while the step runs
                    tail.append(line.rstrip())
                    if _is_progress(line):
                        log(f"      {line.rstrip()}")
                returncode = proc.wait()
            finally:
                proc.kill()  # no-op once it exited; never leaves a writer behind an exception here
                proc.wait()
                with self._lock:
                    self._running.discard(proc)
            if returncode != 0:
                raise StepFailed(
                    f"step {step_name} failed (exit {returncode}); last lines of "
                    f"{out / locks.STEP_LOG}:\n" + "\n".join(tail)
                )
        return threads

    def stop(self):
        with self._lock:
            self._stopped = True
            for proc in self._running:
                proc.kill()


def check_thread_settings():
    """The user's thread variables must be counts: TensorFlow silently ignores any other value."""
    for name in THREAD_VARIABLES:
        value = os.environ.get(name)
        if value is not None and not re.fullmatch(r"[1-9][0-9]{0,5}", value.strip()):
            raise DataError(f"environment variable {name}", f"expected a whole number >= 1, got {value!r}")


def die_with_runner():
    """Called first by a step's process (Linux): it is killed with the runner, so a killed run leaves
    no writer behind. Set here rather than in a fork hook, which is unsafe while threads run."""
    runner = os.environ.pop(RUNNER_PID, None)  # popped: a process this step starts is not tied to the runner
    if runner is None or not sys.platform.startswith("linux"):
        return
    killed_with_parent()
    if str(os.getppid()) != runner.strip():  # the runner died before the signal was set
        sys.exit(f"error: {RUNNER_PID}: the pipeline runner (pid {runner}) is gone; this step does not start")


def killed_with_parent():
    """This process is killed (SIGKILL) when its parent dies: Linux's PR_SET_PDEATHSIG. The caller then checks
    that the parent it meant is still the parent (it may have died before this was set)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _is_progress(line):
    return line.startswith(("Epoch ", "targets ", "lambda=", "best_lambda", "PGD ", "legit accuracy", "resuming"))
