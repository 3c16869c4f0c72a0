"""drain_all_pages end to end: both strategies on parked and on running CPUs, CPU marking,
the default strategy, direct-reclaim drains under memory pressure, pcpu_drain_mutex."""

import threading

import pytest

from node.api.v1 import pcpsim_pb2 as pb
from tests.integration.conftest import RPC_TIMEOUT, assert_audit_ok, wait_until

STRATEGIES = {"remote": pb.STRATEGY_REMOTE, "workqueue": pb.STRATEGY_WORKQUEUE}
DONE, SKIPPED = pb.DrainAllReply.DONE, pb.DrainAllReply.SKIPPED


def drain(h, strategy=pb.STRATEGY_UNSPECIFIED, force=False, trigger=pb.TRIGGER_UNSPECIFIED, timeout=60.0):
    return h.coord.DrainAllPages(
        pb.DrainAllRequest(strategy=strategy, force_all_cpus=force, trigger=trigger), timeout=timeout
    )


def work_items(h) -> dict[int, int]:
    return {
        cpu: stub.GetStats(pb.StatsRequest(cpu=cpu), timeout=RPC_TIMEOUT).drain_work_items
        for cpu, stub in h.nodes.items()
    }


def history(h) -> list:
    return list(h.coord.GetDrainHistory(pb.DrainHistoryRequest(), timeout=RPC_TIMEOUT).drains)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_forced_drain_of_parked_cpus_empties_every_pcp(paused, name):
    """On parked CPUs (counts frozen), drain_all_pages(force_all_cpus) by either strategy marks
    every CPU, reports per CPU exactly the pages it had, leaves every pcp empty and unlocked,
    and the zone gains exactly their sum; workqueue ran one drain work item on every CPU,
    remote ran none; the drain is recorded in the history; the audit is ok."""
    h = paused
    free0, counts = h.frozen()
    assert counts[0] > 0 and counts[1] > 0
    items0 = work_items(h)
    reply = drain(h, STRATEGIES[name], force=True, trigger=pb.TRIGGER_DEMAND)
    assert reply.status == DONE
    assert reply.strategy == STRATEGIES[name] and reply.trigger == pb.TRIGGER_DEMAND
    assert sorted(reply.cpus_marked) == sorted(h.nodes)
    assert {c.cpu: c.pages for c in reply.cpus} == counts
    assert all(c.ok and not c.error for c in reply.cpus)
    for cpu in h.nodes:
        pcp = h.pcp(cpu)
        assert pcp.count == 0 and not pcp.locked and sum(pcp.list_pages) == 0
    assert h.free_pages() == free0 + sum(counts.values())
    expected = 1 if name == "workqueue" else 0
    assert work_items(h) == {cpu: n + expected for cpu, n in items0.items()}
    last = history(h)[-1]
    assert (last.status, last.strategy, list(last.cpus_marked)) == (DONE, reply.strategy, list(reply.cpus_marked))
    assert_audit_ok(h)


def test_unforced_drain_marks_only_cpus_reporting_pages(paused):
    """Without force_all_cpus the coordinator marks the CPUs whose last heartbeat reported
    pages (not the idle CPU); an unspecified strategy is the cluster's default (remote) and an
    unspecified trigger is DEMAND; once the heartbeats report the emptied lists, a second drain
    marks no CPU at all."""
    h = paused
    counts = h.counts()
    wait_until(
        lambda: {n.cpu: n.pcp_count for n in h.state().nodes} == counts,
        5.0,
        what="heartbeats reporting the parked counts",
    )
    reply = drain(h)
    assert reply.status == DONE
    assert reply.strategy == pb.STRATEGY_REMOTE and reply.trigger == pb.TRIGGER_DEMAND
    assert sorted(reply.cpus_marked) == sorted(c for c, n in counts.items() if n > 0) == [0, 1]
    assert all(h.pcp(c).count == 0 for c in h.nodes)
    wait_until(lambda: all(n.pcp_count == 0 for n in h.state().nodes), 5.0, what="heartbeats reporting empty lists")
    again = drain(h)
    assert again.status == DONE and list(again.cpus_marked) == [] and list(again.cpus) == []
    assert_audit_ok(h)


def test_drains_on_running_cpus_conserve_pages_and_spare_isolated_cpus_under_remote(make_cluster):
    """With the workload running (two housekeeping CPUs, an isolated preemptible and an isolated
    RT CPU), forced drains all finish DONE; remote drains run no work item on either isolated
    CPU, while each workqueue drain runs one on every CPU, isolated ones included; no page is
    lost or duplicated."""
    h = make_cluster(["housekeeping", "housekeeping", "isolated-preemptible", "isolated-rt"])
    h.wait_pages([0, 1])
    n = 4
    items0 = work_items(h)
    for _ in range(n):
        assert drain(h, pb.STRATEGY_REMOTE, force=True).status == DONE
    items1 = work_items(h)
    assert items1 == items0
    for _ in range(n):
        reply = drain(h, pb.STRATEGY_WORKQUEUE, force=True)
        assert reply.status == DONE and all(c.ok for c in reply.cpus)
    items2 = work_items(h)
    assert {cpu: items2[cpu] - items1[cpu] for cpu in h.nodes} == {cpu: n for cpu in h.nodes}
    assert h.pcp_errors() == {cpu: [] for cpu in h.nodes}
    assert_audit_ok(h)


def test_concurrent_demand_drains_wait_for_each_other(make_cluster):
    """Demand drains are zone-specific callers: several issued at once from different threads,
    mixing strategies, all wait for pcpu_drain_mutex and finish DONE (none SKIPPED), their
    runs do not overlap in time (each starts after the previous one ended), and the audit is ok."""
    h = make_cluster(["housekeeping", "housekeeping", "isolated-preemptible"])
    h.wait_pages([0, 1])
    replies, errors = [], []

    def one(strategy):
        try:
            replies.append(drain(h, strategy, force=True))
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(s,)) for s in [pb.STRATEGY_REMOTE, pb.STRATEGY_WORKQUEUE] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(replies) == 6
    assert all(r.status == DONE for r in replies)
    records = history(h)[-6:]  # in completion order
    assert sorted(r.started_at for r in records) == sorted(r.started_at for r in replies)
    # If the runs are serialized, run k starts no earlier than its request and than run k-1's
    # end; the last run then ends no earlier than `end`, which must not be later than the
    # coordinator's clock when a later drain arrives.
    end = 0.0
    for r in records:
        end = max(end, r.started_at) + r.duration_s
    later = drain(h, pb.STRATEGY_REMOTE)
    assert end <= later.started_at + 1e-6, (end, later.started_at)
    assert_audit_ok(h)


@pytest.mark.parametrize("default", ["remote", "workqueue"])
def test_direct_reclaim_drains_under_memory_pressure(make_cluster, default):
    """With 99% of a 1 GiB zone held by the rest of the system, two housekeeping CPUs' working
    sets (1500 pages each) cannot fit above the min watermark (free ~2600 pages, min 1024), so
    refills are refused and the allocating CPUs enter direct reclaim: the coordinator records
    drains with trigger TRIGGER_RECLAIM using the cluster's default strategy, each DONE or
    SKIPPED; allocations still mostly succeed; the audit is ok."""
    h = make_cluster(["housekeeping", "housekeeping"], zone_used=0.99, strategy=default)
    zone = h.state().zone
    headroom = zone.managed_pages - int(zone.managed_pages * 0.99) - zone.watermark_min
    assert 0 < headroom < 2 * 1500, (zone.managed_pages, zone.watermark_min)

    def reclaim_drains():
        return [d for d in history(h) if d.trigger == pb.TRIGGER_RECLAIM]

    wait_until(lambda: len(reclaim_drains()) >= 3, 30.0, what="three direct-reclaim drains")
    drains = reclaim_drains()
    assert all(d.status in (DONE, SKIPPED) for d in drains), [d.status for d in drains]
    assert any(d.status == DONE for d in drains)
    assert all(d.strategy == STRATEGIES[default] for d in drains if d.status == DONE)
    stats = [stub.GetStats(pb.StatsRequest(cpu=cpu), timeout=RPC_TIMEOUT) for cpu, stub in h.nodes.items()]
    assert sum(s.allocs for s in stats) > sum(s.alloc_failures for s in stats)
    assert_audit_ok(h)


def test_reclaim_drain_is_skipped_while_another_drain_runs(make_cluster):
    """A global (direct-reclaim) drain that finds pcpu_drain_mutex taken returns SKIPPED at once
    and marks no CPU, while the demand drain holding it finishes DONE. The demand drain is made
    long by a workqueue drain that must wait for an RT task busy 1.9 s of every 2 s."""
    h = make_cluster(["housekeeping", "isolated-rt"], node_args=["--period-ms", "2000", "--busy-ms", "1900"])
    h.wait_pages([0])
    skipped = None
    for _attempt in range(3):
        result = {}
        t = threading.Thread(target=lambda result=result: result.update(r=drain(h, pb.STRATEGY_WORKQUEUE, force=True)))
        t.start()
        while t.is_alive() and skipped is None:
            r = drain(h, trigger=pb.TRIGGER_RECLAIM)
            if r.status == SKIPPED:
                skipped = r
        t.join(30)
        assert result["r"].status == DONE
        if skipped is not None:
            break
    assert skipped is not None, "no reclaim drain overlapped a running drain in 3 attempts"
    assert list(skipped.cpus_marked) == [] and list(skipped.cpus) == []
    assert skipped.trigger == pb.TRIGGER_RECLAIM
    assert_audit_ok(h)
