"""LISA traffic-sign crops: loading, the 18-index label space and a track-held-out split.

Labels follow the original RP2 LISA-CNN: model index = position in LISA17_CLASSES + 1
(index 0 is a class the RP2 mapping never names; speedLimitUrdbl, 13, has no crops)."""

from __future__ import annotations

import csv
import hashlib
import os
import pathlib
import re
import zipfile
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from blurnet_tf.files import move_aside, save_npz
from blurnet_tf.data.images import IMAGE_SIZE, read_rgb
from blurnet_tf.data.sources import cache_root
from blurnet_tf.errors import DataError

LISA17_CLASSES = (
    "addedLane",
    "keepRight",
    "laneEnds",
    "merge",
    "pedestrianCrossing",
    "school",
    "schoolSpeedLimit25",
    "signalAhead",
    "speedLimit25",
    "speedLimit30",
    "speedLimit35",
    "speedLimit45",
    "speedLimitUrdbl",
    "stop",
    "stopAhead",
    "turnRight",
    "yield",
)
NUM_CLASSES = 18
EXPECTED_CLASSES = tuple(c for c in LISA17_CLASSES if c != "speedLimitUrdbl")  # the public crops have no Urdbl
CLASS_NAMES = ("unnamed",) + LISA17_CLASSES  # indexed by model output
STOP = CLASS_NAMES.index("stop")  # 14
SPEED_LIMIT_45 = CLASS_NAMES.index("speedLimit45")  # 12

_TRACK = re.compile(r"([A-Za-z0-9]+_\d+\.avi)")


def track_of(filename: str | os.PathLike[str]) -> str:
    """The video a crop comes from, e.g. 'stop_1331866280.avi' (frames of one track share it)."""
    match = _TRACK.search(os.path.basename(filename))
    return match.group(1) if match else os.path.basename(filename)


class LisaData:
    """Decoded LISA crops with their labels, file names and video tracks.

    Parameters
    ----------
    images : np.ndarray
        Crops [N, 32, 32, 3], float32 in [0, 1].
    labels : np.ndarray
        Model class indices [N], int32 (see CLASS_NAMES).
    names : sequence of str or np.ndarray
        Each crop's file name [N] (relative to the LISA root, or the annotated frame).

    Attributes
    ----------
    tracks : np.ndarray
        Each crop's video track [N] (track_of its name); frames of one track share it.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, names: Sequence[str] | np.ndarray) -> None:
        self.images = images
        self.labels = labels
        self.names = np.asarray(names)
        self.tracks = np.asarray([track_of(n) for n in names])

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray | slice) -> LisaData:
        """The crops at `index` (integer indices [K], a boolean mask [N] or a slice), as a new LisaData."""
        return LisaData(self.images[index], self.labels[index], self.names[index])


def _class_dirs(root):
    """Class-index folders under root, or under root/train and root/val when those exist."""
    roots = [root / s for s in ("train", "val") if (root / s).is_dir()] or [root]
    dirs = [d for r in roots for d in sorted(r.iterdir()) if d.is_dir() and d.name.isdigit()]
    if not dirs:
        raise DataError(root, "no class-index folders (0..16) found")
    return dirs


def _fingerprint(paths):
    digest = hashlib.sha256()
    for p in paths:
        st = p.stat()
        digest.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def load_lisa_folder(root: str | os.PathLike[str], cache: bool = True) -> LisaData:
    """Loads class-index folders of crops (any size; resized to 32x32 with area interpolation).
    Decoded arrays are cached as .npz (no pickle) keyed by the files' names, sizes and mtimes."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(root, "LISA directory not found")
    files, labels = [], []
    for d in _class_dirs(root):
        k = int(d.name)
        if k >= len(LISA17_CLASSES):
            raise DataError(d, f"class folder index {k} is outside the 17-class LISA list")
        pngs = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
        if not pngs:
            raise DataError(d, "class folder is empty")
        files += pngs
        labels += [k + 1] * len(pngs)
    names = [p.relative_to(root).as_posix() for p in files]
    cache_file = cache_root() / "arrays" / f"lisa-{_fingerprint(files)}.npz"
    if cache and cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                return LisaData(z["images"], z["labels"], list(z["names"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # truncated by a kill or full disk
            move_aside(cache_file, f"unreadable array cache ({type(exc).__name__}); rebuilding it from the PNGs")
    images = np.stack([read_rgb(p, IMAGE_SIZE) for p in files])
    data = LisaData(images, np.asarray(labels, np.int32), names)
    if cache:
        save_npz(cache_file, images=data.images, labels=data.labels, names=data.names)
    return data


def load_lisa_annotations(root: str | os.PathLike[str], cache: bool = True) -> LisaData:
    """Official LISA archive layout: allAnnotations.csv (';'-separated) plus the frames.
    Crops every annotated box whose tag is one of the 17 classes; other tags are skipped."""
    root = pathlib.Path(root)
    csv_path = root / "allAnnotations.csv"
    if not csv_path.is_file():
        raise DataError(csv_path, "annotation file not found")
    images, labels, names = [], [], []
    with open(csv_path, newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader, None)
        if not header or "Filename" not in header[0]:
            raise DataError(csv_path, "missing the 'Filename;Annotation tag;...' header")
        for line_no, row in enumerate(reader, start=2):
            if len(row) < 6:
                raise DataError(csv_path, f"line {line_no}: expected at least 6 fields")
            tag = row[1]
            if tag not in LISA17_CLASSES:
                continue
            frame_path = root / row[0]
            frame = cv2.imread(str(frame_path), cv2.IMREAD_COLOR)
            if frame is None:
                raise DataError(frame_path, "frame named in allAnnotations.csv is missing or unreadable")
            x0, y0, x1, y1 = (int(v) for v in row[2:6])
            crop = frame[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1]
            if crop.size == 0:
                raise DataError(csv_path, f"line {line_no}: empty box {x0},{y0},{x1},{y1}")
            crop = cv2.resize(
                cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA
            )
            images.append(crop.astype(np.float32) / 255.0)
            labels.append(LISA17_CLASSES.index(tag) + 1)
            names.append(row[0])
    if not images:
        raise DataError(csv_path, "no annotation of the 17 LISA classes")
    return LisaData(np.stack(images), np.asarray(labels, np.int32), names)


def load_lisa(root: str | os.PathLike[str], cache: bool = True) -> LisaData:
    """Load LISA crops from either layout: allAnnotations.csv at root, or class-index folders.

    Parameters
    ----------
    root : str or os.PathLike
        The LISA directory.
    cache : bool
        Read and write the folder layout's .npz cache of decoded arrays; default True.

    Returns
    -------
    LisaData
        Every crop (resized to 32x32), labelled with its model index.

    Raises
    ------
    DataError
        If the directory, its class folders or annotations are missing, empty or unreadable.
    """
    root = pathlib.Path(root)
    if (root / "allAnnotations.csv").is_file():
        return load_lisa_annotations(root, cache)
    return load_lisa_folder(root, cache)


def track_split(data: LisaData, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split deterministically, holding whole video tracks out.

    Tracks are visited in a seeded random order; a track goes to test when that brings its
    majority class closer to test_fraction of that class's images.

    Parameters
    ----------
    data : LisaData
        The crops to split.
    test_fraction : float
        Share of each class's images to aim for in test; default 0.2.
    seed : int
        Seed of the track order; default 0.

    Returns
    -------
    train_idx, test_idx : np.ndarray
        Integer indices into `data` of the training and test crops.
    """
    tracks = np.unique(data.tracks)
    order = np.random.default_rng(seed).permutation(len(tracks))
    class_total = np.bincount(data.labels, minlength=NUM_CLASSES)
    in_test = np.zeros(NUM_CLASSES)
    test_tracks = set()
    for t in tracks[order]:
        member = data.tracks == t
        counts = np.bincount(data.labels[member], minlength=NUM_CLASSES)
        c = int(np.argmax(counts))
        goal = test_fraction * class_total[c]
        if abs(in_test[c] + counts[c] - goal) < abs(in_test[c] - goal):
            test_tracks.add(t)
            in_test += counts
    is_test = np.isin(data.tracks, list(test_tracks))
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def class_counts(labels: np.ndarray) -> dict[str, int]:
    """{class name: count} over the 18 model indices that occur."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    return {CLASS_NAMES[i]: int(n) for i, n in enumerate(counts) if n}


def split_report(data: LisaData, train_idx: np.ndarray, test_idx: np.ndarray) -> dict[str, Any]:
    """Summarise a split: per-class image counts plus its track counts (stored in metrics.json).

    Parameters
    ----------
    data : LisaData
        The crops that were split.
    train_idx, test_idx : np.ndarray
        Integer indices [K] into `data` of each split (as track_split returns them).

    Returns
    -------
    dict
        {"train_images", "test_images", "train_tracks", "test_tracks": int,
        "per_class": {class name: [train count, test count]}} over the classes that occur.
    """
    train_counts = class_counts(data.labels[train_idx])
    test_counts = class_counts(data.labels[test_idx])
    return {
        "train_images": int(len(train_idx)),
        "test_images": int(len(test_idx)),
        "train_tracks": int(len(np.unique(data.tracks[train_idx]))),
        "test_tracks": int(len(np.unique(data.tracks[test_idx]))),
        "per_class": {
            n: [train_counts.get(n, 0), test_counts.get(n, 0)]
            for n in CLASS_NAMES
            if n in train_counts or n in test_counts
        },
    }


def format_split_report(report: dict[str, Any]) -> str:
    lines = [f"{'class':20s} {'train':>6s} {'test':>6s}"]
    lines += [f"{n:20s} {a:6d} {b:6d}" for n, (a, b) in report["per_class"].items()]
    lines.append(
        f"{'total':20s} {report['train_images']:6d} {report['test_images']:6d}"
        f"  ({report['train_tracks']} / {report['test_tracks']} tracks)"
    )
    return "\n".join(lines)


def dataset_hash(data: LisaData) -> str:
    """A content hash of the decoded images and labels, stored with every result."""
    digest = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
    digest.update(data.labels.tobytes())
    return digest.hexdigest()[:16]
