"""In-process experiments for the scheduler tests, in a module of their own: a Ray worker imports it
to run them, and it imports nothing heavy (a test module would pull in TensorFlow first)."""

import dataclasses
import json
import os
import time

CALLS = []


@dataclasses.dataclass(frozen=True)
class Counted:
    """An experiment that counts its runs and leaves a partial file before failing, if asked."""
    x: int = 1
    fail: bool = False

    def run(self, out):
        CALLS.append(self)
        (out / "partial.txt").write_text(str(len(CALLS)))
        if self.fail:
            raise KeyboardInterrupt  # as a kill would stop it
        (out / "result.txt").write_text("ok")


@dataclasses.dataclass(frozen=True)
class Timed:
    """An in-process experiment that records when and in which process it ran."""
    sleep: float = 0.0

    def run(self, out):
        started = time.time()
        time.sleep(self.sleep)
        (out / "ran.json").write_text(json.dumps({"start": started, "end": time.time(), "pid": os.getpid()}))


@dataclasses.dataclass(frozen=True)
class BadData:
    """An in-process experiment that refuses its input, as a real one does (DataError)."""
    path: str = "victims.npz"

    def run(self, out):
        from blurnet_tf.errors import DataError

        raise DataError(self.path, "expected 40 victims")
