"""Per-cpu page lists (struct per_cpu_pages) and their fast paths, as in mm/page_alloc.c (v6.1).

Models ``rmqueue_pcplist`` + ``__rmqueue_pcplist``, ``rmqueue`` (pcp part + ``rmqueue_buddy`` fallback),
the pcp half of ``rmqueue_bulk``, ``nr_pcp_high``, ``nr_pcp_free``, ``free_pcppages_bulk``,
``drain_pages_zone`` and ``decay_pcp_high`` — the v6.0/v6.1 design in which ``pcp->lock`` is a spinlock
that remote CPUs may take to drain (Mel Gorman's series). The free side (``free_unref_page``,
``free_unref_page_commit``, ``free_unref_page_list``) is node.mm.pcp_free.

The zone is any object with the ZoneOps methods (``reclaim_active``, ``rmqueue_bulk``, ``rmqueue_buddy``,
``free_pcppages_bulk``, ``free_one_page``): the in-process Zone or a gRPC proxy for the coordinator's.

Lists: ``lists[pindex]`` is a deque of head pfns; HEAD = left end (hot: frees add here and allocations take
from here, LIFO), TAIL = right end (cold: refills append here and bulk frees take from here). Pages on low-order
lists have the migratetype implied by pindex. How many THP lists there are, and which type goes on which,
is the kernel's (``thp_lists``, node.mm.constants); a THP list records each page's type in
``thp_migratetype`` (the kernel keeps it in page->index via set_pcppage_migratetype).

Deviations:
- pcp->lock is the caller's lock (node.mm.lock.PcpLock: the wall node's a queue.SimpleQueue holding a
  token); "IRQs off" and the pcp_trylock_prepare/finish UP dance do not exist.
- ``free_pcppages_bulk`` is split: ``PerCpuPages.take_bulk`` walks the lists, then the zone frees the pages in
  one call. If the zone call raises (e.g. the coordinator is unreachable), the pages are put back (``restore``)
  and the error propagates, so no page is lost; the kernel cannot fail here. An empty take does not call the zone.
- The pcp paths do not validate pfns (the kernel's free_pages_prepare checks page flags): a double free onto a
  pcp list is caught by the zone when the page is flushed, or by audit.
- ``free_unref_page_list`` accepts (pfn, order, migratetype) of any order; the kernel's takes order-0 pages only.
  Orders the pcp does not cache go to ``zone.free_one_page``. Like v6.1 it drops and retakes the lock every
  SWAP_CLUSTER_MAX pages to bound the hold time.
- Refill size follows v6.1 ``__rmqueue_pcplist``: ``max(batch >> order, 2)`` only when batch > 1; with batch 1
  (boot pageset) every refill asks for 1 page, whatever the order.
- ``rmqueue``'s ALLOC_HARDER highatomic attempt, check_new_pages and the CMA exclusion are not modelled.
"""

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from . import pcp_high
from .constants import (
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    NR_LOWORDER_PCP_LISTS,
    PAGE_ALLOC_COSTLY_ORDER,
    THP_LIST_PER_TYPE,
    THP_LIST_SHARED,
    Page,
    nr_pcp_lists,
    order_to_pindex,
    pageblock_order,
    pindex_to_order,
)
from .lock import LockBusy, PcpLock, UnsharedPcpLock, spin_locked

_PINDEX_ORDER = tuple(pindex_to_order(i) for i in range(nr_pcp_lists(THP_LIST_PER_TYPE)))  # the most lists


class ZoneOps(Protocol):
    """The zone as the pcp paths call it: node.mm.zone.Zone in process, node.zone_client.ZoneClient over gRPC."""

    @property
    def reclaim_active(self) -> bool: ...  # ZONE_RECLAIM_ACTIVE, a racy read

    @property
    def below_high(self) -> bool: ...  # ZONE_BELOW_HIGH (v6.7+), a racy read

    def rmqueue_bulk(self, order: int, count: int, migratetype: int) -> list[int]: ...

    def rmqueue_buddy(self, order: int, migratetype: int) -> int | None: ...

    def free_pcppages_bulk(self, pages: list[Page], commit: bool = False) -> None: ...  # commit: Zone's

    def free_one_page(self, pfn: int, order: int, migratetype: int) -> None: ...


@dataclass(slots=True, eq=False)
class PcpStats:
    """Counters the node exports as metrics. ``*_pages`` are base pages; ``refills`` counts rmqueue_bulk calls,
    ``drains`` counts drain_pages_zone calls that found pages."""

    trylock_fail_alloc: int = 0
    trylock_fail_free: int = 0
    buddy_fallback_alloc: int = 0
    buddy_fallback_free: int = 0
    refill_pages: int = 0
    refills: int = 0
    freed_high_pages: int = 0
    freed_drain_pages: int = 0
    drains: int = 0


class PerCpuPages:
    __slots__ = (
        "cpu",
        "lock",
        "count",
        "high",
        "batch",
        "free_factor",
        "lists",
        "thp_lists",
        "thp_migratetype",
        "stats",
        "auto_high",
        "high_min",
        "high_max",
        "alloc_factor",
        "free_count",
        "flags",
        "free_high_batched",
        "decay_pcp_high_batched",
        "free_high_half_high_min",
        "free_factor_capped",
    )

    def __init__(self, cpu: int, high: int = 0, batch: int = 1, lock: PcpLock | None = None) -> None:
        # Defaults are the boot pageset: high=0 means every free is flushed at once.
        self.cpu = cpu
        self.lock: PcpLock = UnsharedPcpLock() if lock is None else lock
        self.count = 0
        self.high = high
        self.batch = batch
        self.free_factor = 0
        # v6.7+ (pcp_high): the fast paths tune high between high_min and high_max, with alloc_factor,
        # free_count and the PCPF_* flags instead of free_factor. Off: the v6.1 arithmetic (6.6 and older).
        self.auto_high = False
        self.high_min = self.high_max = high
        self.alloc_factor = 0
        self.free_count = 0
        self.flags = 0
        # v6.19 (Hahn's batching series): the free path's flush (free_high_flush, 3/3) and decay_pcp_high
        # (2/3, also in 6.12.67+) free in pcp->batch chunks.
        self.free_high_batched = False
        self.decay_pcp_high_batched = False
        # Dhama's free_high threshold (pcp_high.free_high_order): batch + high_min / 2 instead of batch.
        self.free_high_half_high_min = False
        # 6.1.104+ and 6.6.45+ (nr_pcp_free): free_factor stops at CONFIG_PCP_BATCH_SCALE_MAX.
        self.free_factor_capped = False
        self.thp_lists: tuple[int, ...] = THP_LIST_SHARED  # v6.0 to v6.9; set_thp_lists for another kernel
        self.lists: list[deque[int]] = [deque() for _ in range(nr_pcp_lists(self.thp_lists))]
        self.thp_migratetype: dict[int, int] = {}
        self.stats = PcpStats()

    def __repr__(self) -> str:
        return (
            f"PerCpuPages(cpu={self.cpu}, count={self.count}, high={self.high}, batch={self.batch}, "
            f"free_factor={self.free_factor})"
        )

    def set_thp_lists(self, thp_lists: tuple[int, ...]) -> None:
        """The kernel's THP list layout (node.mm.constants): a compile-time array size there, so set on
        an empty pcp, before its CPU's first allocation."""
        if self.count:
            raise ValueError(f"pcp cpu{self.cpu}: THP lists set with {self.count} pages on the lists")
        self.thp_lists = thp_lists
        self.lists = [deque() for _ in range(nr_pcp_lists(thp_lists))]

    def pages(self) -> list[Page]:
        """(pfn, order, migratetype) of every page on the lists, list by list, head to tail.

        Each list is copied whole (no thread switch within a copy), so this may be read while the
        CPU's thread runs: a page may then be missed or seen on two lists, never crash the read."""
        lists = [lst.copy() for lst in self.lists]
        thp_mt = self.thp_migratetype.copy()  # after the lists: a THP missing here has left them
        out: list[Page] = []
        for pindex, lst in enumerate(lists):
            order = _PINDEX_ORDER[pindex]
            for pfn in lst:
                if pindex < NR_LOWORDER_PCP_LISTS:
                    out.append((pfn, order, pindex % MIGRATE_PCPTYPES))
                elif pfn in thp_mt:
                    out.append((pfn, order, thp_mt[pfn]))
        return out

    def take_bulk(self, count: int, pindex: int) -> list[Page]:
        """The list walk of free_pcppages_bulk: up to ``count`` base pages, round-robin from ``pindex``,
        tails first. Caller holds the lock."""
        count = min(count, self.count)
        lists = self.lists
        min_pindex, max_pindex = 0, len(lists) - 1
        pindex -= 1  # so the requested pindex is drained first
        taken: list[Page] = []
        while count > 0:
            while True:
                pindex += 1
                if pindex > max_pindex:
                    pindex = min_pindex
                lst = lists[pindex]
                if lst:
                    break
                # Empty lists at either end of the window are never revisited.
                if pindex == max_pindex:
                    max_pindex -= 1
                if pindex == min_pindex:
                    min_pindex += 1
                if min_pindex > max_pindex:
                    raise AssertionError(
                        f"pcp cpu{self.cpu}: count {self.count} but lists empty with {count} base pages left to free"
                    )
            order = _PINDEX_ORDER[pindex]
            nr_pages = 1 << order
            thp = pindex >= NR_LOWORDER_PCP_LISTS
            while True:
                pfn = lst.pop()
                mt = self.thp_migratetype.pop(pfn) if thp else pindex % MIGRATE_PCPTYPES
                taken.append((pfn, order, mt))
                count -= nr_pages
                self.count -= nr_pages
                if count <= 0 or not lst:
                    break
        return taken

    def discard(self) -> None:
        """Empty every list without freeing anything (the pages are the zone's now: this CPU
        was declared dead). Caller holds the lock."""
        for lst in self.lists:
            lst.clear()
        self.thp_migratetype.clear()
        self.count = 0
        self.free_factor = self.alloc_factor = self.free_count = self.flags = 0

    def restore(self, pages: Sequence[Page]) -> None:
        """Undo take_bulk: each page back at its list's tail, so every list is as it was. Caller holds the lock."""
        for pfn, order, mt in reversed(pages):
            pindex = order_to_pindex(mt, order, self.thp_lists)
            if pindex >= NR_LOWORDER_PCP_LISTS:
                self.thp_migratetype[pfn] = mt
            self.lists[pindex].append(pfn)
            self.count += 1 << order


def pageset_update(pcp: PerCpuPages, high_min: int, high_max: int, batch: int) -> None:
    """pageset_update: plain stores the fast path reads racily (WRITE_ONCE in the kernel). From v6.7 the
    zone sets high_min and high_max and the fast paths clamp high into them on their next use; before,
    it sets high itself (high_max is then ignored)."""
    pcp.batch = batch
    if pcp.auto_high:
        pcp.high_min, pcp.high_max = high_min, high_max
    else:
        pcp.high = pcp.high_min = pcp.high_max = high_min


def on_pcp_list(pcp: PerCpuPages, pfn: int, order: int, migratetype: int) -> bool:
    """Whether a page sits on the list free_unref_page would have put it on (a slow scan, for
    error paths only)."""
    if migratetype >= MIGRATE_PCPTYPES:
        migratetype = MIGRATE_MOVABLE
    if not (order <= PAGE_ALLOC_COSTLY_ORDER or order == pageblock_order):
        return False
    return pfn in pcp.lists[order_to_pindex(migratetype, order, pcp.thp_lists)]


def nr_pcp_high(pcp: PerCpuPages, zone: ZoneOps, free_high: bool) -> int:
    high = pcp.high
    if not high or free_high:
        return 0
    if not zone.reclaim_active:
        return high
    # While reclaim is active, keep fewer pages stranded on pcp lists.
    return min(pcp.batch << 2, high)


def nr_pcp_free(pcp: PerCpuPages, high: int, batch: int, free_high: bool) -> int:
    if free_high:
        return pcp.count  # batch-freeing high-order pages: free everything
    if high < batch:
        return 1  # pcp disabled or boot pageset
    min_nr_free = batch
    max_nr_free = high - batch  # leave at least batch pages on the lists
    # Double the amount freed on each flush without an intervening allocation; the LTS backports of
    # 52166607ecc9 stop the doubling at free_factor CONFIG_PCP_BATCH_SCALE_MAX.
    batch <<= pcp.free_factor
    if batch < max_nr_free and not (pcp.free_factor_capped and pcp.free_factor >= pcp_high.PCP_BATCH_SCALE_MAX):
        pcp.free_factor += 1
    return min(max(batch, min_nr_free), max_nr_free)


def free_pcppages_bulk(zone: ZoneOps, count: int, pcp: PerCpuPages, pindex: int, commit: bool = False) -> int:
    """Take up to ``count`` base pages off the lists and free them to the zone; returns base pages freed.
    ``commit``: free_unref_page_commit's flush, after which the zone tests ZONE_BELOW_HIGH (node.mm.zone)."""
    taken = pcp.count
    pages = pcp.take_bulk(count, pindex)
    if not pages:
        return 0
    taken -= pcp.count  # take_bulk lowers count by each page's base pages
    try:
        zone.free_pcppages_bulk(pages, commit)
    except BaseException:
        pcp.restore(pages)  # the zone never got them: keep them on the pcp rather than lose them
        raise
    return taken


def rmqueue_bulk(zone: ZoneOps, order: int, count: int, pcp: PerCpuPages, pindex: int, migratetype: int) -> int:
    """Refill ``lists[pindex]`` with up to ``count`` pages from the zone, appended at the tail (physical order)."""
    pfns = zone.rmqueue_bulk(order, count, migratetype)
    n = len(pfns)
    pcp.lists[pindex].extend(pfns)
    if pindex >= NR_LOWORDER_PCP_LISTS:
        thp_mt = pcp.thp_migratetype
        for pfn in pfns:
            thp_mt[pfn] = migratetype
    stats = pcp.stats
    stats.refills += 1
    stats.refill_pages += n << order
    pcp.count += n << order
    return n


def _rmqueue_pcplist(zone: ZoneOps, pcp: PerCpuPages, order: int, migratetype: int, pindex: int) -> int | None:
    """__rmqueue_pcplist: a page off ``lists[pindex]``, refilled from the zone if empty. Caller holds the lock."""
    lst = pcp.lists[pindex]
    if not lst:
        if pcp.auto_high:
            # v6.7+: high grows with each refill unless the zone is under its high watermark (ZONE_BELOW_HIGH).
            batch = pcp_high.nr_pcp_alloc(pcp, order, zone.below_high)
        else:
            batch = pcp.batch
            if batch > 1:
                # Scale batch by order; batch 1 (boot pageset) must not store pages.
                batch = max(batch >> order, 2)
        rmqueue_bulk(zone, order, batch, pcp, pindex, migratetype)
        if not lst:
            return None
    pfn = lst.popleft()
    if pindex >= NR_LOWORDER_PCP_LISTS:
        del pcp.thp_migratetype[pfn]
    pcp.count -= 1 << order
    return pfn


def rmqueue_pcplist(zone: ZoneOps, pcp: PerCpuPages, order: int, migratetype: int) -> int | None:
    if not 0 <= migratetype < MIGRATE_PCPTYPES:
        raise ValueError(f"migratetype {migratetype} has no pcp list")
    pindex = order_to_pindex(migratetype, order, pcp.thp_lists)  # rmqueue inlines order 0, the hot one
    lock = pcp.lock
    try:
        lock.get_nowait()  # pcp_spin_trylock
    except LockBusy:
        # A remote drain (or another context) holds the lock: the caller falls back to the buddy.
        pcp.stats.trylock_fail_alloc += 1
        return None
    try:
        # An allocation halves how much the next high flush frees (v6.7+: free_count, before: free_factor).
        pcp.free_factor >>= 1
        pcp.free_count >>= 1
        return _rmqueue_pcplist(zone, pcp, order, migratetype, pindex)
    finally:
        lock.put(True)


def rmqueue(zone: ZoneOps, pcp: PerCpuPages, order: int, migratetype: int) -> int | None:
    if not order and 0 <= migratetype < MIGRATE_PCPTYPES:
        # rmqueue_pcplist for order 0, inlined along with _rmqueue_pcplist's page-on-the-list case: the pair's
        # two trylocks cost ~4 list ops (node.mm.lock), so each saved call (~1.5) weighs on the `pcpsim bench`
        # target of 15 (13 with margin).
        lock = pcp.lock
        try:
            lock.get_nowait()  # pcp_spin_trylock
        except LockBusy:
            pcp.stats.trylock_fail_alloc += 1
            page = None
        else:
            try:
                if pcp.free_factor or pcp.free_count:  # one test for the common case: both 0
                    pcp.free_factor >>= 1
                    pcp.free_count >>= 1
                lst = pcp.lists[migratetype]
                if lst:
                    pcp.count -= 1
                    return lst.popleft()
                page = _rmqueue_pcplist(zone, pcp, 0, migratetype, migratetype)
            finally:
                lock.put(True)
    elif order <= PAGE_ALLOC_COSTLY_ORDER or order == pageblock_order:
        page = rmqueue_pcplist(zone, pcp, order, migratetype)
    else:
        return zone.rmqueue_buddy(order, migratetype)
    if page is not None:
        return page
    pcp.stats.buddy_fallback_alloc += 1
    return zone.rmqueue_buddy(order, migratetype)


def rmqueue_no_fallback(zone: ZoneOps, pcp: PerCpuPages, order: int, migratetype: int) -> int | None:
    """rmqueue of v5.13 to v5.19: an order the pcp lists hold is taken from them, and what the pcp path
    gives is rmqueue's, no page (its refill found none) included: `page = rmqueue_pcplist(...); goto out;`.
    The fallback to the buddy (rmqueue above: `if (likely(page)) goto out;` then rmqueue_buddy, as in v6.1)
    came with v6.0's pcp spinlock, whose trylock may fail: 4b23a68f9536 "mm/page_alloc: protect PCP lists
    with a spinlock" (docs/kernel-facts.md §21)."""
    if order <= PAGE_ALLOC_COSTLY_ORDER or order == pageblock_order:
        return rmqueue_pcplist(zone, pcp, order, migratetype)
    return zone.rmqueue_buddy(order, migratetype)


def drain_chunk(zone: ZoneOps, pcp: PerCpuPages, count: int) -> int:
    """One locked free_pcppages_bulk of a drain. Caller holds the lock."""
    n = free_pcppages_bulk(zone, count, pcp, 0)
    pcp.stats.freed_drain_pages += n
    return n


def drain_pages_zone(zone: ZoneOps, pcp: PerCpuPages) -> int:
    """v6.0 to v6.9: free everything on ``pcp`` to the zone under one hold of its (blocking) lock;
    returns base pages drained. pcp->count is read before the lock (the race 66eca1021a42 fixed: a
    refill under way on the CPU has filled a list but not yet counted it, so its pages stay)."""
    if not pcp.count:  # racy read, as in the kernel: a drainer does not lock an empty pcp
        return 0
    with spin_locked(pcp.lock):
        n = drain_chunk(zone, pcp, pcp.count)
        pcp.stats.drains += 1
    return n


def decay_pcp_high(zone: ZoneOps, pcp: PerCpuPages) -> bool:
    """decay_pcp_high (v6.7+), from refresh_cpu_vm_stats on the CPU's own vmstat_update: lower high
    (pcp_high.decay_pcp_high) and free what is above it. Returns whether more is to
    do (vmstat_update then re-arms). Reads count and high unlocked, as the kernel does."""
    to_drain, todo = pcp_high.decay_pcp_high(pcp)
    # fc4b909c368f "mm/page_alloc: batch page freeing in decay_pcp_high" (Hahn, v6.19 and 6.12.67): in
    # pcp->batch chunks, the lock taken for each; before it, one hold for all.
    chunk = pcp.batch if pcp.decay_pcp_high_batched else to_drain
    while to_drain > 0:
        to_drain_batched = min(to_drain, chunk)
        with spin_locked(pcp.lock):
            pcp.stats.freed_high_pages += free_pcppages_bulk(zone, to_drain_batched, pcp, 0)
        to_drain -= to_drain_batched
    return todo
