"""Memory offline's zone_pcp_disable as the kernel runs it (mm/memory_hotplug.c offline_pages and
mm/page_alloc.c zone_pcp_disable/enable, v6.1; docs/kernel-facts.md §22): the pcp lists are disabled and
every CPU drained once, before the range is isolated, and the retries that follow drain nothing;
pcp_batch_high_lock keeps zone_pcp_update from giving the lists a high back until zone_pcp_enable; and two
offlines at once leave the pageset as it was."""

import dataclasses

from coordinator import contig_rule
from coordinator.pageset import Pageset
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.constants import MIGRATE_ISOLATE
from node.mm.zone import Zone
from tests.unit.test_virtual_contig import PAGEBLOCK, WARMUP_S, cluster, run

__all__ = ["cluster"]  # the range operations' fixture, which pytest finds in this module's names


def test_a_cpu_going_away_during_an_offline_changes_high_only_at_zone_pcp_enable():
    zone = Zone(4096, 1 << 18, 4)
    pageset = Pageset(zone, 63, 4)
    pageset.zone_pcp_disable()
    pageset.zone_pcp_update(3)  # zone_pcp_update waits on pcp_batch_high_lock
    assert (pageset.high, pageset.batch, pageset.high_max) == (0, 1, 0)
    pageset.zone_pcp_enable(3)
    assert (pageset.high, pageset.batch) == (zone.zone_highsize(63, 3), 63)


def test_the_last_of_two_offlines_gives_the_pageset_back():
    zone = Zone(4096, 1 << 18, 4)
    pageset = Pageset(zone, 63, 4)
    high = pageset.high
    pageset.zone_pcp_disable()
    pageset.zone_pcp_disable()
    pageset.zone_pcp_enable(4)
    assert (pageset.high, pageset.batch) == (0, 1)
    pageset.zone_pcp_enable(4)
    assert (pageset.high, pageset.batch) == (high, 63)


def test_an_offline_drains_every_cpu_once_before_it_isolates_and_retries_without_draining(cluster):
    c = cluster
    c.nodes.cpus[0].set_paused(True, by="test")  # its allocations stay held: the range stays busy
    c.nodes.run(c.queue.clock() + WARMUP_S)
    pfn = c.nodes.allocs[0].pages()[0][0]
    start = pfn - pfn % PAGEBLOCK
    isolated_at_drain = []
    contig = c.coordinator.contig
    on_drain = contig.on_drain

    def seen(record):
        isolated_at_drain.append(c.zone.zone.get_pageblock_migratetype(start) == MIGRATE_ISOLATE)
        return on_drain(record)

    c.coordinator.contig = dataclasses.replace(contig, on_drain=seen)
    # 100 ms of the wall engine's time: 0.4 ms of kernel time here (Contig.wall_s), retried every 0.2 ms.
    result = run(c, contig_rule.offline_pages(c.coordinator.contig, start, PAGEBLOCK, 100))
    assert not result.ok and result.attempts >= 2 and "held by cpu 0" in result.error
    assert [(d.trigger, sorted(d.cpus_marked)) for d in result.drains] == [(pb.TRIGGER_MEMORY_OFFLINE, [0, 1, 2, 3])]
    assert isolated_at_drain == [False]
    assert c.zone.zone.get_pageblock_migratetype(start) != MIGRATE_ISOLATE
    c.nodes.cpus[0].set_paused(False, by="test")
    assert c.audit().ok


def test_two_offlines_at_once_leave_every_cpu_its_high_and_batch(cluster):
    c = cluster
    before = [(pcp.high, pcp.batch) for pcp in c.nodes.pcps]
    top = c.zone.zone.end_pfn
    outcomes: list = []
    for start in (top - PAGEBLOCK, top - 2 * PAGEBLOCK):
        c.offline_pages(start, PAGEBLOCK, 0, lambda result, error: outcomes.append((result, error)))
    while len(outcomes) < 2:
        c.queue.step()
    assert all(error is None and result.ok for result, error in outcomes), outcomes
    c.nodes.run(c.queue.clock() + 2 * c.heartbeat_s)
    assert [(pcp.high, pcp.batch) for pcp in c.nodes.pcps] == before
