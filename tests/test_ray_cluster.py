"""The pipeline on a two-node Ray cluster (issue #31): the smoke reproduction runs across both nodes,
loses the second node mid-run, and finishes with every record equal to the one-node run of the same
profile (the session's `smoke_run`: one local node, two places of one CPU each, as here).

The cluster lives in a namespace of its own (unshare: network with loopback only, PIDs): its nodes
are reachable from nothing else, and the test's end stops every process in it."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
KILL_AFTER = 12  # steps finished before the second node is killed
SKIPPED_FIELDS = ("commit", "dirty")


def _namespaces_available():
    if not (sys.platform.startswith("linux") and shutil.which("unshare") and shutil.which("ip")):
        return False
    return subprocess.run(["unshare", "-rnpf", "--mount-proc", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _namespaces_available(), reason="needs unprivileged user, network and PID namespaces")
def test_the_smoke_run_survives_losing_one_of_two_nodes_and_matches_the_one_node_run(tmp_path, data_dir, smoke_run):
    import dataclasses

    from blurnet_tf.reports import flat_records

    one_node = smoke_run.result()  # first: the two runs would share the two cores
    script = 'ip link set lo up && exec "$0" "$@"'
    proc = subprocess.run(["unshare", "-rnpf", "--mount-proc", "sh", "-c", script, sys.executable,
                           str(ROOT / "tests" / "ray_two_nodes.py"), str(tmp_path / "work"), str(tmp_path / "results"),
                           str(data_dir), str(KILL_AFTER)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    assert run["returncode"] == 0, run["tail"]
    assert run["killed_after"] is not None and run["killed_after"] >= KILL_AFTER and len(run["nodes"]) == 2, run
    # The steps the second node was running when it died were retried on the head, and finished there.
    assert run["retried"] and all(node not in (None, run["second"]) for node in run["retried"].values()), run

    def records(results):
        rows = flat_records.read(results / "smoke" / flat_records.JSON_FILE)
        return sorted((tuple((k, v) for k, v in dataclasses.asdict(r).items() if k not in SKIPPED_FIELDS) for r in rows),
                      key=repr)

    two, one = records(tmp_path / "results"), records(one_node.results)
    assert len(two) == len(one) and two == one, [a for a, b in zip(two, one) if a != b][:5]
