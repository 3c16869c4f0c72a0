"""Direct reclaim under virtual time: a CPU whose refill the zone refuses asks the coordinator for
drain_all_pages (node.virtual.zone.DrainAllPages), and the whole-cluster driver runs it
(coordinator.tools.virtual_cluster.WholeCluster's hook), trigger reclaim, before the CPU retries."""

from coordinator.tools.topology import DEFAULT_ROLES
from coordinator.tools.virtual_cluster import WholeCluster
from node.api.v1 import pcpsim_pb2 as pb
from tests.leaks import forbid_wall_clock_and_shared_random


def low_cluster(seed: int) -> WholeCluster:
    """compare's four CPUs on a zone the rest of the system leaves 300 pages above min."""
    cluster = WholeCluster(DEFAULT_ROLES, seed)
    zone = cluster.nodes.zone.zone
    cluster.nodes.zone.rules.preallocate(zone.free_pages - zone.watermark["min"] - 300)
    return cluster


def test_a_refused_refill_runs_a_reclaim_drain_of_the_coordinator_and_the_audit_still_balances(monkeypatch):
    forbid_wall_clock_and_shared_random(monkeypatch)
    cluster = low_cluster(5)
    try:
        cluster.nodes.run(3e-3)
        reclaims = sum(alloc.reclaims for alloc in cluster.nodes.allocs)
        drains = cluster.reclaim_drains
        assert reclaims > 0 and cluster.nodes.zone.drain_requests >= len(drains) > 0
        assert all(r.trigger == pb.TRIGGER_RECLAIM and r.strategy == pb.STRATEGY_REMOTE for r in drains)
        done = [r for r in drains if r.status == pb.DrainAllReply.DONE]  # the rest found pcpu_drain_mutex held
        assert done and sum(c.pages for r in done for c in r.cpus) > 0
        assert sum(drain.drained_pages for drain in cluster.nodes.drains) > 0
        assert cluster.audit().ok
    finally:
        cluster.close()


def test_the_reclaim_strategy_is_the_coordinators_default_or_the_pcp_designs():
    for kw, want in (
        ({}, pb.STRATEGY_REMOTE),
        ({"rcu_swap": True}, pb.STRATEGY_RCU_SWAP),
        ({"strategy": pb.STRATEGY_WORKQUEUE}, pb.STRATEGY_WORKQUEUE),
    ):
        cluster = WholeCluster(DEFAULT_ROLES, 1, **kw)
        assert cluster.reclaim_strategy == want
        cluster.close()
