"""The pipeline's executor on a two-node Ray cluster on this machine, the second node killed mid-run.

The steps are probe_experiments.chained_steps: seconds-long in-process steps that write records through
the real step machinery (run_all, run_step, the step markers, rundir's records). Run inside a fresh
network and PID namespace (`unshare -rnpf --mount-proc`, see test_ray_cluster.py): its only network
interface is loopback, so the nodes can be reached from nothing else, and every process it starts dies
with it. Prints one JSON line: the run's outcome, when the node was killed, which nodes the steps ran
on, where the cut steps finished, every step's recorded value, and how a second run ended when the head
node was killed under it.

    python tests/ray_two_nodes.py WORK KILL_AFTER
"""

import json
import os
import pathlib
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

RAY = pathlib.Path(sys.executable).with_name("ray")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(*args):
    """`ray start ... --block` in a process group of its own (killed by process group id)."""
    return subprocess.Popen(
        [RAY, "start", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats", "--block", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(condition, timeout=120.0):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError("the Ray cluster did not come up")
        time.sleep(0.5)


def live_nodes():
    import ray

    return sum(n["Alive"] for n in ray.nodes())


def main(work, kill_after):
    # Token authentication with a token of this run only, so nothing else could join even on loopback.
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
    address = f"127.0.0.1:{free_port()}"
    head = start_node(
        "--head",
        f"--port={address.split(':')[1]}",
        "--include-dashboard=false",
        f"--temp-dir={tempfile.mkdtemp(prefix='blurnet-ray-')}",
    )  # no other Ray instance's files
    import ray

    from blurnet_tf import rundir
    from blurnet_tf.pipeline.ray_executor import run_all
    from probe_experiments import chained_steps

    wait_for(lambda: subprocess.run([RAY, "status", f"--address={address}"], capture_output=True).returncode == 0)
    # Beside the run: a reproduction holding another token must be refused in one line naming the token (Ray
    # itself retries for about 20 s, then reports that no cluster answers). Mostly waiting: it costs no wall time.
    wrong_token = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "blurnet_tf.cli.reproduce",
            "--profile=smoke",
            f"--address={address}",
            f"--work_dir={work}-wrong-token/work",
            f"--results_dir={work}-wrong-token/results",
            "--steps=train/baseline",
        ],
        env={**os.environ, "RAY_AUTH_TOKEN": secrets.token_hex(16)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    second = start_node(f"--address={address}")
    wait_for(lambda: live_nodes() == 2)
    second_id = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" not in n["Resources"])
    ray.shutdown()
    steps, lines, state = chained_steps(work), [], {"done": 0, "killer": None}

    def log(line):
        lines.append(line)
        state["done"] += bool(re.match(r"\[\d+/\d+\] \S+: \S+ done in", line))
        if state["killer"] is None and state["done"] >= kill_after:
            state["killer"] = Killer(work, second, second_id, state["done"])
            state["killer"].start()

    try:
        run_all(steps, log=log, address=address)
        error = None
    except Exception as exc:  # reported, not raised: the test shows it with the run's lines
        error = f"{type(exc).__name__}: {exc}"
    killer = state["killer"]
    if killer:
        killer.join(5)
    killed_at, cut = (killer.killed_at, killer.cut) if killer else (None, [])
    refused = wrong_token.communicate(timeout=120)[1].strip().splitlines()
    head_lost = lose_the_head(address, head, f"{work}-head-lost")
    placed = {p.parent: json.loads(p.read_text()).get("placement") or {} for p in pathlib.Path(work).rglob("step.json")}
    nodes = sorted({where.get("node_id") for where in placed.values()} - {None})
    retried = {str(d): placed.get(d, {}).get("node_id") for d in cut}  # where the cut steps finished
    values = {s.name: (rundir.ResultRecord.read_values(s.out / rundir.RESULTS_FILE) or {}).get("value") for s in steps}
    print(
        json.dumps(
            {
                "error": error,
                "killed_after": killed_at,
                "nodes": nodes,
                "second": second_id,
                "retried": retried,
                "values": values,
                "finished": len(placed),
                "tail": "".join(f"{line}\n" for line in lines[-30:]),
                "wrong_token": [wrong_token.returncode, refused],
                "head_lost": head_lost,
            }
        )
    )


# A runner as the reproduce binary runs it (cli.run around run_all_watched), its steps 30 s long.
_RUNNER = """
import sys
sys.path.insert(0, "tests")
from blurnet_tf import cli
from blurnet_tf.pipeline.ray_executor import run_all_watched
from probe_experiments import chained_steps
cli.run(lambda argv: run_all_watched(chained_steps(sys.argv[2], count=4, sleep=30.0), log=print, address=sys.argv[1]))
"""


def lose_the_head(address, head, work):
    """Kills the head node (and its workers) while a runner's step runs there: [exit status, stderr lines,
    seconds from the kill to the runner's end]."""
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, address, work], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while runner.poll() is None and not any(pathlib.Path(work).rglob("step.pending.json")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    kill_tree(head.pid)
    killed = time.time()
    _, stderr = runner.communicate(timeout=120)
    return [runner.returncode, stderr.strip().splitlines(), time.time() - killed]


class Killer(threading.Thread):
    """Kills the second node while a step it started 0.8-2.2 s ago still runs (the probe steps take 3 s),
    so that the step is cut half-way and must be retried on the head."""

    def __init__(self, work, node, node_id, done):
        super().__init__(daemon=True)
        self.work, self.node, self.node_id, self.done, self.killed_at, self.cut = work, node, node_id, done, None, []

    def run(self):
        while self.node.poll() is None:
            cut = [
                d
                for d, age in running_on(self.work, self.node_id)
                if 0.8 < age < 2.2 and not (d / "step.json").exists()
            ]
            if cut:
                kill_tree(self.node.pid)  # the second node and everything it runs, as a machine failure would
                self.killed_at, self.cut = self.done, cut
                return
            time.sleep(0.2)


def kill_tree(root):
    """SIGKILLs `root` and all its descendants (a Ray node's workers are its raylet's children, in
    process groups of their own, and finish their task unless killed too)."""
    children = {}
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(pid)
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def running_on(work, node_id):
    """(step directory, seconds since it started) of the unfinished steps started on `node_id`."""
    found = []
    for marker in pathlib.Path(work).rglob("step.pending.json"):
        try:
            where, age = json.loads(marker.read_text()).get("placement") or {}, time.time() - marker.stat().st_mtime
        except (OSError, ValueError):  # finished meanwhile
            continue
        if where.get("node_id") == node_id:
            found.append((marker.parent, age))
    return found


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
