"""Atomic result files and run metadata: a kill never leaves half a file behind."""

import json
import os
import pathlib
import platform
import subprocess
import sys

import numpy as np


def save_npz(path, **arrays):
    """Writes an .npz atomically (temp file + rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)



def write_json(path, obj):
    """Writes JSON atomically (temp file + rename), so a kill never leaves half a file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")
    os.replace(tmp, path)


def read_json(path):
    """The parsed JSON file, or None when it does not exist (a step that has not run yet)."""
    path = pathlib.Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def package_versions():
    """Versions of the stack, stored with every result."""
    import cv2
    import keras
    import scipy
    import tensorflow as tf

    import blurnet_tf

    return {"python": sys.version.split()[0], "blurnet_tf": blurnet_tf.__version__,
            "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "opencv": cv2.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "commit": git_commit()}


def git_commit():
    root = pathlib.Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def ensure_dir(path):
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
