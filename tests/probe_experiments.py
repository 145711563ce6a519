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


@dataclasses.dataclass
class Recorded:
    """An experiment that leaves the records a report reads (results.json, arrays.npz) and counts its runs."""

    x: int = 1

    def run(self, out):
        import numpy as np

        CALLS.append(self)
        (out / "results.json").write_text(json.dumps({"kind": "result", "values": {"x": self.x}}))
        np.savez(out / "arrays.npz", x=np.arange(1000))


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


@dataclasses.dataclass(frozen=True)
class Chained:
    """A seconds-long in-process step that writes a record through the real record machinery: its value
    is its index plus the values of the steps it reads (their results files), so a step that ran before
    its inputs, lost one or ran twice shows in the numbers."""

    index: int
    sleep: float = 0.0
    inputs: tuple = ()

    def run(self, out):
        from blurnet_tf import rundir

        time.sleep(self.sleep)
        total = self.index + sum(rundir.ResultRecord.read_values(p)["value"] for p in self.inputs)
        rundir.write_result(self, out, {"value": total, "inputs": len(self.inputs)})


def chained_steps(work, count=6, sleep=3.0):
    """`count` Chained steps: the first half independent, each later one reading two earlier ones."""
    import pathlib

    from blurnet_tf import rundir
    from blurnet_tf.pipeline.steps import Step

    work, steps = pathlib.Path(work), []
    for i in range(count):
        reads = () if i < count // 2 else (i - count // 2, i - count // 2 + 1)
        inputs = tuple(str(steps[j].out / rundir.RESULTS_FILE) for j in reads)
        steps.append(
            Step(
                f"probe/{i}",
                "probe",
                work / f"step{i}",
                experiment=Chained(i, sleep, inputs),
                inputs=[pathlib.Path(p) for p in inputs],
            )
        )
    return steps
