"""Writing results safely: every write is atomic and checked, JSON is strict. A kill or a full disk
never leaves half a file behind under its real name. (Who may write a run directory: locks.py.)"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import hashlib
import io as _stdio
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from blurnet_tf.errors import DataError


def ensure_dir(path: str | os.PathLike[str]) -> pathlib.Path:
    path = pathlib.Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(path, f"cannot create directory ({exc.strerror or exc})") from None
    return path


_HELD: contextvars.ContextVar[dict[pathlib.Path, bytes] | None] = contextvars.ContextVar("held", default=None)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> pathlib.Path:
    """Writes `data` to a PID-named temp file beside `path`, fsyncs it, then renames it into place
    (inside `all_or_nothing()`: held until the block ends).

    On any failure (disk full, no permission) the temp file is removed and a DataError names `path`.
    """
    path = pathlib.Path(path)
    held = _HELD.get()
    if held is not None:
        held[pathlib.Path(os.path.abspath(path))] = data  # one entry per file, however it is spelt
        return path
    _publish([(path, _temp_copy(path, data))])
    return path


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Every write inside the block lands together or not at all: the files are held until the block ends,
    then each is written beside its place (temp file, fsynced) and only when all are written are they
    renamed into place. A full disk, or an error in the block, replaces none of the old files and leaves
    no temp file (a kill between two renames, microseconds, can still leave a mix). A file written in the
    block reads as its old self until the block ends; a block inside another joins the outer one."""
    if _HELD.get() is not None:  # inside another such block: its files land with the outer block's
        yield
        return
    held: dict[pathlib.Path, bytes] = {}
    token = _HELD.set(held)
    try:
        yield
    finally:
        _HELD.reset(token)
    temps: list[tuple[pathlib.Path, pathlib.Path]] = []
    try:
        for path, data in held.items():
            temps.append((path, _temp_copy(path, data)))
    except BaseException:  # a full disk, or Ctrl-C half-way: no temp file stays
        for _, tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    _publish(temps)


def _temp_copy(path: pathlib.Path, data: bytes) -> pathlib.Path:
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DataError(path, f"cannot write ({exc.strerror or exc})") from None
    return tmp


def _publish(temps: list[tuple[pathlib.Path, pathlib.Path]]) -> None:
    for k, (path, tmp) in enumerate(temps):
        try:
            os.replace(tmp, path)
        except OSError as exc:
            for _, left in temps[k:]:
                with contextlib.suppress(OSError):
                    left.unlink()
            raise DataError(path, f"cannot write ({exc.strerror or exc})") from None


def write_text(path: str | os.PathLike[str], text: str) -> pathlib.Path:
    return write_bytes(path, text.encode())


def write_json(path: str | os.PathLike[str], obj: Any) -> pathlib.Path:
    """Strict JSON (NaN and infinity written as null), atomically."""
    text = json.dumps(_strict(obj), indent=2, allow_nan=False, default=_jsonable) + "\n"
    return write_text(path, text)


def read_json(path: str | os.PathLike[str], missing_ok: bool = True) -> Any:
    """The parsed file; None when it does not exist and missing_ok. A corrupt file is a DataError."""
    path = pathlib.Path(path)
    if not path.is_file():
        if missing_ok:
            return None
        raise DataError(path, "file not found")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc}); move it aside to start this result again") from None


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> pathlib.Path:
    buffer = _stdio.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return write_bytes(path, buffer.getvalue())


def save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> pathlib.Path:
    buffer = _stdio.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # (numpy's stub reads the first keyword as allow_pickle)
    return write_bytes(path, buffer.getvalue())


def save_png(path: str | os.PathLike[str], image_rgb: np.ndarray) -> pathlib.Path:
    """An RGB float image in [0,1] as an 8-bit PNG; encoding failures are errors, not empty files."""
    import cv2

    pixels = (np.clip(image_rgb, 0, 1)[..., ::-1] * 255).round().astype(np.uint8)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise DataError(path, "PNG encoding failed")
    return write_bytes(path, encoded.tobytes())


def write_csv(path: str | os.PathLike[str], rows: Iterable[Sequence[Any]]) -> pathlib.Path:
    buffer = _stdio.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return write_text(path, buffer.getvalue())


def move_aside(path: str | os.PathLike[str], why: str) -> pathlib.Path:
    """Renames a corrupt file or directory to <name>.corrupt-<n> (never deletes it); returns the new path."""
    path = pathlib.Path(path)
    n = 0
    while (target := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    os.replace(path, target)
    print(f"warning: {path}: {why}; moved aside to {target.name}", file=sys.stderr, flush=True)
    return target


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating,)) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, np.ndarray):
        return _strict(value.tolist())
    return value


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def package_versions() -> dict[str, Any]:
    """Versions of the stack, stored with every result."""
    import cv2
    import keras
    import scipy
    import tensorflow as tf

    import blurnet_tf

    return {
        "python": sys.version.split()[0],
        "blurnet_tf": blurnet_tf.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "opencv": cv2.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "commit": git_commit(),
    }


def code_digest(root: str | os.PathLike[str] | None = None) -> str:
    """A digest of the code a reproduction runs: every module of blurnet_tf as its syntax tree (docstrings,
    comments and layout left out, so prose edits do not count) and every flagfile. Stored with a result set,
    it tells whether the committed numbers are what the current code writes (tests/test_stored_results.py)."""
    root = pathlib.Path(root or pathlib.Path(__file__).resolve().parents[1])
    digest = hashlib.sha256()
    for path in sorted((root / "blurnet_tf").rglob("*.py")):
        digest.update(f"{path.relative_to(root).as_posix()}\n".encode() + _tree_digest(path) + b"\n")
    for path in sorted((root / "flags").rglob("*.flags")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\n" + path.read_bytes())
    return digest.hexdigest()[:16]


_TREES: dict[bytes, bytes] = {}  # sha256 of a module's text -> sha256 of its tree


def _tree_digest(path: pathlib.Path) -> bytes:
    """sha256 of a module's syntax tree without docstrings; parsed once per distinct text (a pipeline records
    the digest after every step, and parsing is what costs)."""
    import ast

    text = path.read_bytes()
    key = hashlib.sha256(text).digest()
    if key in _TREES:
        return _TREES[key]
    tree = ast.parse(text.decode("utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    _TREES[key] = hashlib.sha256(ast.dump(tree).encode()).digest()
    return _TREES[key]


def cpu_name() -> str:
    """The processor's model name (/proc/cpuinfo), for the records: timings differ 2-3x between machines."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            found = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
        if found:
            return found
    return platform.processor()


def provenance(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Where and when a measurement was made: CPU, cores, commit (of `root`), time. Timings differ 2-3x
    between machines, so every timed record carries it."""
    import time

    return {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "commit": git_commit(root),
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def git_commit(root=None) -> str:
    """Short commit of the checkout (or of `root`), '-dirty' when tracked files differ from it. results/
    is left out: it holds the reports' own outputs, so re-writing a committed report would call its tree dirty."""
    root = root or pathlib.Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"
