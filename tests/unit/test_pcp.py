"""The pcp fast paths and flush arithmetic of v6.1 (rmqueue_pcplist, free_unref_page*, nr_pcp_*, free_pcppages_bulk)."""

import threading
import time
from collections import deque

import pytest

from node.cpu import wall_pcp_lock
from node.mm import profile as profiles
from node.mm.audit import audit, check_pcp
from node.mm.constants import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    NR_LOWORDER_PCP_LISTS,
    order_to_pindex,
    pageblock_order,
)
from node.mm.lock import spin_is_locked, spin_locked, spin_trylock, spin_unlock
from node.mm.pcp import (
    PerCpuPages,
    drain_pages_zone,
    free_pcppages_bulk,
    nr_pcp_free,
    nr_pcp_high,
    rmqueue,
    rmqueue_pcplist,
)
from node.mm.pcp_free import free_unref_page, free_unref_page_list
from node.mm.zone import Zone


def zone_1g():
    return Zone(0, 262144, 4)


def take_from_buddy(zone, n, order=0, mt=MIGRATE_MOVABLE):
    return [zone.rmqueue_buddy(order, mt) for _ in range(n)]


def test_successive_high_flushes_double_until_high_minus_batch():
    """Flushes without allocations free batch, 2*batch, 4*batch, ... clamped at high - batch (518/63: 63, 126,
    252, then 455, 455 at frees 518, 581, 707, 959, 1414); an allocation halves free_factor (3 -> 1) so the next
    flush frees 2*batch."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=518, batch=63)
    held = take_from_buddy(zone, 2000)
    flushes = []
    for i, pfn in enumerate(held[:1414], 1):
        before = pcp.stats.freed_high_pages
        assert free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE) == "pcp"
        if pcp.stats.freed_high_pages != before:
            flushes.append((i, pcp.stats.freed_high_pages - before))
    assert flushes == [(518, 63), (581, 126), (707, 252), (959, 455), (1414, 455)]
    assert pcp.free_factor == 3
    assert pcp.count == 518 - 455
    got = rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)
    assert pcp.free_factor == 1
    # count is 62: the 456th free reaches 518 and the flush frees batch << 1.
    for pfn in held[1414 : 1414 + 455]:
        free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE)
    assert pcp.count == 517
    free_unref_page(zone, pcp, held[1414 + 455], 0, MIGRATE_MOVABLE)
    assert pcp.count == 518 - 126 and pcp.free_factor == 2
    report = audit(
        zone, {"pcp": [(p, o) for p, o, _ in pcp.pages()], "held": [(p, 0) for p in [*held[1414 + 456 :], got]]}
    )
    assert report.ok, report.errors


def test_nr_pcp_free_cases():
    """nr_pcp_free: free_high frees everything; high < batch frees 1; otherwise batch << free_factor clamped to
    [batch, high - batch], with free_factor growing only while below high - batch."""
    pcp = PerCpuPages(0, high=518, batch=63)
    pcp.count = 300
    assert nr_pcp_free(pcp, 518, 63, True) == 300
    assert nr_pcp_free(pcp, 10, 63, False) == 1
    assert nr_pcp_free(pcp, 0, 1, False) == 1
    assert pcp.free_factor == 0
    assert [nr_pcp_free(pcp, 518, 63, False) for _ in range(5)] == [63, 126, 252, 455, 455]
    assert pcp.free_factor == 3
    # high < 2 * batch: max_nr_free = high - batch is below batch and the clamp returns it.
    assert nr_pcp_free(PerCpuPages(0), 100, 63, False) == 37


def test_nr_pcp_high_reclaim_active_and_free_high():
    """nr_pcp_high: 0 for high == 0 or free_high; min(4 * batch, high) while ZONE_RECLAIM_ACTIVE; else high."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=518, batch=63)
    assert nr_pcp_high(pcp, zone, False) == 518
    assert nr_pcp_high(pcp, zone, True) == 0
    zone.reclaim_active = True
    assert nr_pcp_high(pcp, zone, False) == 252
    pcp.high = 100
    assert nr_pcp_high(pcp, zone, False) == 100
    assert nr_pcp_high(PerCpuPages(0), zone, False) == 0


def test_reclaim_active_flushes_at_four_batches():
    """With reclaim active, the 252nd page on a high=518/batch=63 pcp triggers a flush of 63."""
    zone = zone_1g()
    zone.reclaim_active = True
    pcp = PerCpuPages(0, high=518, batch=63)
    for pfn in take_from_buddy(zone, 252):
        free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE)
    assert pcp.stats.freed_high_pages == 63
    assert pcp.count == 252 - 63


def test_free_high_flushes_everything_on_high_order_free():
    """An order 1..3 free while free_factor != 0 sets free_high: high becomes 0 and the whole pcp is flushed;
    with free_factor == 0 the same free just adds to the list."""
    for order in (1, 2, 3):
        zone = zone_1g()
        pcp = PerCpuPages(0, high=518, batch=63)
        for pfn in take_from_buddy(zone, 10):
            free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE)
        pfn = zone.rmqueue_buddy(order, MIGRATE_MOVABLE)
        free_unref_page(zone, pcp, pfn, order, MIGRATE_MOVABLE)
        assert pcp.count == 10 + (1 << order)
        pfn = zone.rmqueue_buddy(order, MIGRATE_MOVABLE)
        pcp.free_factor = 1
        free_unref_page(zone, pcp, pfn, order, MIGRATE_MOVABLE)
        assert pcp.count == 0
        assert pcp.stats.freed_high_pages == 10 + 2 * (1 << order)
        assert check_pcp(pcp) == []


def test_high_below_batch_frees_one_page_per_free():
    """Boot pageset (high 0, batch 1): every free is flushed straight back, one page at a time."""
    zone = zone_1g()
    pcp = PerCpuPages(0)
    free0 = zone.free_pages
    pfns = take_from_buddy(zone, 3)
    for pfn in pfns:
        assert free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE) == "pcp"
        assert pcp.count == 0
    assert zone.free_pages == free0
    assert pcp.stats.freed_high_pages == 3


def make_pcp_with(lists):
    pcp = PerCpuPages(7, high=1000, batch=10)
    for pindex, pfns in lists.items():
        pcp.lists[pindex] = deque(pfns)
        order = 9 if pindex == NR_LOWORDER_PCP_LISTS else pindex // 3
        pcp.count += len(pfns) << order
        if pindex == NR_LOWORDER_PCP_LISTS:
            for pfn in pfns:
                pcp.thp_migratetype[pfn] = MIGRATE_MOVABLE
    return pcp


def test_take_bulk_round_robin_from_pindex():
    """take_bulk starts at pindex, empties each list from its TAIL before moving on, wraps to min_pindex once
    the top lists are found empty, and stops as soon as count is used up."""
    pcp = make_pcp_with({0: [1, 2, 3], 1: [20, 21], 2: [40]})
    taken = pcp.take_bulk(5, 1)
    assert taken == [(21, 0, 1), (20, 0, 1), (40, 0, 2), (3, 0, 0), (2, 0, 0)]
    assert list(pcp.lists[0]) == [1]
    assert pcp.count == 1


def test_take_bulk_counts_base_pages_and_may_overshoot():
    """count is in base pages: an order-1 page uses 2, and the last page taken may overshoot (a THP for 1)."""
    pcp = make_pcp_with({0: [1], 4: [10, 12], NR_LOWORDER_PCP_LISTS: [512]})
    taken = pcp.take_bulk(3, 4)
    assert taken == [(12, 1, 1), (10, 1, 1)]
    assert pcp.take_bulk(1, 5) == [(512, 9, 1)]
    assert pcp.thp_migratetype == {}
    assert pcp.take_bulk(100, 0) == [(1, 0, 0)]
    assert pcp.count == 0 and check_pcp(pcp) == []


def test_take_bulk_is_bounded_by_count_and_detects_corruption():
    """count is clamped to pcp.count; a count larger than the lists hold raises instead of spinning forever."""
    pcp = make_pcp_with({0: [1, 2]})
    assert len(pcp.take_bulk(50, 3)) == 2
    pcp = make_pcp_with({0: [1, 2]})
    pcp.count = 5
    with pytest.raises(AssertionError, match="count 3 but lists empty"):
        pcp.take_bulk(5, 0)


def test_restore_undoes_take_bulk():
    """restore puts taken pages back so lists, count and THP types are exactly as before."""
    pcp = make_pcp_with({0: [1, 2, 3], 4: [10, 12], NR_LOWORDER_PCP_LISTS: [512, 1024]})
    before = (pcp.pages(), pcp.count)
    taken = pcp.take_bulk(pcp.count, 4)
    assert pcp.count == 0
    pcp.restore(taken)
    assert (pcp.pages(), pcp.count) == before


class FailingZone:
    reclaim_active = False

    def free_pcppages_bulk(self, pages, commit=False):
        raise ConnectionError("coordinator unreachable")


class RefusingRefills(Zone):
    """A zone whose refills come back empty (a remote zone refused the request) while its buddy has pages."""

    def rmqueue_bulk(self, order, count, migratetype):
        return []


@pytest.mark.parametrize("kernel,falls_back", [("5.19", False), ("6.1", True), ("6.19", True)])
def test_an_allocation_whose_refill_got_nothing_falls_back_to_the_buddy_from_v6_0(kernel, falls_back):
    """v6.0+ rmqueue: `if (likely(page)) goto out;` then rmqueue_buddy. v5.13 to v5.19: `page =
    rmqueue_pcplist(...); goto out;`, the pcp path's NULL being rmqueue's (docs/kernel-facts.md §21)."""
    zone = RefusingRefills(0, 8192, 2)
    pcp = PerCpuPages(0, high=1000, batch=63)
    profiles.set_up_pcp(pcp, profiles.get(kernel), 0)
    free = zone.free_pages
    pfn = profiles.pcp_ops(profiles.get(kernel)).rmqueue(zone, pcp, 0, MIGRATE_UNMOVABLE)
    assert (pfn is not None, pcp.stats.buddy_fallback_alloc, zone.free_pages) == (
        (True, 1, free - 1) if falls_back else (False, 0, free)
    )


def test_free_pcppages_bulk_restores_pages_when_zone_fails():
    """If the zone call raises, the pages go back on the pcp lists and the error propagates."""
    pcp = make_pcp_with({0: [1, 2, 3], 1: [20]})
    before = (pcp.pages(), pcp.count)
    with pytest.raises(ConnectionError):
        free_pcppages_bulk(FailingZone(), 3, pcp, 0)
    assert (pcp.pages(), pcp.count) == before


@pytest.mark.parametrize(
    "batch,expected",
    [(63, {0: 63, 1: 31, 2: 15, 3: 7, 9: 2}), (4, {0: 4, 1: 2, 2: 2, 3: 2, 9: 2}), (1, {0: 1, 1: 1, 2: 1, 3: 1, 9: 1})],
)
def test_refill_size_per_order(batch, expected):
    """An empty list is refilled with batch pages for order 0, max(batch >> order, 2) above, and 1 for batch 1."""
    for order, n in expected.items():
        zone = zone_1g()
        pcp = PerCpuPages(0, high=1000, batch=batch)
        pfn = rmqueue(zone, pcp, order, MIGRATE_UNMOVABLE)
        assert pfn is not None
        assert pcp.stats.refills == 1
        assert pcp.stats.refill_pages == n << order
        assert pcp.count == (n - 1) << order
        assert check_pcp(pcp) == []


def test_refill_appends_in_physical_order_and_allocation_takes_head():
    """Refilled pages arrive in physical order at the tail; allocations pop the head (first refilled first)."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=1000, batch=63)
    got = [rmqueue(zone, pcp, 0, MIGRATE_UNMOVABLE) for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert list(pcp.lists[0])[:3] == [5, 6, 7] and pcp.lists[0][-1] == 62


def test_pcp_is_lifo_at_head_and_flushes_cold_tail():
    """A freed page goes to the head and is the next one allocated; a flush takes the tail (oldest) first."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=1000, batch=63)
    a, b = take_from_buddy(zone, 2)
    free_unref_page(zone, pcp, a, 0, MIGRATE_MOVABLE)
    free_unref_page(zone, pcp, b, 0, MIGRATE_MOVABLE)
    assert rmqueue_pcplist(zone, pcp, 0, MIGRATE_MOVABLE) == b
    free_unref_page(zone, pcp, b, 0, MIGRATE_MOVABLE)
    assert free_pcppages_bulk(zone, 1, pcp, 1) == 1
    assert list(pcp.lists[1]) == [b]
    assert audit(zone, {"pcp": [(b, 0)]}).ok  # a is back in the zone


def test_thp_list_records_migratetype():
    """THP-order pages share one list; each page's migratetype is recorded and returned to the zone on drain."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=10000, batch=63)
    p = rmqueue(zone, pcp, pageblock_order, MIGRATE_MOVABLE)
    assert list(pcp.lists[NR_LOWORDER_PCP_LISTS]) and pcp.count == 512
    q = zone.rmqueue_buddy(pageblock_order, MIGRATE_UNMOVABLE)
    assert free_unref_page(zone, pcp, q, pageblock_order, MIGRATE_UNMOVABLE) == "pcp"
    assert pcp.lists[NR_LOWORDER_PCP_LISTS][0] == q
    assert pcp.thp_migratetype[q] == MIGRATE_UNMOVABLE
    assert (q, pageblock_order, MIGRATE_UNMOVABLE) in pcp.pages()
    assert check_pcp(pcp) == []
    assert drain_pages_zone(zone, pcp) == 1024
    assert audit(zone, {"held": [(p, pageblock_order)]}).ok


def test_uncached_orders_bypass_the_pcp():
    """Orders 4..8 and 10 are neither cached nor counted as fallbacks: they go straight to the buddy."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=1000, batch=63)
    pfn = rmqueue(zone, pcp, 4, MIGRATE_MOVABLE)
    assert pfn is not None and pcp.count == 0 and pcp.stats.buddy_fallback_alloc == 0
    assert free_unref_page(zone, pcp, pfn, 4, MIGRATE_MOVABLE) == "buddy"
    assert pcp.count == 0 and audit(zone, {}).ok


def test_trylock_failure_falls_back_to_buddy_on_alloc_and_free():
    """While another holder has pcp.lock, rmqueue takes a page from the buddy and free_unref_page frees to it."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=1000, batch=63)
    free0 = zone.free_pages
    assert spin_trylock(pcp.lock)
    try:
        pfn = rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)
        assert pfn is not None
        assert pcp.count == 0 and pcp.free_factor == 0
        assert pcp.stats.trylock_fail_alloc == 1 and pcp.stats.buddy_fallback_alloc == 1
        assert zone.free_pages == free0 - 1
        assert free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE) == "trylock"
        assert pcp.stats.trylock_fail_free == 1 and pcp.stats.buddy_fallback_free == 1
        assert pcp.count == 0 and zone.free_pages == free0
    finally:
        spin_unlock(pcp.lock)
    assert audit(zone, {}).ok


def test_empty_refill_falls_back_and_counts():
    """When the zone cannot refill the list, rmqueue counts a buddy fallback (and the buddy fails too)."""
    zone = Zone(0, 1024, 1)
    pcp = PerCpuPages(0, high=1000, batch=63)
    held = take_from_buddy(zone, 1, order=10, mt=MIGRATE_MOVABLE)
    assert held[0] is not None and zone.free_pages == 0
    assert rmqueue(zone, pcp, 0, MIGRATE_MOVABLE) is None
    assert pcp.stats.buddy_fallback_alloc == 1 and pcp.stats.refills == 1 and pcp.stats.refill_pages == 0


def test_isolate_frees_go_to_zone_and_highatomic_to_movable_list():
    """MIGRATE_ISOLATE frees bypass the pcp; MIGRATE_HIGHATOMIC frees land on the MOVABLE pcp list."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=1000, batch=63)
    a, b = take_from_buddy(zone, 2)
    free0 = zone.free_pages
    assert free_unref_page(zone, pcp, a, 0, MIGRATE_ISOLATE) == "isolate"
    assert pcp.count == 0 and zone.free_pages == free0 + 1
    assert free_unref_page(zone, pcp, b, 0, MIGRATE_HIGHATOMIC) == "pcp"
    assert list(pcp.lists[order_to_pindex(MIGRATE_MOVABLE, 0)]) == [b]


def test_free_unref_page_list_blocks_on_the_pcp_lock():
    """v6.1 free_unref_page_list spins on pcp.lock instead of trylocking: it waits for the holder and then puts
    every page on the pcp (no buddy fallback), while a single free_unref_page meanwhile falls back."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=1000, batch=63, lock=wall_pcp_lock())  # a second thread holds it
    pfns = take_from_buddy(zone, 40)
    held, released = threading.Event(), []

    def holder():
        with spin_locked(pcp.lock):
            held.set()
            time.sleep(0.05)
            released.append(True)

    t = threading.Thread(target=holder)
    t.start()
    held.wait()
    assert free_unref_page(zone, pcp, pfns[0], 0, MIGRATE_MOVABLE) == "trylock"
    free_unref_page_list(zone, pcp, [(p, 0, MIGRATE_MOVABLE) for p in pfns[1:]])
    assert released == [True]  # it could only finish after the holder let go
    t.join()
    assert pcp.count == 39
    assert pcp.stats.trylock_fail_free == 1
    assert not spin_is_locked(pcp.lock)


def test_free_unref_page_list_routes_isolate_and_uncached_orders_to_zone():
    """Isolate pages and orders the pcp does not cache go to the zone; the rest to the pcp lists."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=1000, batch=63)
    a, b = take_from_buddy(zone, 2)
    c = zone.rmqueue_buddy(5, MIGRATE_RECLAIMABLE)
    free0 = zone.free_pages
    free_unref_page_list(zone, pcp, [(a, 0, MIGRATE_ISOLATE), (b, 0, MIGRATE_HIGHATOMIC), (c, 5, MIGRATE_RECLAIMABLE)])
    assert zone.free_pages == free0 + 1 + 32
    assert list(pcp.lists[order_to_pindex(MIGRATE_MOVABLE, 0)]) == [b]


def test_drain_pages_zone_empties_pcp():
    """drain_pages_zone frees every page to the zone, counts the drain, and is a no-op on an empty pcp."""
    zone = zone_1g()
    pcp = PerCpuPages(0, high=1000, batch=63)
    for order in (0, 1, 3, 9):
        rmqueue(zone, pcp, order, MIGRATE_RECLAIMABLE if order < 9 else MIGRATE_MOVABLE)
    n = pcp.count
    assert n > 0
    assert drain_pages_zone(zone, pcp) == n
    assert pcp.count == 0 and pcp.stats.drains == 1 and pcp.stats.freed_drain_pages == n
    assert drain_pages_zone(zone, pcp) == 0 and pcp.stats.drains == 1
    assert check_pcp(pcp) == []
