"""Where the data live: resolve the data directory, or download it pinned and checked.

Order: explicit path (a binary's --data_dir) > $BLURNET_DATA > ../shared/data next to the
checkout > the user cache ($BLURNET_CACHE or ~/.cache/blurnet_tf)/data, which is filled
from the public sources in manifest.json.gz (each file pinned to a commit, sha256-checked).
"""

from __future__ import annotations

import concurrent.futures
import gzip
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import urllib.parse
import urllib.request
from typing import Any

from blurnet_tf.errors import DataError

MANIFEST = pathlib.Path(__file__).with_name("manifest.json.gz")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# Public origins, pinned to commits (see manifest.json.gz for each file's sha256).
SOURCES = {
    "phattacks": "https://raw.githubusercontent.com/tongwu2020/phattacks/"
    "7ef10952255c6f1339713d12e68a82b94da0e642/sign/LISA/",
    "rp2": "https://raw.githubusercontent.com/evtimovi/robust_physical_perturbations/"
    "dfd3557df8dda0d6e849c90620412b641d62ae4e/lisa-cnn-attack/",
    "rp2_victims": "https://raw.githubusercontent.com/evtimovi/robust_physical_perturbations/"
    "f9800449e91f719ea600bb1309de11b08d6d017e/lisa-cnn-attack/",
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
}
# The official training files as the mnist source serves them (9,912,422 and 28,881 bytes). A copy
# gzipped anew (../shared/data's: same decompressed bytes) has other hashes, so these are not
# recomputed from the data directory.
MNIST_TRAIN_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
}


def cache_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("BLURNET_CACHE", pathlib.Path.home() / ".cache" / "blurnet_tf"))


def _looks_like_data(path):
    return (path / "lisa").is_dir() and (path / "rp2").is_dir()


def find_data_dir(explicit: str | os.PathLike[str] | None = None, download: bool = True) -> pathlib.Path:
    """Find the data directory, following the documented order.

    Explicit path (a binary's --data_dir) > $BLURNET_DATA > ../shared/data next to the checkout >
    the user cache's data folder, filled from the pinned, sha256-checked sources when `download`.

    Parameters
    ----------
    explicit : str or os.PathLike or None
        A directory given by the user (--data_dir); None looks further.
    download : bool
        Fill the cache's data folder from the public sources if it is used; default True.

    Returns
    -------
    pathlib.Path
        The data directory.

    Raises
    ------
    DataError
        If a directory given by --data_dir or $BLURNET_DATA does not exist, or a download fails.
    """
    for given, origin in ((explicit, "--data_dir"), (os.environ.get("BLURNET_DATA"), "$BLURNET_DATA")):
        if given:
            path = pathlib.Path(given).expanduser()
            if not path.is_dir():
                raise DataError(path, f"data directory given by {origin} does not exist")
            return path
    for candidate in (REPO_ROOT.parent / "shared" / "data", pathlib.Path.cwd().parent / "shared" / "data"):
        if _looks_like_data(candidate):
            return candidate
    cached = cache_root() / "data"
    if download:
        fetch_all(cached)
    return cached


def load_manifest() -> dict[str, Any]:
    with gzip.open(MANIFEST, "rt") as f:
        return json.load(f)


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _url(entry_source, remote, relpath, mirror):
    if mirror:  # a mirror serves the data directory's own layout (used by the tests)
        return mirror.rstrip("/") + "/" + urllib.parse.quote(relpath)
    return SOURCES[entry_source] + urllib.parse.quote(remote)


def _fetch_one(url, target, sha256, timeout):
    """Downloads url to target atomically: a partial or corrupt file never reaches target."""
    if target.is_file() and sha256_of(target) == sha256:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        got = sha256_of(tmp)
        if got != sha256:
            raise DataError(url, f"sha256 mismatch: expected {sha256}, got {got}; nothing was cached")
        os.replace(tmp, target)
    except DataError:
        raise
    except OSError as exc:  # URLError, timeouts, truncated bodies
        raise DataError(url, f"download failed ({exc}); nothing was cached") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch_all(
    dest: str | os.PathLike[str],
    mirror: str | None = None,
    manifest: dict[str, Any] | None = None,
    workers: int = 8,
    timeout: float = 60,
) -> pathlib.Path:
    """Fills dest with every manifest file that is missing or wrong; returns dest."""
    dest = pathlib.Path(dest)
    manifest = manifest or load_manifest()
    done_marker = dest / ".complete"
    if done_marker.is_file():
        return dest
    entries = manifest["files"]
    print(f"blurnet_tf: downloading {len(entries)} data files into {dest}", flush=True)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [
            pool.submit(_fetch_one, _url(src, remote, rel, mirror), dest / rel, sha, timeout)
            for rel, (src, remote, sha) in entries.items()
        ]
        for future in concurrent.futures.as_completed(futures):
            future.result()
    done_marker.write_text("ok\n")
    return dest


def build_manifest(data_dir: str | os.PathLike[str]) -> int:
    """Maintainers: regenerate manifest.json.gz from a verified copy of the data."""
    data_dir = pathlib.Path(data_dir)
    files = {}

    def add(rel, source, remote):
        files[rel] = [source, remote, sha256_of(data_dir / rel)]

    for split in ("train", "val"):
        for path in sorted((data_dir / "lisa" / split).glob("*/*.png")):
            rel = path.relative_to(data_dir).as_posix()
            add(rel, "phattacks", rel[len("lisa/") :])
    for path in sorted((data_dir / "rp2" / "victim-set").glob("*.png")):
        add(f"rp2/victim-set/{path.name}", "rp2_victims", f"victim-set/{path.name}")
    for name in ("masks/octagon.png", "masks/mask_l1loss_uniform_rectangles.png", "npstriplets.txt", "mapping.txt"):
        add(f"rp2/{name}", "rp2", name)
    run = "l1basedmask_uniformrectangles"
    for suffix in (".index", ".data-00000-of-00001"):
        add(f"rp2/original-lisa-cnn/{run}-350{suffix}", "rp2", f"optimization_output/{run}/model/{run}-350{suffix}")
    for run in ("l1basedmask_uniformrectangles", "noinversemask_second_trial_run"):
        add(
            f"rp2/reference-logs/optimization_printout_{run}.txt",
            "rp2",
            f"optimization_output/{run}/optimization_printout_{run}.txt",
        )
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        add(f"mnist/{name}", "mnist", name)
    for name, sha in MNIST_TRAIN_SHA256.items():  # pinned: a local copy may be gzipped anew
        files[f"mnist/{name}"] = ["mnist", name, sha]
    with gzip.open(MANIFEST, "wt") as f:
        json.dump({"sources": SOURCES, "files": files}, f, separators=(",", ":"))
    return len(files)
