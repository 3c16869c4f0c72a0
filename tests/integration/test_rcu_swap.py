"""rcu-swap drains end to end on real clusters: swap, grace period, commit, free; what the isolated
CPUs see; the bound on a grace period; and the strategies a pcp design refuses."""

import queue

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from tests.integration.conftest import RPC_TIMEOUT, assert_audit_ok, running_cluster, wait_until
from tests.integration.test_drain import drain, history, work_items

DONE, FAILED = pb.DrainAllReply.DONE, pb.DrainAllReply.FAILED
ISOLATED = ["housekeeping", "housekeeping", "isolated-preemptible", "isolated-rt"]


def stats(h) -> dict:
    return {cpu: stub.GetStats(pb.StatsRequest(cpu=cpu), timeout=RPC_TIMEOUT) for cpu, stub in h.nodes.items()}


def test_forced_rcu_swap_of_parked_cpus_empties_every_pcp(make_cluster):
    """On parked CPUs (an extended quiescent state), a forced rcu-swap drain marks every CPU, reports per
    CPU exactly the pages it had, leaves every pcp empty, and the zone gains exactly their sum; no work
    item ran on any CPU; the drain's grace period is the longest of its CPUs'; the audit is ok."""
    h = make_cluster(["housekeeping", "housekeeping", "idle"], strategy="rcu-swap")
    h.pause_with_pages([0, 1])
    free0, counts = h.frozen()
    items0 = work_items(h)
    reply = drain(h, pb.STRATEGY_RCU_SWAP, force=True)
    assert reply.status == DONE, [c.error for c in reply.cpus]
    assert sorted(reply.cpus_marked) == sorted(h.nodes)
    assert {c.cpu: c.pages for c in reply.cpus} == counts
    assert all(h.pcp(cpu).count == 0 for cpu in h.nodes)
    assert h.free_pages() == free0 + sum(counts.values())
    assert work_items(h) == items0
    assert reply.grace_period_s == max(c.grace_period_s for c in reply.cpus)
    assert history(h)[-1].grace_period_s == reply.grace_period_s
    h.set_paused(False)
    assert_audit_ok(h)


def test_rcu_swap_on_running_cpus_leaves_isolated_cpus_alone(make_cluster):
    """With the workload running, rcu-swap drains all finish DONE, run no work item on any CPU, cause no
    pcp trylock failure or buddy fallback anywhere (the fast path takes no lock a drainer holds), wait a
    grace period on the busy housekeeping CPUs, and lose or duplicate no page."""
    h = make_cluster(ISOLATED, strategy="rcu-swap")
    h.wait_pages([0, 1])
    items0 = work_items(h)
    replies = [drain(h, pb.STRATEGY_RCU_SWAP, force=True) for _ in range(6)]
    assert all(r.status == DONE for r in replies), [[c.error for c in r.cpus] for r in replies]
    assert work_items(h) == items0
    s = stats(h)
    assert sum(x.trylock_failures for x in s.values()) == 0
    assert sum(x.buddy_fallbacks for x in s.values()) == 0
    assert any(c.grace_period_s > 0 for r in replies for c in r.cpus if c.cpu in (0, 1))
    assert h.pcp_errors() == {cpu: [] for cpu in h.nodes}
    assert_audit_ok(h)


def test_a_cpu_that_reports_no_quiescent_state_in_time_fails_its_drain_and_keeps_its_pages(make_cluster):
    """With a 1 ms grace-period bound, a housekeeping CPU busy in kernel work (an allocation, an IRQ)
    does not report a quiescent state in time: its part of the drain fails, naming the bound, with the
    grace period it waited recorded, the drain is FAILED, and its old list set stays with it, so the
    audit still balances to the page."""
    h = make_cluster(
        ["housekeeping", "housekeeping"], strategy="rcu-swap", coordinator_args=["--rcu-gp-timeout-ms", "1"]
    )
    h.wait_pages([0, 1])

    def a_timeout():
        reply = drain(h, pb.STRATEGY_RCU_SWAP, force=True)
        failed = [c for c in reply.cpus if not c.ok]
        return (reply, failed[0]) if failed else None

    reply, cpu = wait_until(a_timeout, 60.0, interval=0.0, what="a drain whose grace period timed out")
    assert reply.status == FAILED
    assert "no quiescent state within 1 ms" in cpu.error
    assert cpu.grace_period_s >= 0.001
    assert_audit_ok(h)


def test_each_pcp_design_refuses_the_other_designs_remote_drain(make_cluster):
    """A cluster of RCU list sets has no pcp lock; a spinlock cluster has no list sets. The coordinator
    refuses a drain by the other design's strategy FAILED_PRECONDITION before marking any CPU (nothing
    taken, no drain recorded), and each node refuses it too when asked directly. A workqueue drain works
    on both. Audits stay ok."""
    for design, refused, hint, ask in (
        ("rcu-swap", pb.STRATEGY_REMOTE, "no pcp lock", pb.PcpControlRequest(lock_drain=pb.PcpLockDrainRequest())),
        ("remote", pb.STRATEGY_RCU_SWAP, "not RCU list sets", pb.PcpControlRequest(rcu_swap=pb.RcuSwapRequest())),
    ):
        h = make_cluster(["housekeeping", "idle"], strategy=design)
        h.pause_with_pages([0])
        free0, counts = h.frozen()
        drains = len(history(h))
        with pytest.raises(grpc.RpcError) as refusal:
            drain(h, refused, force=True)
        assert refusal.value.code() == grpc.StatusCode.FAILED_PRECONDITION and hint in refusal.value.details()
        assert h.frozen() == (free0, counts) and len(history(h)) == drains
        if ask.HasField("lock_drain"):
            ask.lock_drain.cpu, ask.lock_drain.lease_ms = 0, 100
        else:
            ask.rcu_swap.cpu, ask.rcu_swap.lease_ms, ask.rcu_swap.gp_timeout_ms = 0, 100, 100
        (reply,) = h.nodes[0].PcpControl(iter([ask]), timeout=RPC_TIMEOUT)
        assert reply.code == "FAILED_PRECONDITION" and hint in reply.error, reply
        assert h.frozen() == (free0, counts)
        reply = drain(h, pb.STRATEGY_WORKQUEUE, force=True)
        assert reply.status == DONE and {c.cpu: c.pages for c in reply.cpus} == counts
        h.set_paused(False)
        assert_audit_ok(h)


@pytest.fixture(scope="module")
def one_rcu_cpu(tmp_path_factory):
    """One housekeeping CPU with rcu-swap list sets, shared by the tests that leave it as they found it."""
    with running_cluster(tmp_path_factory.mktemp("rcu"), ["housekeeping"], strategy="rcu-swap") as handle:
        yield handle


@pytest.mark.parametrize("field,value", [("gp_timeout_ms", 0), ("lease_ms", 0)])
def test_rcu_swap_request_validation(one_rcu_cpu, field, value):
    """An RcuSwap with a zero bound is refused INVALID_ARGUMENT on the control stream and changes nothing."""
    h = one_rcu_cpu
    h.pause_with_pages([0])
    before = h.pcp(0).count
    request = dict(cpu=0, gp_timeout_ms=100, lease_ms=100)
    request[field] = value
    replies = list(
        h.nodes[0].PcpControl(iter([pb.PcpControlRequest(rcu_swap=pb.RcuSwapRequest(**request))]), timeout=RPC_TIMEOUT)
    )
    assert len(replies) == 1 and replies[0].code == "INVALID_ARGUMENT" and field in replies[0].error
    assert h.pcp(0).count == before
    h.set_paused(False)


def test_getpcp_names_the_grant_that_holds_the_list_set_a_drainer_took(one_rcu_cpu):
    """GetPcp's remote_token under rcu-swap is the grant of the list set a drainer took, until it is
    released, as it is the pcp lock's grant under remote: the chaos nemesis watches the grants a stopped
    coordinator held by it (until 2026-12-07 it was always 0 here, so no rcu-swap grant was watched)."""
    h = one_rcu_cpu
    h.pause_with_pages([0])
    before = h.pcp(0).count
    asks: queue.Queue = queue.Queue()
    asks.put(pb.PcpControlRequest(rcu_swap=pb.RcuSwapRequest(cpu=0, gp_timeout_ms=1000, lease_ms=60_000)))
    replies = h.nodes[0].PcpControl(iter(asks.get, None), timeout=RPC_TIMEOUT)
    swap = next(replies)
    assert swap.code == "" and swap.rcu_swap.token, swap
    assert h.pcp(0).remote_token == swap.rcu_swap.token
    asks.put(pb.PcpControlRequest(rcu_release=pb.RcuReleaseRequest(cpu=0, token=swap.rcu_swap.token, commit=False)))
    assert next(replies).HasField("rcu_released")
    asks.put(None)
    assert list(replies) == []
    assert h.pcp(0).remote_token == 0 and h.pcp(0).count == before
    h.set_paused(False)


def test_direct_reclaim_drains_by_rcu_swap_under_memory_pressure(make_cluster):
    """On an RCU cluster with 99% of the zone held elsewhere, refills are refused and the allocating CPUs
    enter direct reclaim: the drains it triggers are global (TRIGGER_RECLAIM), by rcu-swap, each DONE or
    SKIPPED (another drain running); no fast path ever fails a trylock; the audit is ok."""
    h = make_cluster(["housekeeping", "housekeeping"], zone_used=0.99, strategy="rcu-swap")

    def reclaim_drains():
        return [d for d in history(h) if d.trigger == pb.TRIGGER_RECLAIM]

    wait_until(lambda: len(reclaim_drains()) >= 3, 30.0, what="three direct-reclaim drains")
    drains = reclaim_drains()
    assert all(d.status in (DONE, pb.DrainAllReply.SKIPPED) for d in drains), [d.status for d in drains]
    assert any(d.status == DONE for d in drains)
    assert all(d.strategy == pb.STRATEGY_RCU_SWAP for d in drains if d.status == DONE)
    assert sum(x.trylock_failures for x in stats(h).values()) == 0

    # Under this pressure a CPU can stay in direct reclaim past SetRunState's 5 s wait for its next
    # safe point (it answers INVALID_ARGUMENT and keeps the hold, so the CPU parks later): park both
    # first, asking again until they are, then audit the parked cluster.
    def parked() -> bool:
        try:
            h.set_paused(True)
        except grpc.RpcError:
            return False
        return True

    wait_until(parked, 60.0, what="both CPUs parked at a safe point")
    assert_audit_ok(h)
