"""What the Ray executor checks of the cluster before the first step, and what it records of each step's
node: an address that answers, resources some node can hold, a run directory and repository every node
sees, and where a step ran."""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator

from blurnet_tf import files
from blurnet_tf.errors import DataError, SettingError


# An HTTP/2 client's opening (RFC 9113 §3.4): the preface and an empty SETTINGS frame. Ray's GCS and client
# server speak gRPC, so their first frame back is a SETTINGS frame; anything else listening there is not Ray.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4


_ANSWERED: set[str] = set()  # addresses that answered as Ray in this process


def check_reachable(address: str, source: str = "--address") -> None:
    """Refuses at once, in one line, an address that is not `auto` or host:port, or where no Ray answers:
    nothing listens (Ray itself retries for minutes), or what listens does not speak gRPC (Ray would hang
    printing its C++ warnings). `source` names where the address came from (the flag or RAY_ADDRESS)."""

    def refuse(problem):
        if source.startswith("--"):
            raise SettingError(source[2:], problem)
        raise DataError(f"environment variable {source}", problem)

    if address == "auto" or address in _ANSWERED:  # probed once per process (reproduce, then run_all)
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535 or "/" in host:
        refuse(f"expected host:port (port 1-65535), ray://host:port or 'auto', got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as conn:
            if os.environ.get("RAY_USE_TLS", "0") in ("1", "true"):
                _ANSWERED.add(address)
                return  # a TLS handshake comes first: the plain probe below would fail a good cluster
            conn.settimeout(5)
            conn.sendall(_HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except socket.gaierror as error:
        refuse(f"no Ray cluster answers at {address} (unknown host: {error.strerror})")
    except UnicodeError:  # IDNA: a label over 63 characters, a name over 253
        refuse(f"expected host:port with a valid host name, got {address!r}")
    except TimeoutError:
        head = b""
    except OSError as error:
        refuse(f"no Ray cluster answers at {address} ({error.strerror or error})")
    if len(head) < 9 or head[3] != _SETTINGS:
        refuse(
            f"no Ray cluster answers at {address} (something listens there, but it does not answer as Ray's "
            "gRPC server does)"
        )
    _ANSWERED.add(address)


@contextlib.contextmanager
def captured_stderr(show: bool) -> Iterator[list[str]]:
    """Holds back what this process (and its C++ code) writes to stderr inside the block; the list it yields
    holds those lines after the block. show: write them out afterwards, as they came."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines.extend(held.read().decode(errors="replace").splitlines())
            if show and lines:
                sys.stderr.write("\n".join(lines) + "\n")


def check_fits(ray, cpus, gpus):
    """A step that no node can hold would wait for ever: refused in one line instead."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    for field, need, key in (("cpus_per_step", cpus, "CPU"), ("gpus_per_step", gpus, "GPU")):
        most = max((n.get(key, 0.0) for n in nodes), default=0.0)
        if need > most:
            raise SettingError(field, f"a step asks for {need:g} {key}s, the largest Ray node has {most:g}")


def placement() -> dict:
    """Where this task runs and with what (recorded in step.json)."""
    import ray

    context = ray.get_runtime_context()
    return {
        "node_id": context.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "host": socket.gethostname(),
        "resources": context.get_assigned_resources(),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
    }


def check_shared(directory: pathlib.Path) -> None:
    """Every node must see the run directory: a token written here is read by a task on each node."""
    token = files.ensure_dir(directory) / f".visible-{uuid.uuid4().hex}"
    files.write_text(token, "ok")
    try:
        blind = nodes_not_seeing(os.fspath(token.resolve()))
    finally:
        token.unlink()
    if blind:
        raise DataError(
            directory,
            f"not visible on node {', '.join(blind)}: every Ray node must see the run "
            f"directory and the repository ({os.getcwd()}) at the same paths (a shared filesystem)",
        )


def nodes_not_seeing(path: str) -> list[str]:
    """The addresses of the live nodes on which `path` is not a file (one task pinned to each node)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"]]
    asked = [
        ray.remote(_sees)
        .options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
        .remote(path, os.getcwd())
        for n in nodes
    ]
    blind = []
    for node, ref in zip(nodes, asked):
        try:
            if not ray.get(ref):
                blind.append(node["NodeManagerAddress"])
        except ray.exceptions.TaskUnschedulableError:  # a node that died since Ray last listed it runs no step
            continue
    return blind


def _sees(path, cwd):
    return pathlib.Path(path).is_file() and pathlib.Path(cwd).is_dir()  # the run directory and the repository
