"""The pipeline's executor on a two-node Ray cluster (issue #31): seconds-long steps that write records
through the real step machinery run across both nodes, the second node is lost while it runs a step,
the step is retried on the head, and every record equals a one-node run of the same steps.

The whole smoke reproduction is covered once, by the local smoke test (test_reproduce_smoke.py); here a
micro plan of probe steps (probe_experiments.chained_steps: independent steps, then steps reading two
earlier ones) keeps the cluster's own properties at a minute of mostly waiting, which runs in the background
from the session's start (`two_node_run` in conftest.py: tests/ray_two_nodes.py in a namespace whose only
network is loopback and whose processes all end with it)."""

import pytest

from conftest import TWO_NODE_KILL_AFTER

pytestmark = pytest.mark.slow


def test_steps_survive_losing_one_of_two_nodes_and_match_the_one_node_run(two_node_run):
    run = two_node_run.result()
    assert run["error"] is None, run["tail"]
    assert run["killed_after"] is not None and run["killed_after"] >= TWO_NODE_KILL_AFTER and len(run["nodes"]) == 2, run
    # The steps the second node was running when it died were retried on the head, and finished there.
    assert run["retried"] and all(node not in (None, run["second"]) for node in run["retried"].values()), run
    # i for the first five; i plus its two inputs' values after (probe_experiments.chained_steps)
    assert list(run["one_node"].values()) == [0, 1, 2, 3, 4, 6, 9, 12, 15, 19]
    assert run["values"] == run["one_node"] and run["finished"] == len(run["one_node"]), run
