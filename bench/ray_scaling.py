"""Ray executor scaling: a fixed set of CPU-bound steps on one node with 1 CPU, then on two nodes with
1 CPU each, alternated `--repeats` times; prints each pair's wall-clock ratio and Ray's overhead per step
(one node's wall time less the steps' own work, over the steps).

Run it in a namespace whose only network is loopback (the nodes are reachable from nothing else, and
every process dies with it):

    unshare -rnpf --mount-proc sh -c 'ip link set lo up && exec .venv/bin/python bench/ray_scaling.py'
"""

import argparse
import dataclasses
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from ray_two_nodes import RAY, free_port, kill_tree, start_node, wait_for  # noqa: E402 (the tests' loopback cluster)


@dataclasses.dataclass(frozen=True)
class Spin:
    """A step that keeps one core busy for `seconds` (pure Python: one thread, no I/O)."""

    seconds: float
    tag: int = 0

    def run(self, out):
        end = time.process_time() + self.seconds
        while time.process_time() < end:
            pass
        (out / "done.txt").write_text("ok")


def run_steps(address, n, seconds, root):
    from blurnet_tf.pipeline.ray_executor import run_all
    from blurnet_tf.pipeline.steps import Step

    steps = [Step(f"spin/{i}", "spin", root / f"s{i}", experiment=Spin(seconds, i)) for i in range(n)]
    started = time.time()
    run_all(steps, log=lambda m: None, address=address, cpus_per_step=1)
    return time.time() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="each step's CPU time")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import os
    import secrets

    # Before Ray is imported (it reads them then): a token of this run only.
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
    import ray

    port = free_port()  # never a port another Ray instance here holds
    head = start_node(
        "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={tempfile.mkdtemp(prefix='blurnet-ray-')}"
    )
    address = f"127.0.0.1:{port}"
    wait_for(lambda: subprocess.run([RAY, "status", f"--address={address}"], capture_output=True).returncode == 0)
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    ratios, overheads = [], []
    try:
        for _ in range(args.repeats):
            one = run_steps(None, args.steps, args.seconds, pathlib.Path(tempfile.mkdtemp()))
            second = start_node(f"--address={address}")
            wait_for(lambda: sum(n["Alive"] for n in ray.nodes()) == 2)
            two = run_steps(None, args.steps, args.seconds, pathlib.Path(tempfile.mkdtemp()))
            kill_tree(second.pid)
            wait_for(lambda: sum(n["Alive"] for n in ray.nodes()) == 1)
            ratios.append(one / two)
            overheads.append((one - args.steps * args.seconds) / args.steps)
            print(
                f"one node {one:.1f} s, two nodes {two:.1f} s: {one / two:.2f}x; "
                f"overhead {overheads[-1]:.2f} s per step",
                flush=True,
            )
    finally:
        ray.shutdown()
        kill_tree(head.pid)
    print(
        f"{args.steps} steps of {args.seconds:g} s CPU, {args.repeats} pairs: two nodes / one node median "
        f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}); Ray's overhead per "
        f"step median {statistics.median(overheads):.2f} s"
    )


if __name__ == "__main__":
    main()
