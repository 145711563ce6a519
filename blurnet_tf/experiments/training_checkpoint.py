"""A training run's checkpoint: model + optimizer state + history, written as one directory.

Written into checkpoint.<pid>.tmp/, fsynced, then swapped in by renames (checkpoint/ ->
checkpoint.old/, tmp -> checkpoint/, checkpoint.old/ deleted), so at every instant a complete
checkpoint exists under checkpoint/ or checkpoint.old/. A corrupt one is moved aside; one written
with other settings is refused.
"""

import json
import os
import pathlib
import re
import shutil
import time

import keras

from blurnet_tf import files
from blurnet_tf.errors import DataError
from blurnet_tf.registry.model_files import load_model, save_model
from blurnet_tf.rundir import CHECKPOINT_DIR

OLD_SUFFIX = ".old"


class EpochCheckpoint(keras.callbacks.Callback):
    """Every `every` epochs (and at the end) writes model+optimizer and the history as one unit."""

    def __init__(self, out_dir, every, total_epochs, config_hash, history, seconds_before=0.0):
        super().__init__()
        self.seconds_before, self.started = seconds_before, time.time()
        self.out_dir = pathlib.Path(out_dir)
        self.every = every
        self.total_epochs = total_epochs
        self.config_hash = config_hash
        self.history = history

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.total_epochs:
            write_checkpoint(
                self.out_dir,
                self.model,
                {
                    "epochs_done": epoch + 1,
                    "config_hash": self.config_hash,
                    "history": self.history,
                    "train_seconds": None
                    if self.seconds_before is None
                    else self.seconds_before + time.time() - self.started,
                },
            )


def write_checkpoint(out_dir, model, state):
    """Writes checkpoint/ (model.keras, state.json) atomically as one directory."""
    out_dir = pathlib.Path(out_dir)
    ckpt, old = out_dir / CHECKPOINT_DIR, out_dir / (CHECKPOINT_DIR + OLD_SUFFIX)
    tmp = out_dir / f"{CHECKPOINT_DIR}.{os.getpid()}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_model(model, tmp / "model.keras")
        _fsync(tmp / "model.keras")  # save_model renames into place but does not fsync
        files.write_json(tmp / "state.json", state)
        _fsync(tmp)
        if ckpt.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(ckpt, old)  # from here until the next rename only checkpoint.old/ exists
        os.replace(tmp, ckpt)
        _fsync(out_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(ckpt, f"cannot write checkpoint ({exc.strerror or exc})") from None
    shutil.rmtree(old, ignore_errors=True)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)  # a directory too: fsync makes its renames durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A checkpoint's files and the temp names their atomic writes use (files.write_json, registry.save_model).
_CHECKPOINT_NAME = re.compile(r"model\.keras|state\.json|\.state\.json\.\d+\.tmp|\.model\.\d+\.tmp\.keras")


def _ours(path):
    """A directory holding only what write_checkpoint writes (a kill may leave a temp file); a user's folder
    of the same name holds something else."""
    return path.is_dir() and all(_CHECKPOINT_NAME.fullmatch(p.name) for p in path.iterdir())


def recover_checkpoint(out_dir):
    """Finishes a swap that a kill interrupted and removes killed writers' temp directories. A folder of
    those names holding anything else is not ours (--overwrite opened a user's directory): moved aside."""
    out_dir = pathlib.Path(out_dir)
    ckpt, old = out_dir / CHECKPOINT_DIR, out_dir / (CHECKPOINT_DIR + OLD_SUFFIX)
    for leftover in [old, *out_dir.glob(f"{CHECKPOINT_DIR}.*.tmp")]:
        if leftover.exists() and not _ours(leftover):
            files.move_aside(leftover, "not a checkpoint this training wrote; kept")
    if old.exists() and not ckpt.exists():
        os.replace(old, ckpt)  # killed between the two renames: the old checkpoint is the last one
    shutil.rmtree(old, ignore_errors=True)
    for tmp in out_dir.glob(f"{CHECKPOINT_DIR}.*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    return ckpt


def load_checkpoint(ckpt, chash):
    """(model, state), or None when there is no checkpoint or it is corrupt (then moved aside).

    A checkpoint of other settings is a DataError: training over it would lose it silently.
    """
    if not ckpt.exists():
        return None
    try:
        state = json.loads((ckpt / "state.json").read_text())
        state["epochs_done"] = int(state["epochs_done"])
        history, written_with = list(state["history"]), state["config_hash"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _discard(ckpt, "state.json", exc)
    if written_with != chash:
        raise DataError(ckpt, f"checkpoint was written with other settings; use another --out or move {ckpt} aside")
    if state["epochs_done"] < 1 or len(history) != state["epochs_done"]:  # one history entry per epoch
        return _discard(
            ckpt, "state.json", ValueError(f"epochs_done {state['epochs_done']} with {len(history)} epochs of history")
        )
    try:
        model = load_model(ckpt / "model.keras", compile=True)
    except Exception as exc:  # a truncated .keras zip fails in many ways (BadZipFile, EOFError, ...)
        return _discard(ckpt, "model.keras", exc)
    return model, {**state, "history": history}


def _discard(ckpt, name, exc):
    """Moves a corrupt checkpoint aside (kept for a look, never deleted), in one warning line."""
    problem = exc.problem if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
    files.move_aside(ckpt, f"corrupt checkpoint, training starts from scratch ({name}: {problem.splitlines()[0]})")
    return None
