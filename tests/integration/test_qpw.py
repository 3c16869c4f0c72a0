"""qpw drains end to end on real clusters: the pw_queue_on proposal's one switch (coordinator.drain.qpw),
with no isolated CPU (a work item on every CPU) and with one (every CPU drained under its pcp lock)."""

from node.api.v1 import pcpsim_pb2 as pb
from tests.integration.conftest import assert_audit_ok
from tests.integration.test_drain import drain, work_items

DONE = pb.DrainAllReply.DONE
ISOLATED = ["housekeeping", "housekeeping", "isolated-preemptible", "isolated-rt"]


def committed_grants(h) -> dict[int, int]:
    """Remote pcp lock grants each CPU saw committed (its recent grant records)."""
    return {cpu: sum(g.outcome == pb.GrantRecord.COMMITTED for g in h.snapshot(cpu).grants) for cpu in sorted(h.nodes)}


def test_qpw_without_an_isolated_cpu_queues_one_work_item_on_every_cpu(paused):
    """On a cluster with no isolated CPU the key stays off: a forced qpw drain of parked CPUs runs one
    drain work item on every CPU and takes no CPU's pcp lock; it reports per CPU the pages it had,
    empties every pcp, and the zone gains their sum; the audit is ok."""
    h = paused
    free0, counts = h.frozen()
    items0, grants0 = work_items(h), committed_grants(h)
    reply = drain(h, pb.STRATEGY_QPW, force=True, trigger=pb.TRIGGER_DEMAND)
    assert reply.status == DONE, [c.error for c in reply.cpus]
    assert reply.strategy == pb.STRATEGY_QPW
    assert {c.cpu: c.pages for c in reply.cpus} == counts
    assert all(h.pcp(cpu).count == 0 for cpu in h.nodes)
    assert h.free_pages() == free0 + sum(counts.values())
    assert work_items(h) == {cpu: n + 1 for cpu, n in items0.items()}
    assert committed_grants(h) == grants0
    assert_audit_ok(h)


def test_qpw_with_an_isolated_cpu_drains_every_cpu_from_the_requester(make_cluster):
    """On a cluster started with qpw as its default and two isolated CPUs, the key is on for every CPU:
    a forced drain that names no strategy resolves to qpw, runs no drain work item on any CPU (the
    housekeeping ones included), and takes the pcp lock of each CPU that has pages once and commits;
    it reports per CPU the pages it had, empties every pcp, the zone gains their sum; the audit is ok."""
    h = make_cluster(ISOLATED, strategy="qpw")
    h.pause_with_pages([0, 1])
    free0, counts = h.frozen()
    items0, grants0 = work_items(h), committed_grants(h)
    reply = drain(h, force=True)
    assert reply.status == DONE, [c.error for c in reply.cpus]
    assert reply.strategy == pb.STRATEGY_QPW
    assert sorted(reply.cpus_marked) == sorted(h.nodes)
    assert {c.cpu: c.pages for c in reply.cpus} == counts
    assert all(h.pcp(cpu).count == 0 for cpu in h.nodes)
    assert h.free_pages() == free0 + sum(counts.values())
    assert work_items(h) == items0
    # A CPU with an empty pcp is granted nothing to commit (drain_pages_zone finds count == 0).
    assert committed_grants(h) == {cpu: n + (counts[cpu] > 0) for cpu, n in grants0.items()}
    h.set_paused(False)
    assert_audit_ok(h)
