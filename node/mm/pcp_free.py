"""Freeing into the per-cpu lists: free_unref_page, free_unref_page_commit, the flush above high and the
batched free_unref_page_list, as in mm/page_alloc.c (v6.1; the v6.7+ commit under pcp->high auto-tuning,
node.mm.pcp_high; v6.19's flush in pcp->batch chunks). node.mm.pcp has the structure, the allocation
side and the drains; node.mm.profile picks the variants each kernel runs."""

from collections.abc import Iterable

from . import pcp_high
from .constants import (
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    NR_LOWORDER_PCP_LISTS,
    PAGE_ALLOC_COSTLY_ORDER,
    Page,
    pageblock_order,
)
from .lock import LockBusy, spin_lock, spin_trylock, spin_unlock
from .pcp import PerCpuPages, ZoneOps, free_pcppages_bulk, nr_pcp_free

SWAP_CLUSTER_MAX = 32


def free_unref_page_commit(zone: ZoneOps, pcp: PerCpuPages, pfn: int, migratetype: int, order: int) -> bool:
    """Add the page at the head of its list and flush if count reaches high. Caller holds the lock;
    returns whether it still does (free_high_flush: False only when a batched flush lost it)."""
    if pcp.auto_high:
        return _free_unref_page_commit_tuned(zone, pcp, pfn, migratetype, order)
    if order <= PAGE_ALLOC_COSTLY_ORDER:
        pindex = MIGRATE_PCPTYPES * order + migratetype
        # High-order (non-THP) pages on pcp lists fragment memory: during a run of frees, flush all of them.
        free_high = order and pcp.free_factor
    else:
        pindex = NR_LOWORDER_PCP_LISTS + pcp.thp_lists[migratetype]  # order_to_pindex, inlined
        pcp.thp_migratetype[pfn] = migratetype
        free_high = False
    pcp.lists[pindex].appendleft(pfn)
    count = pcp.count = pcp.count + (1 << order)
    # nr_pcp_high, inlined for the fast path.
    high = pcp.high
    if not high or free_high:
        high = 0
    elif zone.reclaim_active:
        high = min(pcp.batch << 2, high)
    if count >= high:
        return free_high_flush(zone, pcp, nr_pcp_free(pcp, high, pcp.batch, bool(free_high)), pindex)
    return True


def _free_unref_page_commit_tuned(zone: ZoneOps, pcp: PerCpuPages, pfn: int, migratetype: int, order: int) -> bool:
    """v6.7 to v6.12 free_unref_page_commit: the page at its list's head, then pcp_high decides the flush."""
    pcp.alloc_factor >>= 1  # a free shrinks the next refill (nr_pcp_alloc)
    if order <= PAGE_ALLOC_COSTLY_ORDER:
        pindex = MIGRATE_PCPTYPES * order + migratetype
    else:
        pindex = NR_LOWORDER_PCP_LISTS + pcp.thp_lists[migratetype]  # order_to_pindex, inlined
        pcp.thp_migratetype[pfn] = migratetype
    pcp.lists[pindex].appendleft(pfn)
    pcp.count += 1 << order
    batch = pcp.batch
    free_high = pcp_high.free_high_order(pcp, order, batch)
    pcp_high.count_free(pcp, order, batch)
    high = pcp_high.nr_pcp_high(pcp, batch, free_high, zone.reclaim_active, zone.below_high)
    if pcp.count >= high:
        return free_high_flush(zone, pcp, pcp_high.nr_pcp_free(pcp, batch, high, free_high), pindex)
    return True


def free_high_flush(zone: ZoneOps, pcp: PerCpuPages, to_free: int, pindex: int) -> bool:
    """The flush at the end of free_unref_page_commit (free_frozen_page_commit since v6.15), lock held:
    free `to_free` base pages (nr_pcp_free()) from `pindex` on, in one free_pcppages_bulk (one zone->lock
    hold) up to v6.18. With `free_high_batched`, v6.19's loop (Hahn, "mm/page_alloc: batch page freeing
    in free_frozen_page_commit", v5 3/3; 91e691296646, in Linus's master since 2025-12-05): chunks
    of pcp->batch, the pcp lock dropped and re-trylocked between them, giving up if that fails. Returns
    whether the lock is still held (False: the rest stays above high; the caller must not unlock).
    The migrated-CPU check has no model (a model CPU does not migrate)."""
    stats = pcp.stats
    if not pcp.free_high_batched:
        stats.freed_high_pages += free_pcppages_bulk(zone, to_free, pcp, pindex, commit=True)
        return True
    batch = pcp.batch
    while to_free > 0 and pcp.count > 0:
        to_free_batched = min(to_free, batch)
        stats.freed_high_pages += free_pcppages_bulk(zone, to_free_batched, pcp, pindex, commit=True)
        to_free -= to_free_batched
        if to_free <= 0 or pcp.count <= 0:
            break
        spin_unlock(pcp.lock)
        if not spin_trylock(pcp.lock):
            return False
    return True


def free_unref_page(zone: ZoneOps, pcp: PerCpuPages, pfn: int, order: int, migratetype: int) -> str:
    """Free one page; returns where it went: "pcp", "buddy" (uncached order), "isolate" or "trylock"."""
    if order and not (order <= PAGE_ALLOC_COSTLY_ORDER or order == pageblock_order):
        zone.free_one_page(pfn, order, migratetype)  # __free_pages_ok
        return "buddy"
    if migratetype >= MIGRATE_PCPTYPES:
        if migratetype == MIGRATE_ISOLATE:
            zone.free_one_page(pfn, order, migratetype)
            return "isolate"
        # HIGHATOMIC goes on the movable list so the reserve can be reclaimed from the pcp.
        migratetype = MIGRATE_MOVABLE
    lock = pcp.lock
    try:
        lock.get_nowait()  # pcp_spin_trylock
    except LockBusy:
        stats = pcp.stats
        stats.trylock_fail_free += 1
        stats.buddy_fallback_free += 1
        zone.free_one_page(pfn, order, migratetype)
        return "trylock"
    try:
        count = pcp.count + 1
        if not (order or count >= pcp.high or pcp.auto_high or zone.reclaim_active):
            # free_unref_page_commit's common case, inlined for the same reason as in rmqueue: an order-0
            # page goes to its list's head and count stays below high, so nothing is flushed.
            pcp.lists[migratetype].appendleft(pfn)
            pcp.count = count
            lock.put(True)
            return "pcp"
        held = free_unref_page_commit(zone, pcp, pfn, migratetype, order)
    except BaseException:
        lock.put(True)  # a flush that raised (the zone did not answer) put its pages back, lock held
        raise
    if held:
        lock.put(True)
    return "pcp"


def free_unref_page_list(zone: ZoneOps, pcp: PerCpuPages, pages: Iterable[Page], done: list[int] | None = None) -> None:
    """Batched free (v6.0/6.1): isolate pages and uncached orders go straight to the zone; the rest are
    committed under a BLOCKING pcp lock (6.2 made this a trylock), dropped every SWAP_CLUSTER_MAX pages.
    ``done`` (a list) gets each pfn once it is freed to the zone or on a pcp list, so a caller whose
    free raised half-way (the zone did not answer) knows which pages it still holds."""
    if done is None:
        done = []
    to_pcp: list[Page] = []
    for pfn, order, mt in pages:
        if mt == MIGRATE_ISOLATE or not (order <= PAGE_ALLOC_COSTLY_ORDER or order == pageblock_order):
            zone.free_one_page(pfn, order, mt)
            done.append(pfn)
        else:
            to_pcp.append((pfn, order, MIGRATE_MOVABLE if mt >= MIGRATE_PCPTYPES else mt))
    if not to_pcp:
        return
    lock = pcp.lock
    spin_lock(lock)
    try:
        batch_count = 0
        for pfn, order, mt in to_pcp:
            done.append(pfn)  # on the list from here on, even if the flush this triggers fails
            # Holds the lock after: no profile that spins here (5.19, 6.1) batches its flush.
            free_unref_page_commit(zone, pcp, pfn, mt, order)
            batch_count += 1
            if batch_count == SWAP_CLUSTER_MAX:
                # Bound the lock hold time on long lists (IRQ-off time in the kernel).
                spin_unlock(lock)
                batch_count = 0
                spin_lock(lock)
    finally:
        spin_unlock(lock)
