"""One memory zone: buddy allocator, pageblock migratetypes, fallback and watermarks (mm/page_alloc.c, v6.1).

Models ``__rmqueue``, ``__rmqueue_fallback`` (+ ``find_suitable_fallback``, ``can_steal_fallback``,
``steal_suitable_fallback``, ``move_freepages_block``), ``rmqueue_bulk`` (the zone half), ``rmqueue_buddy``,
``free_one_page``, the zone half of ``free_pcppages_bulk``, ``get/set_pageblock_migratetype``, and the sizing
in watermark.py. The Zone is the ``ZoneOps`` object the pcp functions in pcp.py call.

Initial state (not the kernel's, which marks every pageblock MOVABLE at boot and lets early unmovable
allocations steal): the first 1/8 of the pageblocks (rounded down) are UNMOVABLE, the next 1/16 RECLAIMABLE,
the rest MOVABLE, so that a type's own blocks can run out while others have free pages. Few runs get that far:
the unit tests make fallbacks and steals on purpose, but `compare --engine virtual` (quick and full, seed 1,
kernel 6.19) and the chaos scenarios `mixed` and `kill-node` under remote made none (counted 2026-12-05). A
housekeeping CPU holds about 1,500 pages (node.tasks.WORKING_SET), a fifth UNMOVABLE and a tenth RECLAIMABLE,
against 8,192 and 4,096 pages of such blocks in a chaos scenario's 256 MB zone and four times that in
compare's 1 GiB; `--zone-used` takes MOVABLE blocks, and only above 0.81 of the zone would it take others.
So the fallback rules below (v6.1's, for every profile: docs/kernel-facts.md) move no figure of theirs.
All pages are free, as maximal aligned
blocks (order <= MAX_ORDER-1), each on the list of its FIRST pageblock's type, as the kernel's boot free
(free_one_page -> get_pfnblock_migratetype) would leave a block spanning two pageblocks of different types;
the lowest pfn is at each list's head.

Deviations:
- ``zone->lock`` is ``self.lock``, taken by the public ZoneOps methods; the ``_``-prefixed methods assume it is
  held. It is the caller's (lock.py): the coordinator passes a threading.Lock, a single-threaded user may
  leave the default ``UnsharedLock``. ``audit`` callers must stop mutation themselves.
- Fallback: no ALLOC_NOFRAGMENT, no watermark boosting, no highatomic reserves, no CMA. When a whole pageblock
  may be stolen, ``alike_pages`` is taken as 0 (the model does not know the mobility of allocated pages), so a
  pageblock changes type when at least half of it is free.
- ``_rmqueue_fallback`` returns the allocated pfn (steal, then ``_rmqueue_smallest``) where the kernel's
  returns bool and ``__rmqueue`` retries.
- ``zone_watermark_ok`` is simplified: free_pages - (1 << order) + 1 > mark, and a free block of order >= order
  exists on any list; no lowmem_reserve, no ALLOC_HARDER/HIGH reductions, no per-migratetype check.
- ZONE_BELOW_HIGH (v6.7+, ``below_high``): get_page_from_freelist tests the high watermark on every
  allocation; here the allocations that reach the zone test it (``check_below_high``: a refill, a buddy
  allocation), not those a pcp list serves. Those find the same free pages as the next refill (only the
  zone's operations change them), so the flag is set at the next refill by any CPU instead of the next
  allocation; and that refill's CPU hears of it with the reply, after its nr_pcp_alloc has grown high
  once more (the kernel's allocation tests before it refills). It is cleared as the kernel clears it,
  after a free_unref_page_commit flush (``free_pcppages_bulk(pages, commit=True)``).
- managed_pages == spanned_pages (no holes, no reserved memory).
- ``free_pcppages_bulk`` validates the whole batch before freeing any of it, so a bad batch changes nothing and
  the pcp side can put the pages back.

Which type a freed page is filed under (``pcppage_migratetype_cached``, the kernel profile's): to v6.9 the
caller's, the type the page had when it was freed to the pcp (set_pcppage_migratetype), unless the zone has
isolated pageblocks or the type is ISOLATE (free_pcppages_bulk's ``isolated_pageblocks``, free_one_page's
test); from v6.10, the pageblock's type read under zone->lock for every page (Johannes Weiner, "mm:
page_alloc: remove pcppage migratetype caching" and "mm: page_alloc: close migratetype race between freeing
and stealing", 01 and 07 of his series of 2024-03-20), so a page whose block was stolen while it sat on a
pcp list goes to the block's new type. docs/kernel-facts.md §1. The same series' "fix up block types when
merging compatible blocks" (03/10): a free that merges with a whole-pageblock buddy reads that buddy's
pageblock type, merges if both types are mergeable (or equal), and then gives the buddy's pageblock the
freed block's type (``_merge_across``): "Match buddy type. This ensures that an expand() down the line
puts the sub-blocks on the right freelists." Before v6.10 the types are compared and the buddy's block
keeps its own.
"""

from collections.abc import Iterable

from .buddy import AcrossPageblocks, BuddyAllocator, PageStateError
from .constants import (
    MAX_ORDER,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    PAGE_SIZE,
    Page,
    pageblock_nr_pages,
    pageblock_order,
)
from .lock import Lock, UnsharedLock
from .watermark import init_per_zone_wmark_min, setup_per_zone_wmarks, zone_batchsize, zone_highsize

__all__ = [
    "DEFAULT_ZONE_MB",
    "DEFAULT_ZONE_PAGES",
    "ZONE_START_PFN",
    "PageStateError",
    "Zone",
    "fallbacks",
    "zone_pages",
]

# The zone pcpsim simulates unless told otherwise, in both engines (the wall coordinator's --zone-mb,
# cluster up's and compare's clusters, the virtual engine's): 1 GiB, which gives the kernel's pcp batch
# of 63 (zone_batchsize's largest, from 688 MiB). One value for all of them: a virtual run on a smaller
# zone has another batch and high, and so other refills, frees and drains (until 2026-12-04 a 4-CPU
# virtual compare ran on 64 MiB: batch 3, high 80, against the wall cluster's 63 and 321).
DEFAULT_ZONE_MB = 1024
MAX_ZONE_MB = 65536  # a cluster's largest zone: 16 M pages, as the audit counts every page in a bytearray
ZONE_START_PFN = 1 << 20  # where the zone's pfns start: above the first 4 GiB, as a Normal zone's would


def zone_pages(mb: int) -> int:
    """A zone of `mb` MiB in base pages."""
    return mb * (1 << 20) // PAGE_SIZE


DEFAULT_ZONE_PAGES = zone_pages(DEFAULT_ZONE_MB)

# v6.1 fallbacks[]: the order in which other migratetypes' free lists are raided.
fallbacks: dict[int, tuple[int, int]] = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
}


def can_steal_fallback(order: int, start_mt: int) -> bool:
    # Large blocks, and any unmovable/reclaimable request, may claim the whole pageblock: leaving movable
    # pages behind in a block that now holds unmovable ones would fragment it anyway.
    if order >= pageblock_order:
        return True
    return order >= pageblock_order // 2 or start_mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)


class Zone(BuddyAllocator):
    def __init__(
        self,
        start_pfn: int,
        spanned_pages: int,
        nr_cpus: int,
        name: str = "Normal",
        lock: Lock | None = None,
        pcppage_migratetype_cached: bool = True,
    ) -> None:
        super().__init__(start_pfn, spanned_pages)
        if nr_cpus < 1:
            raise ValueError(f"nr_cpus must be >= 1, got {nr_cpus}")
        self.name = name
        self.pcppage_migratetype_cached = pcppage_migratetype_cached  # to v6.9 (see the module's docstring)
        self.nr_cpus = nr_cpus
        self.managed_pages = spanned_pages
        self.reclaim_active = False  # ZONE_RECLAIM_ACTIVE
        self.below_high = False  # ZONE_BELOW_HIGH (v6.7+): see check_below_high and commit_flushed
        self.lock: Lock = UnsharedLock() if lock is None else lock  # zone->lock
        # Seconds callers queued for zone->lock (node.alloc reads it): untimed here, where the zone
        # keeps no clock; the drivers' zones (node.zone_client, node.virtual.zone) time it.
        self.lock_wait_s = 0.0
        self._pb_base = start_pfn >> pageblock_order
        nr_pageblocks = ((self.end_pfn - 1) >> pageblock_order) - self._pb_base + 1
        nr_unmovable = nr_pageblocks // 8
        nr_reclaimable = nr_pageblocks // 16
        self._pageblock_mt = bytearray([MIGRATE_MOVABLE]) * nr_pageblocks
        self._pageblock_mt[:nr_unmovable] = bytes([MIGRATE_UNMOVABLE]) * nr_unmovable
        self._pageblock_mt[nr_unmovable : nr_unmovable + nr_reclaimable] = bytes([MIGRATE_RECLAIMABLE]) * nr_reclaimable
        self._nr_isolate_pageblock = 0
        self.pageblock_changes = 0  # set_pageblock_migratetype calls: the version of the bitmap a node copies
        self._init_free_lists()
        min_free_kbytes = init_per_zone_wmark_min(self.managed_pages * PAGE_SIZE // 1024)
        self.min_free_kbytes = min_free_kbytes
        self.watermark = setup_per_zone_wmarks(self.managed_pages, min_free_kbytes)

    def _init_free_lists(self) -> None:
        blocks = []
        pfn, end = self.start_pfn, self.end_pfn
        while pfn < end:
            order = MAX_ORDER - 1
            while order and (pfn & ((1 << order) - 1) or pfn + (1 << order) > end):
                order -= 1
            blocks.append((pfn, order))
            pfn += 1 << order
        # Highest pfn first, so the lowest ends up at each list's head (kernel boot frees go to the tail).
        for pfn, order in reversed(blocks):
            self._add_to_free_list(pfn, order, self.get_pageblock_migratetype(pfn))
            self._pages_freed(pfn, order)

    # -- pageblocks --------------------------------------------------------------------------------

    def _pb_index(self, pfn: int) -> int:
        return (pfn >> pageblock_order) - self._pb_base

    def get_pageblock_migratetype(self, pfn: int) -> int:
        if not self.start_pfn <= pfn < self.end_pfn:
            raise PageStateError(f"pfn {pfn} outside zone [{self.start_pfn}, {self.end_pfn})")
        return self._pageblock_mt[self._pb_index(pfn)]

    def set_pageblock_migratetype(self, pfn: int, migratetype: int) -> None:
        """Set the type bits only, as the kernel's does; free pages stay where they are
        (isolation = set_pageblock_migratetype + move_freepages_block, as set_migratetype_isolate does)."""
        if not 0 <= migratetype < MIGRATE_TYPES:
            raise ValueError(f"migratetype {migratetype} out of range [0, {MIGRATE_TYPES})")
        old = self.get_pageblock_migratetype(pfn)
        self._nr_isolate_pageblock += (migratetype == MIGRATE_ISOLATE) - (old == MIGRATE_ISOLATE)
        self._pageblock_mt[self._pb_index(pfn)] = migratetype
        self.pageblock_changes += 1

    def pageblocks(self) -> tuple[int, bytes]:
        """(first pfn, one migratetype byte a pageblock): the bitmap, for a copy kept elsewhere."""
        return self._pb_base << pageblock_order, bytes(self._pageblock_mt)

    def has_isolate_pageblock(self) -> bool:
        return self._nr_isolate_pageblock > 0

    def move_freepages_block(self, pfn: int, migratetype: int) -> int:
        """Move the free pages of pfn's pageblock to ``migratetype``'s lists; returns base pages moved."""
        start = pfn & ~(pageblock_nr_pages - 1)
        return self.move_freepages(start, start + pageblock_nr_pages, migratetype)

    # -- sizing ------------------------------------------------------------------------------------

    def zone_batchsize(self) -> int:
        return zone_batchsize(self.managed_pages)

    def zone_highsize(self, batch: int, nr_cpus: int) -> int:
        return zone_highsize(self.watermark["low"], batch, nr_cpus)

    def zone_watermark_ok(self, order: int, mark: int) -> bool:
        if self.free_pages - (1 << order) + 1 <= mark:
            return False
        # Order 0: a free page is a free block (free_pages > mark >= 0). Every refill asks (check_below_high).
        return not order or any(self.nr_free(o) for o in range(order, MAX_ORDER))

    def check_below_high(self, order: int) -> None:
        """get_page_from_freelist's detection (57c0419c5f0e, v6.7): an allocation of ``order`` that finds
        the zone under its high watermark sets ZONE_BELOW_HIGH (tested before the min and low
        watermarks, so a refused allocation sets it too). Only the v6.7+ pcp high auto-tuning reads it."""
        if not self.below_high and not self.zone_watermark_ok(order, self.watermark["high"]):
            self.below_high = True

    def commit_flushed(self) -> None:
        """free_unref_page_commit (free_frozen_page_commit since v6.15), after its flush to the zone: clear
        ZONE_BELOW_HIGH once an order-0 allocation would meet the high watermark. The only place the
        kernel clears it: not a drain's free, a buddy free or decay_pcp_high's."""
        if self.below_high and self.zone_watermark_ok(0, self.watermark["high"]):
            self.below_high = False

    # -- allocation --------------------------------------------------------------------------------

    def _rmqueue_fallback(self, order: int, migratetype: int) -> int | None:
        """__rmqueue_fallback: steal the largest suitable block of another type, then allocate from it."""
        fb = fallbacks.get(migratetype)
        if fb is None:
            return None  # isolate/highatomic requests have no fallback
        area = self.free_area
        found = None
        for current_order in range(MAX_ORDER - 1, order - 1, -1):
            fallback_mt = next((mt for mt in fb if area[current_order][mt]), None)
            if fallback_mt is None:
                continue
            can_steal = can_steal_fallback(current_order, migratetype)
            if not can_steal and migratetype == MIGRATE_MOVABLE and current_order > order:
                # A movable request that cannot claim the block splits the smallest block instead:
                # the next movable allocation may land elsewhere without lasting fragmentation.
                for current_order in range(order, MAX_ORDER):
                    fallback_mt = next((mt for mt in fb if area[current_order][mt]), None)
                    if fallback_mt is not None:
                        can_steal = can_steal_fallback(current_order, migratetype)
                        break
                # The search reaches the order the outer loop found a block at, so it cannot come back empty.
                assert fallback_mt is not None
            found = (current_order, fallback_mt, can_steal)
            break
        if found is None:
            return None
        current_order, fallback_mt, can_steal = found
        pfn = next(reversed(area[current_order][fallback_mt]))
        self._steal_suitable_fallback(pfn, current_order, migratetype, can_steal)
        return self._rmqueue_smallest(order, migratetype)

    def _steal_suitable_fallback(self, pfn: int, current_order: int, start_type: int, whole_block: bool) -> None:
        old_block_type = self.get_pageblock_migratetype(pfn)
        if old_block_type != MIGRATE_HIGHATOMIC:
            if current_order >= pageblock_order:
                # Take ownership of every pageblock the block spans.
                for p in range(pfn, pfn + (1 << current_order), pageblock_nr_pages):
                    self.set_pageblock_migratetype(p, start_type)
            elif whole_block:
                free_pages = self.move_freepages_block(pfn, start_type)
                if free_pages >= 1 << (pageblock_order - 1):  # alike_pages = 0, see header
                    self.set_pageblock_migratetype(pfn, start_type)
                return
        self.move_to_free_list(pfn, current_order, start_type)

    def _rmqueue(self, order: int, migratetype: int) -> int | None:
        """__rmqueue without CMA: own type first, then fallback."""
        page = self._rmqueue_smallest(order, migratetype)
        if page is None:
            page = self._rmqueue_fallback(order, migratetype)
        return page

    def check_alloc(self, order: int, migratetype: int) -> None:
        """Raise ValueError unless an allocation of this order and migratetype can be asked for."""
        if not 0 <= order < MAX_ORDER:
            raise ValueError(f"order {order} out of range [0, {MAX_ORDER})")
        if not 0 <= migratetype < MIGRATE_TYPES:
            raise ValueError(f"migratetype {migratetype} out of range [0, {MIGRATE_TYPES})")

    def rmqueue_bulk(self, order: int, count: int, migratetype: int) -> list[int]:
        """Up to ``count`` order-``order`` pages under zone->lock, in the order expand() hands them out."""
        self.check_alloc(order, migratetype)
        pages: list[int] = []
        with self.lock:
            self.check_below_high(order)
            # __rmqueue for each page: its own type's lists while they last, then one fallback steal (which
            # moves blocks to this type's lists, so the own-type loop takes the next pages from them).
            while len(pages) < count:
                want = count - len(pages)
                if self._rmqueue_smallest_bulk(order, migratetype, want, pages) == want:
                    break
                page = self._rmqueue_fallback(order, migratetype)
                if page is None:
                    break
                pages.append(page)
        return pages

    def rmqueue_buddy(self, order: int, migratetype: int) -> int | None:
        self.check_alloc(order, migratetype)
        with self.lock:
            self.check_below_high(order)
            return self._rmqueue(order, migratetype)

    # -- freeing -----------------------------------------------------------------------------------

    def free_one_page(self, pfn: int, order: int, migratetype: int) -> None:
        """free_one_page: the pageblock's type from v6.10; before, with isolated pageblocks around (or an
        isolate page)."""
        if not 0 <= migratetype < MIGRATE_TYPES:
            raise ValueError(f"migratetype {migratetype} out of range [0, {MIGRATE_TYPES})")
        with self.lock:
            self.check_free_range(pfn, order)
            if not self.pcppage_migratetype_cached or self._nr_isolate_pageblock or migratetype == MIGRATE_ISOLATE:
                migratetype = self.get_pageblock_migratetype(pfn)
            self._merge_free(pfn, order, migratetype, self._across)

    def free_pcppages_bulk(self, pages: Iterable[Page], commit: bool = False) -> None:
        """The zone half of free_pcppages_bulk: free (pfn, order, migratetype) pages, all or nothing.
        ``commit``: the flush of free_unref_page_commit (commit_flushed runs after it)."""
        pages = list(pages)
        with self.lock:
            self._check_free_list(pages)
            # v6.10+: every page's block; before, the block could have been isolated while the page sat on a list.
            if not self.pcppage_migratetype_cached or self._nr_isolate_pageblock:
                pages = self._pageblock_types(pages)
            self._merge_free_list(pages, self._across)
        if commit:
            self.commit_flushed()  # after zone->lock is dropped, as the kernel's test

    def free_one_page_list(self, pages: list[Page]) -> None:
        """free_one_page for each of ``pages`` under one hold of zone->lock, all checked before any is
        freed: the zone service's free (ZoneRules.free_pages), which serves a node's bulk frees and its
        single buddy-fallback frees alike, so each page keeps free_one_page's choice of list."""
        with self.lock:
            self._check_free_list(pages)
            isolated = self._nr_isolate_pageblock
            if not self.pcppage_migratetype_cached:
                pages = self._pageblock_types(pages)
            elif isolated or any(mt == MIGRATE_ISOLATE for _, _, mt in pages):
                pages = [
                    (pfn, order, self.get_pageblock_migratetype(pfn) if isolated or mt == MIGRATE_ISOLATE else mt)
                    for pfn, order, mt in pages
                ]
            self._merge_free_list(pages, self._across)

    @property
    def _across(self) -> AcrossPageblocks | None:
        """The v6.10+ merge rule at a whole-pageblock buddy (the module's docstring), or None: to v6.9."""
        return None if self.pcppage_migratetype_cached else self._merge_across

    def _merge_across(self, buddy: int, migratetype: int) -> bool:
        """__free_one_page from v6.10, order >= pageblock_order: merge unless the buddy's pageblock and
        the freed block have different types one of which is not mergeable; on a merge of different
        types, set_pageblock_migratetype(buddy, migratetype)."""
        buddy_mt = self._pageblock_mt[self._pb_index(buddy)]
        if buddy_mt == migratetype:
            return True
        if buddy_mt >= MIGRATE_PCPTYPES or migratetype >= MIGRATE_PCPTYPES:
            return False  # migratetype_is_mergeable(mt): mt < MIGRATE_PCPTYPES
        self.set_pageblock_migratetype(buddy, migratetype)
        return True

    def _pageblock_types(self, pages: list[Page]) -> list[Page]:
        """``pages`` with each one's pageblock type (get_pfnblock_migratetype); checked pfns only."""
        pageblock_mt, base = self._pageblock_mt, self._pb_base
        return [(pfn, order, pageblock_mt[(pfn >> pageblock_order) - base]) for pfn, order, _ in pages]

    def _check_free_list(self, pages: list[Page]) -> None:
        """Raise, before anything is freed, unless every page is a valid free of allocated pages and no
        page is named twice. Aligned blocks are nested or disjoint, so two of them share a page only if
        they share a head or the larger holds the other's head inside it."""
        heads = {pfn for pfn, _, _ in pages}
        shared = len(heads) != len(pages)
        start, end, free_map = self.start_pfn, self.end_pfn, self._free_map
        for pfn, order, mt in pages:
            if not 0 <= mt < MIGRATE_TYPES:
                raise ValueError(f"pfn {pfn}: migratetype {mt} out of range [0, {MIGRATE_TYPES})")
            # An order-0 page of the zone that the free map marks taken passes check_free_range: that test,
            # inlined (most pages of a bulk free), and the full check, which says what is wrong, for the rest.
            if order or not start <= pfn < end or free_map[pfn - start]:
                self.check_free_range(pfn, order)
            if order and not shared:
                shared = not heads.isdisjoint(range(pfn + 1, pfn + (1 << order)))
        if shared:
            seen: set[int] = set()
            for pfn, order, _ in pages:
                for p in range(pfn, pfn + (1 << order)):
                    if p in seen:
                        raise PageStateError(f"pfn {p} appears twice in one bulk free (block pfn {pfn} order {order})")
                    seen.add(p)
