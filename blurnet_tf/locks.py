"""Who may write a run directory: one writer at a time (the run lock), the command that made it
(its owner file) and nobody else unless asked, and directory flags checked before any work.
Nothing here deletes a file: a refused run leaves the directory as it found it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import socket
import tempfile
from collections.abc import Mapping, Sequence

from blurnet_tf import files
from blurnet_tf.errors import DataError

LOCK_FILE = ".lock"
OWNER_FILE = ".written-by.json"  # which command made a run directory: the proof that it may write there again
# What a step of the pipeline keeps beside a command's own output (its markers and log).
STEP_DONE, STEP_PENDING, STEP_LOG = "step.json", "step.pending.json", "log.txt"
BOOKKEEPING = frozenset({LOCK_FILE, OWNER_FILE, STEP_DONE, STEP_PENDING, STEP_LOG})


@dataclasses.dataclass(frozen=True)
class Writer:
    """A command that owns the run directories it makes: its name (kept in OWNER_FILE) and, for
    directories made before that file, the records that prove one its own: {relative path: the JSON
    record kinds it must have, or None when being there is proof enough}."""

    name: str
    records: Mapping[str, Sequence[str] | None] = dataclasses.field(default_factory=dict)


def _missing(path):
    """The folders of `path` that do not exist yet, innermost first, and the nearest one that does."""
    missing = []
    while not path.exists() and not path.is_symlink() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing, path


def check_writable_dir(path: str | os.PathLike[str], flag: str) -> pathlib.Path:
    """Refuses, before any work, a directory flag that names a file or a place that cannot be written
    (the directory, or the nearest folder above it that exists); leaves nothing behind."""
    path = pathlib.Path(path)
    existing = _missing(path)[1]
    if existing.exists() and not existing.is_dir():
        what = "is" if existing == path else f"lies under {existing}, which is"
        raise DataError(path, f"{what} a file, not a directory (--{flag})")
    try:  # a real write: permission bits say nothing of read-only mounts, /proc, or root
        tempfile.TemporaryDirectory(dir=existing, prefix=".blurnet-check-").cleanup()
    except OSError as exc:
        raise DataError(
            path,
            f"cannot create or write this directory (--{flag}): {existing} is not writable ({exc.strerror or exc})",
        ) from None
    return path


def claim_dir(path: str | os.PathLike[str], writer: Writer, overwrite: bool = False, flag: str = "out") -> None:
    """A run directory belongs to the command that made it: `writer` may write into `path` when it is
    new or empty, holds its OWNER_FILE, or (made before that file) one of its records. Any other
    content is the user's, and is refused unless `overwrite`; the pipeline's own step files beside it
    do not count. Call it before RunLock."""
    path = pathlib.Path(path)
    if not path.is_dir():
        return  # new (or a file: ensure_dir names that)
    made_by = owner(path)
    if made_by == writer.name or overwrite:
        return
    if made_by is not None:
        raise DataError(path, f"was written by `{made_by}`, not `{writer.name}`; choose another --{flag}")
    foreign = sorted(p.name for p in path.iterdir() if p.name not in BOOKKEEPING)
    if foreign and not any(is_record(path / name, kinds) for name, kinds in writer.records.items()):
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise DataError(
            path,
            f"holds files `{writer.name}` did not write ({shown}); choose a new or empty "
            f"--{flag}, or pass --overwrite to write into it",
        )


def mark_owner(path: str | os.PathLike[str], writer: Writer) -> None:
    """Records `writer` as the maker of run directory `path` (see claim_dir)."""
    if owner(path) != writer.name:
        files.write_json(pathlib.Path(path) / OWNER_FILE, {"writer": writer.name})


def owner(path: str | os.PathLike[str]) -> str | None:
    """The command that made run directory `path` (its OWNER_FILE), or None."""
    path = pathlib.Path(path)
    try:
        data = json.loads((path / OWNER_FILE).read_text())
        return data.get("writer") if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def is_record(path: str | os.PathLike[str], kinds: Sequence[str] | None) -> bool:
    """True when `path` is a JSON record of one of `kinds` (any file at all when kinds is None)."""
    path = pathlib.Path(path)
    if kinds is None:
        return path.is_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") in kinds


class RunLock:
    """One writer per run directory: <dir>/.lock holds the owner's PID, host and boot; a second live writer is
    refused, and so is any writer on another host (a shared run directory: its PID cannot be checked here).

    A lock left by a killed process of this machine (its PID no longer runs, or the machine rebooted) is taken
    over. A directory the lock
    made and nothing filled (a run refused on bad input) is removed again on exit.
    """

    def __init__(self, directory: str | os.PathLike[str], flag: str = "out") -> None:
        self.directory = pathlib.Path(directory)
        self.path = self.directory / LOCK_FILE
        self.flag = flag
        self.made: list[pathlib.Path] = []  # the folders the lock created, innermost first

    def __enter__(self) -> RunLock:
        self.made = _missing(self.directory)[0]
        files.ensure_dir(self.directory)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self.path.is_dir():
                    raise DataError(self.path, "is a directory, not a run lock; move it out of the way") from None
                holder, host = _read_holder(self.path)
                if host is not None:  # a writer on another machine sharing this directory: never stale to us
                    raise DataError(
                        self.directory,
                        f"in use by a run on {host} (PID {holder}); wait for it to "
                        f"finish or choose another --{self.flag}",
                    ) from None
                if holder is not None and holder != os.getpid() and _alive(holder):
                    raise DataError(
                        self.directory,
                        f"in use by another run (PID {holder}); wait for it to finish or choose another --{self.flag}",
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: its writer is gone
                continue
            except OSError as exc:
                raise DataError(self.directory, f"cannot write here ({exc.strerror or exc})") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {_THIS_MACHINE}")
            return self

    def __exit__(self, *exc: object) -> None:
        if _read_holder(self.path) == (os.getpid(), None):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        for folder in self.made:  # rmdir removes only empty folders
            with contextlib.suppress(OSError):
                folder.rmdir()


def _machine():
    """host/boot: a PID means something only on the machine, and since the boot, that wrote it."""
    try:
        boot = pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "unknown-boot"
    return f"{socket.gethostname()}/{boot}"


_THIS_MACHINE = _machine()


def _read_holder(path):
    """(PID, None) of a lock written on this machine since its boot (or in the older bare-PID form); (PID, host)
    of one written on another machine; (None, None) when unreadable. A lock of this host from an earlier boot
    reads as its PID on this machine, which the caller finds stale unless that PID happens to run."""
    try:
        fields = pathlib.Path(path).read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None, None
    if len(fields) < 2 or fields[1] == _THIS_MACHINE:
        return pid, None
    host, _, _ = fields[1].partition("/")
    if host == socket.gethostname():
        return None, None  # this host before its last boot: its writer is gone
    return pid, host


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
