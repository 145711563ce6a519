"""Exceptions for bad user input, so binaries can print one clear line instead of a traceback."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad or missing input data. The message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(
        self,
    ) -> tuple[type, tuple[str, str]]:  # rebuilt from its two fields when it crosses a process (a Ray step's error)
        return type(self), (self.path, self.problem)


class StepFailed(RuntimeError):
    """A pipeline step's command failed; the message names the step and its log."""


class TrainingDiverged(RuntimeError):
    """Training met a non-finite loss; the message names the epoch and batch."""


class SettingError(ValueError):
    """A setting out of its range. `field` is the setting's name, which is also its flag's name."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"--{field}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.field, self.problem)
