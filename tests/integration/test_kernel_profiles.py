"""Kernel profiles on real clusters: what each coordinator and node run, and what 5.19 refuses."""

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from tests.integration.conftest import RPC_TIMEOUT, assert_audit_ok, python_module, wait_until
from tests.integration.test_drain import drain, history

DONE = pb.DrainAllReply.DONE


def test_5_19_drains_by_workqueue_and_refuses_a_remote_drain(make_cluster):
    """A 5.19 cluster reports its kernel and defaults to workqueue drains, which empty every CPU. A remote
    drain (a local_lock no other CPU can take) is refused FAILED_PRECONDITION by the coordinator before it
    marks any CPU, and by a node asked directly; nothing is taken; the audit is ok."""
    h = make_cluster(["housekeeping", "idle"], kernel="5.19", strategy=None)
    state = h.state()
    assert state.kernel == "5.19" and state.default_strategy == pb.STRATEGY_WORKQUEUE
    h.pause_with_pages([0])
    free0, counts = h.frozen()
    drains = len(history(h))
    with pytest.raises(grpc.RpcError) as refusal:
        drain(h, pb.STRATEGY_REMOTE, force=True)
    assert refusal.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "local_lock" in refusal.value.details()
    assert len(history(h)) == drains
    ask = pb.PcpControlRequest(lock_drain=pb.PcpLockDrainRequest(cpu=0, lease_ms=100))
    (reply,) = h.nodes[0].PcpControl(iter([ask]), timeout=RPC_TIMEOUT)
    assert reply.code == "FAILED_PRECONDITION" and "local_lock" in reply.error, reply
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


@pytest.mark.parametrize("kernel", ["6.12-count-race", "6.12"])
def test_the_chunked_remote_drain_crosses_the_wire_with_its_left(make_cluster, kernel):
    """On real node processes, PcpLockDrain's `left` goes both ways (docs/protocol.md): a 6.12-count-race
    node (v6.10's loop, the count read once and carried by the drainer) takes as many pages as the
    request's `left` says are still to drain, a 6.12 node (v6.11's, the count read under the lock) ignores
    it, and each answers with the count its loop still has. Parked CPUs, so counts cannot move; the
    grant is aborted, and the audit balances."""
    h = make_cluster(["housekeeping", "housekeeping"], kernel=kernel, strategy=None)

    def parked_with_two_pages() -> bool:  # `left=1` must be below the count for the test to mean anything
        h.pause_with_pages([0])
        if h.pcp(0).count > 1:
            return True
        h.set_paused(False)
        return False

    wait_until(parked_with_two_pages, 30.0, what="parking with 2 or more pcp pages on cpu 0")
    pcp = h.pcp(0)
    reply = h.nodes[0].PcpLockDrain(pb.PcpLockDrainRequest(cpu=0, lease_ms=5000, left=1), timeout=10.0)
    taken = sum(1 << o for o in reply.pages.order)
    if kernel == "6.12-count-race":
        assert (taken, reply.left) == (1, 0)  # the drainer's count of 1 was the loop's
    else:
        chunk = min(pcp.count, pcp.batch << 5)  # the first chunk of a drain whose count is pcp.count
        assert (taken, reply.left) == (chunk, pcp.count - chunk)
    h.nodes[0].PcpUnlock(pb.PcpUnlockRequest(cpu=0, token=reply.token, commit=False), timeout=10.0)
    assert h.pcp(0).count == pcp.count
    assert_audit_ok(h)
    h.set_paused(False)
