"""The downloader against a loopback HTTP server serving ../shared/data."""

import functools
import http.server
import threading

import pytest

from blurnet_tf.data import sources
from blurnet_tf.errors import DataError

SOME = ("rp2/victim-set/1.png", "rp2/masks/octagon.png", "rp2/npstriplets.txt", "mnist/t10k-labels-idx1-ubyte.gz")


class _TruncatingHandler(http.server.SimpleHTTPRequestHandler):
    """Announces the full length but sends half the body, then drops the connection."""

    def do_GET(self):
        body = b"x" * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:500])
        self.wfile.flush()
        self.close_connection = True


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def mirror(data_dir):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(data_dir))
    handler.log_message = lambda *a, **k: None
    server = _serve(handler)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _subset(n_lisa=3):
    files = sources.load_manifest()["files"]
    keep = {k: v for k, v in files.items() if k in SOME}
    keep.update({k: files[k] for k in sorted(k for k in files if k.startswith("lisa/train/13/"))[:n_lisa]})
    return {"files": keep}


def test_manifest_covers_the_data_and_pins_commits(data_dir):
    manifest = sources.load_manifest()
    assert len(manifest["files"]) == 3509 + 1148 + 40 + 4 + 2 + 2 + 2 + 2  # + the MNIST training files
    rel = "rp2/victim-set/1.png"
    assert manifest["files"][rel][2] == sources.sha256_of(data_dir / rel)
    for url in sources.SOURCES.values():
        assert url.startswith("https://")
    assert "7ef10952255c6f1339713d12e68a82b94da0e642" in sources.SOURCES["phattacks"]


def test_download_from_loopback_matches_the_files(tmp_path, mirror, data_dir):
    manifest = _subset()
    dest = sources.fetch_all(tmp_path / "data", mirror=mirror, manifest=manifest)
    for rel in manifest["files"]:
        assert (dest / rel).read_bytes() == (data_dir / rel).read_bytes()
    assert (dest / ".complete").is_file()


def test_checksum_mismatch_is_a_clear_error_and_caches_nothing(tmp_path, mirror):
    manifest = _subset(0)
    rel = "rp2/npstriplets.txt"
    manifest["files"] = {rel: [*manifest["files"][rel][:2], "0" * 64]}
    with pytest.raises(DataError, match="sha256 mismatch"):
        sources.fetch_all(tmp_path / "data", mirror=mirror, manifest=manifest)
    assert not (tmp_path / "data" / rel).exists()
    assert not list((tmp_path / "data").rglob(".part-*"))
    assert not (tmp_path / "data" / ".complete").exists()


def test_partial_download_leaves_no_corrupt_cache(tmp_path):
    server = _serve(_TruncatingHandler)
    try:
        manifest = {"files": {"rp2/mapping.txt": ["rp2", "mapping.txt", "0" * 64]}}
        with pytest.raises(DataError, match="download failed|sha256 mismatch"):
            sources.fetch_all(
                tmp_path / "data", mirror=f"http://127.0.0.1:{server.server_address[1]}", manifest=manifest, timeout=5
            )
    finally:
        server.shutdown()
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


def test_data_dir_order(tmp_path, monkeypatch, data_dir):
    monkeypatch.delenv("BLURNET_DATA", raising=False)
    assert sources.find_data_dir(download=False).resolve() == data_dir.resolve()
    monkeypatch.setenv("BLURNET_DATA", str(tmp_path))
    assert sources.find_data_dir(download=False) == tmp_path
    other = tmp_path / "explicit"
    other.mkdir()
    assert sources.find_data_dir(str(other), download=False) == other
    with pytest.raises(DataError, match="--data_dir"):
        sources.find_data_dir(str(tmp_path / "nope"))
