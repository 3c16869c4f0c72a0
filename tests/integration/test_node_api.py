"""A node's gRPC API (the interconnect of one simulated CPU): validation, the remote pcp
lock with its lease and fencing token, queued work.

Tests that need frozen numbers park every CPU first (`paused`): a parked CPU runs no task
or IRQ, so its pcp count and the zone's free pages cannot move unless the test moves them.
"""

import grpc
import pytest

from node.api.v1 import pcpsim_pb2 as pb
from tests.integration.conftest import RPC_TIMEOUT, assert_audit_ok, rpc_code, transfer_id, wait_until

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
IDLE_CPU = 2


def base_pages(pages: pb.PageList) -> int:
    return sum(1 << o for o in pages.order)


def lock(h, cpu, lease_ms, timeout=RPC_TIMEOUT) -> pb.PcpLockDrainReply:
    return h.nodes[cpu].PcpLockDrain(pb.PcpLockDrainRequest(cpu=cpu, lease_ms=lease_ms), timeout=timeout)


def granted(h, cpu, lease_ms) -> pb.PcpLockDrainReply:
    """A grant of `cpu`'s pcp lock. A CPU with a workload can empty its lists between a poll that
    saw pages and the lock call; the reply then grants nothing (token 0, no pages, nothing held),
    so asking again is safe."""
    return wait_until(lambda: (reply := lock(h, cpu, lease_ms)).token and reply, 15.0, what=f"a grant on cpu {cpu}")


def unlock(h, cpu, token, commit):
    return h.nodes[cpu].PcpUnlock(pb.PcpUnlockRequest(cpu=cpu, token=token, commit=commit), timeout=RPC_TIMEOUT)


NODE_CALLS = {
    "GetPcp": lambda cpu: pb.CpuRequest(cpu=cpu),
    "Snapshot": lambda cpu: pb.CpuRequest(cpu=cpu),
    "PcpLockDrain": lambda cpu: pb.PcpLockDrainRequest(cpu=cpu, lease_ms=1000),
    "PcpUnlock": lambda cpu: pb.PcpUnlockRequest(cpu=cpu, token=1, commit=False),
    "QueueWork": lambda cpu: pb.QueueWorkRequest(cpu=cpu, kind=pb.WORK_DRAIN_LOCAL_PAGES),
    "FlushWork": lambda cpu: pb.FlushWorkRequest(cpu=cpu, work_id=1, timeout_ms=100),
    "SetRunState": lambda cpu: pb.RunStateRequest(cpu=cpu, paused=False),
    "GetStats": lambda cpu: pb.StatsRequest(cpu=cpu, reset=True),
}


@pytest.mark.parametrize("method", sorted(NODE_CALLS))
def test_node_rejects_a_cpu_that_is_not_its_own(paused, method):
    """Every node RPC names a CPU; a node asked about another CPU answers INVALID_ARGUMENT and
    changes nothing (its lists stay put and unlocked, the CPU stays parked, stats are not reset)."""
    before = paused.frozen()
    stats_before = paused.nodes[0].GetStats(pb.StatsRequest(cpu=0), timeout=RPC_TIMEOUT)
    assert rpc_code(getattr(paused.nodes[0], method), NODE_CALLS[method](1)) == INVALID
    assert paused.frozen() == before
    assert not paused.pcp(0).locked
    stats_after = paused.nodes[0].GetStats(pb.StatsRequest(cpu=0), timeout=RPC_TIMEOUT)
    assert stats_after.allocs == stats_before.allocs  # still parked, and no reset happened
    assert_audit_ok(paused)


BAD_NODE_REQUESTS = {
    "lease_0": ("PcpLockDrain", pb.PcpLockDrainRequest(cpu=0, lease_ms=0), INVALID),
    "lease_over_60s": ("PcpLockDrain", pb.PcpLockDrainRequest(cpu=0, lease_ms=60_001), INVALID),
    "unlock_token_0": ("PcpUnlock", pb.PcpUnlockRequest(cpu=0, token=0, commit=True), INVALID),
    "unlock_unknown_token": ("PcpUnlock", pb.PcpUnlockRequest(cpu=0, token=987654, commit=True), PRECONDITION),
    "unlock_unknown_token_not_freed": ("PcpUnlock", pb.PcpUnlockRequest(cpu=0, token=987654), PRECONDITION),
    "work_kind_unspecified": ("QueueWork", pb.QueueWorkRequest(cpu=0, kind=pb.WORK_UNSPECIFIED), INVALID),
    "work_kind_unknown": ("QueueWork", pb.QueueWorkRequest(cpu=0, kind=42), INVALID),
    "flush_unknown_work": (
        "FlushWork",
        pb.FlushWorkRequest(cpu=0, work_id=987654, timeout_ms=100),
        grpc.StatusCode.NOT_FOUND,
    ),
    "flush_timeout_0": ("FlushWork", pb.FlushWorkRequest(cpu=0, work_id=987654, timeout_ms=0), INVALID),
    "flush_timeout_too_long": ("FlushWork", pb.FlushWorkRequest(cpu=0, work_id=987654, timeout_ms=600_001), INVALID),
    # with reset: a refused window must not reset the CPU's counters either
    "events_window_reversed": ("GetStats", pb.StatsRequest(cpu=0, reset=True, events_from_s=5, events_to_s=4), INVALID),
    "events_window_no_end": ("GetStats", pb.StatsRequest(cpu=0, reset=True, events_from_s=5), INVALID),
    "events_window_over_10s": (
        "GetStats",
        pb.StatsRequest(cpu=0, reset=True, events_from_s=1, events_to_s=12),
        INVALID,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_NODE_REQUESTS))
def test_node_rejects_bad_input_and_changes_nothing(paused, case):
    """PcpLockDrain with lease_ms 0 or > 60000, PcpUnlock with token 0 (INVALID_ARGUMENT) or a
    token never granted (FAILED_PRECONDITION), QueueWork of an unknown kind, FlushWork with
    timeout_ms 0 or > 600000 (INVALID_ARGUMENT) or of an unknown work id (NOT_FOUND), GetStats with
    an events window reversed, open or over 10 s (INVALID_ARGUMENT, no reset): the pcp
    keeps its pages and stays unlocked, the zone is untouched, no drain work ran, audit ok."""
    method, request, expected = BAD_NODE_REQUESTS[case]
    before = paused.frozen()
    stats = paused.nodes[0].GetStats(pb.StatsRequest(cpu=0), timeout=RPC_TIMEOUT)
    assert before[1][0] > 0 and stats.allocs > 0
    assert rpc_code(getattr(paused.nodes[0], method), request) == expected
    assert paused.frozen() == before
    assert not paused.pcp(0).locked
    after = paused.nodes[0].GetStats(pb.StatsRequest(cpu=0), timeout=RPC_TIMEOUT)
    assert (after.drain_work_items, after.allocs) == (stats.drain_work_items, stats.allocs)  # and no reset
    assert_audit_ok(paused)


def test_snapshot_of_a_running_cpu_always_answers_and_is_checked_only_parked(shared_cluster):
    """The interconnect copies a housekeeping CPU's lists and held pages while its thread churns
    them: every read answers (iterating the held-page map while it changed size once failed with
    UNKNOWN), marked running and left unchecked; parked, the same CPU's snapshot is checked."""
    h = shared_cluster
    for _ in range(300):
        snap = h.snapshot(0)
        assert snap.running and not snap.errors
    h.set_paused(True, [0])
    try:
        snap = h.snapshot(0)
        assert not snap.running and not snap.errors
        assert base_pages(snap.pcp_pages) == h.pcp(0).count
    finally:
        h.set_paused(False, [0])


def test_lock_drain_takes_every_page_and_abort_puts_them_back(paused):
    """PcpLockDrain on a parked CPU with pages returns a token and all its pages (count becomes
    0, the lock is held, the pages are reported in flight); PcpUnlock(commit=False) restores the
    very same lists (count and per-list lengths) and releases the lock; the zone never moved."""
    free0, counts0 = paused.frozen()
    pcp0 = paused.pcp(0)
    assert pcp0.count > 0 and not pcp0.locked
    grant = lock(paused, 0, lease_ms=5_000)
    assert grant.token != 0
    assert base_pages(grant.pages) == pcp0.count
    held = paused.pcp(0)
    assert held.count == 0 and held.locked and sum(held.list_pages) == 0
    snap = paused.snapshot(0)
    assert sorted(snap.inflight.pfn) == sorted(grant.pages.pfn) and not snap.pcp_pages.pfn
    assert not snap.errors

    unlock(paused, 0, grant.token, commit=False)
    after = paused.pcp(0)
    assert not after.locked
    assert after.count == pcp0.count and list(after.list_pages) == list(pcp0.list_pages)
    assert not paused.snapshot(0).inflight.pfn
    assert [g.outcome for g in paused.snapshot(0).grants if g.token == grant.token] == [pb.GrantRecord.ABORTED]
    assert paused.frozen() == (free0, counts0)
    assert_audit_ok(paused)


def test_lock_drain_then_commit_then_zone_free_is_a_remote_drain(paused):
    """The remote drain done by hand: lock and take the pages, PcpUnlock(commit=True) (the pages
    leave the node and the lock is free), then FreePages them as that CPU: the zone gained
    exactly those base pages. A retried commit (its reply lost) succeeds again and changes
    nothing; an abort of the committed token is FAILED_PRECONDITION. Audit ok."""
    free0 = paused.free_pages()
    grant = lock(paused, 1, lease_ms=5_000)
    n = base_pages(grant.pages)
    assert grant.token and n > 0
    unlock(paused, 1, grant.token, commit=True)
    pcp = paused.pcp(1)
    assert pcp.count == 0 and not pcp.locked and not paused.snapshot(1).inflight.pfn
    unlock(paused, 1, grant.token, commit=True)  # the retry of a commit whose reply was lost
    paused.coord.FreePages(
        pb.FreePagesRequest(cpu=1, pages=grant.pages, transfer_id=transfer_id(), incarnation=paused.incarnation(1)),
        timeout=RPC_TIMEOUT,
    )
    assert paused.free_pages() == free0 + n
    assert (
        rpc_code(paused.nodes[1].PcpUnlock, pb.PcpUnlockRequest(cpu=1, token=grant.token, commit=False)) == PRECONDITION
    )
    assert paused.pcp(1).count == 0 and paused.free_pages() == free0 + n
    assert_audit_ok(paused)


def test_lock_drain_of_an_empty_pcp_grants_nothing(paused):
    """drain_pages_zone locks only when count != 0: on the idle CPU (no pages) PcpLockDrain
    returns token 0 and no pages, and leaves the lock free."""
    assert paused.pcp(IDLE_CPU).count == 0
    grant = lock(paused, IDLE_CPU, lease_ms=1000)
    assert grant.token == 0 and not grant.pages.pfn
    assert not paused.pcp(IDLE_CPU).locked


def test_second_lock_drain_while_held_gets_nothing_and_leaves_the_holder_alone(paused):
    """One holder at a time: while grant A holds cpu0's lock (and all its pages), a second
    PcpLockDrain sees count 0 and grants nothing (token 0, no pages, as drain_pages_zone skips
    an empty pcp); A still holds the lock, and A's unlock restores every page."""
    count = paused.pcp(0).count
    first = lock(paused, 0, lease_ms=5_000)
    assert first.token and base_pages(first.pages) == count
    second = lock(paused, 0, lease_ms=300)
    assert second.token == 0 and not second.pages.pfn
    assert paused.pcp(0).locked
    assert sorted(paused.snapshot(0).inflight.pfn) == sorted(first.pages.pfn)
    unlock(paused, 0, first.token, commit=False)
    assert paused.pcp(0).count == count and not paused.pcp(0).locked
    assert_audit_ok(paused)


def test_expired_lease_puts_pages_back_and_refuses_the_late_commit(paused):
    """Fencing: a lease that lapses (200 ms, no unlock) puts the pages back on the lists and
    releases the lock by itself; the stale holder's late commit is FAILED_PRECONDITION, the
    pages stay on the lists (the drainer must not free them), the node records the grant as
    expired with one stale commit refused, and the audit is ok throughout."""
    count = paused.pcp(0).count
    free0 = paused.free_pages()
    grant = lock(paused, 0, lease_ms=200)
    assert grant.token and base_pages(grant.pages) == count
    wait_until(lambda: not paused.pcp(0).locked, 5.0, what="lease expiry")
    assert paused.pcp(0).count == count and not paused.snapshot(0).inflight.pfn
    assert (
        rpc_code(paused.nodes[0].PcpUnlock, pb.PcpUnlockRequest(cpu=0, token=grant.token, commit=True)) == PRECONDITION
    )
    assert paused.pcp(0).count == count and paused.free_pages() == free0
    record = next(g for g in paused.snapshot(0).grants if g.token == grant.token)
    assert record.outcome == pb.GrantRecord.EXPIRED and record.stale_commits_refused == 1
    assert not record.committed_after_expiry
    assert_audit_ok(paused)


def control(h, cpu: int, op: str, message) -> pb.PcpControlReply:
    """One request on a PcpControl stream of its own (as a drainer's retry opens a new one); its reply."""
    (reply,) = h.nodes[cpu].PcpControl(iter([pb.PcpControlRequest(**{op: message})]), timeout=RPC_TIMEOUT)
    return reply


def test_an_abandoned_grant_ends_at_once_and_an_abandoned_request_is_never_granted(paused):
    """A drainer that stopped waiting for its lock_drain's answer abandons it by its request id: the grant
    made for it ends at once, not at its lease's end (60 s here): the pages are back on the lists, the
    lock is free, the grant is recorded aborted and its late commit refused. Abandoning again, or an id
    never granted, ends nothing; a request abandoned before it came is refused when it comes, and takes
    nothing."""
    count = paused.pcp(0).count
    taken = control(paused, 0, "lock_drain", pb.PcpLockDrainRequest(cpu=0, lease_ms=60_000, request_id=7)).lock_drain
    assert taken.token and base_pages(taken.pages) == count and paused.pcp(0).locked
    ended = control(paused, 0, "abandon", pb.AbandonRequest(cpu=0, request_id=7))
    assert ended.abandoned.aborted and not ended.code
    assert not paused.pcp(0).locked and paused.pcp(0).count == count and not paused.snapshot(0).inflight.pfn
    record = next(g for g in paused.snapshot(0).grants if g.token == taken.token)
    assert record.outcome == pb.GrantRecord.ABORTED
    assert (
        rpc_code(paused.nodes[0].PcpUnlock, pb.PcpUnlockRequest(cpu=0, token=taken.token, commit=True)) == PRECONDITION
    )
    assert not control(paused, 0, "abandon", pb.AbandonRequest(cpu=0, request_id=7)).abandoned.aborted
    assert not control(paused, 0, "abandon", pb.AbandonRequest(cpu=0, request_id=8)).abandoned.aborted
    for bad in (pb.AbandonRequest(cpu=0, request_id=0), pb.AbandonRequest(cpu=1, request_id=9)):
        assert control(paused, 0, "abandon", bad).code == "INVALID_ARGUMENT"
    late = control(paused, 0, "lock_drain", pb.PcpLockDrainRequest(cpu=0, lease_ms=60_000, request_id=8))
    assert late.code == "FAILED_PRECONDITION" and "request 8 was abandoned" in late.error
    assert not paused.pcp(0).locked and paused.pcp(0).count == count
    assert_audit_ok(paused)


def test_queued_drain_work_runs_on_a_parked_cpu(paused):
    """QueueWork(WORK_DRAIN_LOCAL_PAGES) runs on the CPU's kworker even while its tasks are
    parked: FlushWork reports done and the pages drained, which the zone gained; the CPU counted
    one drain work item; the work id is then forgotten (NOT_FOUND)."""
    count = paused.pcp(1).count
    free0 = paused.free_pages()
    items = paused.nodes[1].GetStats(pb.StatsRequest(cpu=1), timeout=RPC_TIMEOUT).drain_work_items
    work = paused.nodes[1].QueueWork(pb.QueueWorkRequest(cpu=1, kind=pb.WORK_DRAIN_LOCAL_PAGES), timeout=RPC_TIMEOUT)
    done = paused.nodes[1].FlushWork(pb.FlushWorkRequest(cpu=1, work_id=work.work_id, timeout_ms=10_000), timeout=15)
    assert done.done and done.pages == count > 0
    assert paused.pcp(1).count == 0 and paused.free_pages() == free0 + count
    assert paused.nodes[1].GetStats(pb.StatsRequest(cpu=1), timeout=RPC_TIMEOUT).drain_work_items == items + 1
    assert (
        rpc_code(paused.nodes[1].FlushWork, pb.FlushWorkRequest(cpu=1, work_id=work.work_id, timeout_ms=100))
        == grpc.StatusCode.NOT_FOUND
    )
    assert_audit_ok(paused)


def test_late_commit_while_another_grant_holds_the_lock_does_not_wedge_the_node(make_cluster):
    """Lock safety and liveness: after grant A's lease lapsed and the CPU refilled its lists, a
    new grant B holds the lock; A's late commit must still be answered (FAILED_PRECONDITION,
    at once) and the node must keep serving (B can commit)."""
    h = make_cluster(["housekeeping", "idle"])
    a = granted(h, 0, lease_ms=200)
    wait_until(lambda: not h.pcp(0).locked, 5.0, what="lease expiry")
    b = granted(h, 0, lease_ms=60_000)
    code = rpc_code(h.nodes[0].PcpUnlock, pb.PcpUnlockRequest(cpu=0, token=a.token, commit=True), timeout=3.0)
    assert code == PRECONDITION
    unlock(h, 0, b.token, commit=False)
    # The housekeeping CPU takes its own pcp lock now and then (its fast path): free again soon.
    wait_until(lambda: not h.pcp(0).locked, 5.0, what="the pcp lock free after B's unlock")
    assert not h.snapshot(0).inflight.pfn
    assert_audit_ok(h)


def test_set_faults_applies_replaces_and_heals_and_a_bad_request_changes_nothing(paused):
    """SetFaults on a node: an IN rule failing GetStats makes it UNAVAILABLE (SetFaults itself is
    never faulted); a request with a bad rule (one that could never apply included) is
    INVALID_ARGUMENT and the rule in force stays; an empty request heals, and the reply counts what
    was injected. The coordinator refuses a peer that is not one of the cluster's 3 CPUs."""
    node = paused.nodes[1]
    fail = pb.FaultRule(direction=pb.DIRECTION_IN, method="GetStats", peer=-1, fail=1.0)
    # The counts are the process's since it started (other tests on the shared cluster add to them).
    before = node.SetFaults(pb.FaultsRequest(rules=[fail]), timeout=RPC_TIMEOUT).injected["fail"]
    assert rpc_code(node.GetStats, pb.StatsRequest(cpu=1)) == grpc.StatusCode.UNAVAILABLE
    node.GetPcp(pb.CpuRequest(cpu=1), timeout=RPC_TIMEOUT)  # another method: untouched
    for bad in (
        pb.FaultsRequest(rules=[pb.FaultRule(direction=pb.DIRECTION_IN, method="*", drop=2.0)]),
        pb.FaultsRequest(rules=[pb.FaultRule(direction=pb.DIRECTION_IN, method="NoSuchMethod", fail=1.0)]),
        pb.FaultsRequest(rules=[pb.FaultRule(direction=pb.DIRECTION_IN, method="GetPcp")]),  # no effect
        pb.FaultsRequest(rules=[pb.FaultRule(direction=pb.DIRECTION_IN, method="GetPcp", delay_ms=1)] * 10_000),
        pb.FaultsRequest(cost_factor=0.5),
        pb.FaultsRequest(stop_mid_drain=True),
    ):
        assert rpc_code(node.SetFaults, bad) == INVALID
    for bad_rule in (
        pb.FaultRule(direction=pb.DIRECTION_IN, method="Heartbeat", peer=99, fail=1.0),
        pb.FaultRule(direction=pb.DIRECTION_IN, method="Heartbeet", peer=-1, fail=1.0),
    ):
        assert rpc_code(paused.coord.SetFaults, pb.FaultsRequest(rules=[bad_rule])) == INVALID
    assert rpc_code(node.GetStats, pb.StatsRequest(cpu=1)) == grpc.StatusCode.UNAVAILABLE
    healed = node.SetFaults(pb.FaultsRequest(), timeout=RPC_TIMEOUT)
    assert healed.injected["fail"] - before == 2
    node.GetStats(pb.StatsRequest(cpu=1), timeout=RPC_TIMEOUT)
    assert_audit_ok(paused)


def test_a_partitioned_node_loses_its_lease_and_is_declared_dead_then_rejoins(make_cluster):
    """Partition by SetFaults (everything in and out dropped): the node's lease runs out and
    the coordinator declares it dead and takes its pages back; after the heal the node hears
    it is dead, discards its pages and registers afresh with a renewed lease."""
    h = make_cluster(
        ["housekeeping", "housekeeping"], coordinator_args=["--failure-timeout-ms", "400", "--dead-timeout-ms", "1200"]
    )
    h.wait_pages([1])
    old = h.incarnation(1)
    drop_all = [pb.FaultRule(direction=d, method="*", peer=-1, drop=1.0) for d in (pb.DIRECTION_IN, pb.DIRECTION_OUT)]
    h.nodes[1].SetFaults(pb.FaultsRequest(rules=drop_all), timeout=RPC_TIMEOUT)
    wait_until(lambda: next(n for n in h.state().nodes if n.cpu == 1).dead, 15.0, what="cpu1 declared dead")
    assert h.audit().ok  # cpu1 is no member: its pages are the zone's again
    h.nodes[1].SetFaults(pb.FaultsRequest(), timeout=RPC_TIMEOUT)
    wait_until(
        lambda: h.incarnation(1) != old and not next(n for n in h.state().nodes if n.cpu == 1).dead,
        15.0,
        what="cpu1 registered afresh",
    )
    snap = h.snapshot(1)
    assert snap.rejoins == 1 and snap.lease_left_s > 0
    assert_audit_ok(h)
