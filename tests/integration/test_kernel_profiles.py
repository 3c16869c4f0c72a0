"""Kernel profiles on real clusters: what each coordinator and node run, and what 5.19 refuses."""

import pytest

from node.api.v1 import pcpsim_pb2 as pb
from tests.integration.conftest import assert_audit_ok, python_module
from tests.integration.test_drain import drain

DONE, FAILED = pb.DrainAllReply.DONE, pb.DrainAllReply.FAILED


def test_5_19_drains_by_workqueue_and_refuses_a_remote_drain(make_cluster):
    """A 5.19 cluster reports its kernel and defaults to workqueue drains, which empty every CPU; a remote
    drain fails on every CPU (a local_lock no other CPU can take) and takes nothing; the audit is ok."""
    h = make_cluster(["housekeeping", "idle"], kernel="5.19", strategy=None)
    state = h.state()
    assert state.kernel == "5.19" and state.default_strategy == pb.STRATEGY_WORKQUEUE
    h.pause_with_pages([0])
    free0, counts = h.frozen()
    reply = drain(h, pb.STRATEGY_REMOTE, force=True)
    assert reply.status == FAILED and all("local_lock" in c.error for c in reply.cpus), reply
    assert h.frozen() == (free0, counts)
    reply = drain(h, force=True)
    assert reply.status == DONE and reply.strategy == pb.STRATEGY_WORKQUEUE
    assert {c.cpu: c.pages for c in reply.cpus} == counts
    h.set_paused(False)
    assert_audit_ok(h)


@pytest.mark.parametrize("kernel", ["6.1", "6.2", "6.12", "6.19"])
def test_6_x_clusters_drain_remotely_with_the_workload_running(make_cluster, kernel):
    """6.1, 6.2, 6.12 and 6.19 clusters default to remote drains; with housekeeping churn running (batched
    frees included, which 6.2 trylocks; 6.12 auto-tunes high; 6.19 flushes in batch chunks and may lose
    its lock between them), forced remote drains finish DONE and the audit balances."""
    h = make_cluster(["housekeeping", "housekeeping"], kernel=kernel, strategy=None)
    state = h.state()
    assert state.kernel == kernel and state.default_strategy == pb.STRATEGY_REMOTE
    h.wait_pages([0, 1])
    for _ in range(4):
        reply = drain(h, force=True)
        assert reply.status == DONE and reply.strategy == pb.STRATEGY_REMOTE
    assert_audit_ok(h)


def test_coordinator_refuses_a_remote_default_under_5_19():
    """`python -m coordinator --kernel 5.19 --strategy remote` exits 2 naming the reason, before serving."""
    import subprocess

    r = subprocess.run(
        python_module("coordinator", "--nodes", "1", "--kernel", "5.19", "--strategy", "remote"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "local_lock" in r.stderr
