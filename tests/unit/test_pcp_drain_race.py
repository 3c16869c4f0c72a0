"""The pcp->count race of 66eca1021a42 ("mm/page_alloc: fix pcp->count race between drain_pages_zone() vs
__rmqueue_pcplist()", Li Zhijian, v6.11; Fixes: 4b23a68f9536, v6.0), replayed on the pure model.

The interleaving from the commit message: CPU1 holds its pcp lock inside __rmqueue_pcplist, rmqueue_bulk
has put pages on the empty list, and pcp->count is not yet raised; CPU0, in zone_pcp_disable (high 0,
batch 1, then __drain_all_pages(zone, true)), runs drain_pages_zone for CPU1. A drain that reads
pcp->count before taking the lock sees 0 and skips CPU1; CPU1 then counts its pages and unlocks, and
they stay on a list that offline_pages waits, forever, to see empty. The fixed drain reads count under
the lock, so it waits for CPU1 and drains the pages.
"""

import pytest

from node.mm import profile as profiles
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.pcp import PerCpuPages, pageset_update
from node.mm.zone import Zone
from tests.unit.pcp_locks import LockWrapper


class HeldByRefill(LockWrapper):
    """pcp->lock held by CPU1 mid-__rmqueue_pcplist: the first blocking acquire (the drainer's) waits
    for CPU1 to finish (``finish``: count the refill, unlock) before it gets the lock."""

    def __init__(self, finish):
        super().__init__()
        self._lock.acquire()  # CPU1 holds it
        self.finish = finish
        self.drainer_waited = False

    def acquire(self, blocking=True, timeout=-1):
        if self.locked() and blocking and not self.drainer_waited:
            self.drainer_waited = True
            self.finish()  # CPU1 runs on while the drainer spins
        return super().acquire(blocking, timeout)


def zone_pcp_disable_during_refill(kernel):
    """CPU1 refills 63 pages; CPU0 disables the zone's pcp and drains CPU1 meanwhile. Returns (pages
    the drain freed, pages left on CPU1's lists once CPU1 has unlocked)."""
    zone = Zone(0, 262144, 4)
    profile = profiles.get(kernel)
    pcp = PerCpuPages(1, high=321, batch=63)
    pcp.auto_high = profile.pcp_high_auto

    def cpu1_finishes_refill():
        pcp.count += 63  # __rmqueue_pcplist: pcp->count += alloced << order
        pcp.lock.release()

    pcp.lock = HeldByRefill(cpu1_finishes_refill)
    # rmqueue_bulk has filled the list; the count is not updated yet.
    pcp.lists[MIGRATE_MOVABLE].extend(zone.rmqueue_bulk(0, 63, MIGRATE_MOVABLE))
    pageset_update(pcp, 0, 0, 1)  # zone_pcp_disable: __zone_set_pageset_high_and_batch(zone, 0, 0, 1)
    drained = profiles.pcp_ops(profile).drain_pages_zone(zone, pcp)
    if not pcp.lock.drainer_waited:
        cpu1_finishes_refill()  # the drain never touched the lock: CPU1 finishes after it
    return drained, pcp.count


@pytest.mark.parametrize("kernel", ["6.1", "6.2", "6.6", "6.12-count-race"])
def test_a_drain_reading_count_unlocked_leaves_the_refill_on_the_list(kernel):
    """Kernels without 66eca1021a42 (6.1 to 6.6; 6.12-count-race as v6.10 was): the drain skips the CPU and
    63 pages stay on its lists after zone_pcp_disable, so offline_pages would wait forever."""
    assert zone_pcp_disable_during_refill(kernel) == (0, 63)


def test_the_fix_reads_count_under_the_lock_and_drains_the_refill():
    """6.12 (66eca1021a42): the drain waits for CPU1's lock, then sees and frees all 63 pages, in chunks of
    batch << 5 = 32 pages (zone_pcp_disable set batch 1)."""
    assert zone_pcp_disable_during_refill("6.12") == (63, 0)
