"""The buddy free lists of one zone: split and merge, as in mm/page_alloc.c (v6.1).

Models ``__rmqueue_smallest`` + ``expand``, ``__free_one_page``, ``move_to_free_list`` and the free-area
bookkeeping (``add_to_free_list`` / ``del_page_from_free_list``). Pageblock migratetypes, fallback and the
zone lock live in zone.py; this module only knows free blocks.

Representation: ``free_area[order][migratetype]`` is a ``dict[int, None]`` of head pfns (insertion ordered,
O(1) removal). The kernel list's HEAD is the dict's LAST key (``add_to_free_list`` is list_add, and
``get_page_from_free_area`` takes list_first_entry). ``_free`` maps every free head pfn to
``(order, migratetype)``, so buddy lookup and double-free detection are O(1) per order.

Deviations:
- Freed blocks always go to the list head: ``buddy_merge_likely``/shuffle tail placement is not modelled
  (a dict cannot prepend in O(1)). Boot memory is inserted so the lowest pfn is at the head, which is where
  the kernel's FPI_TO_TAIL boot frees leave it.
- Merge rule: the kernel refuses to merge buddies of different, non-mergeable (>= MIGRATE_PCPTYPES) types only
  at order >= pageblock_order, reading the buddy's *pageblock* type; below that both halves share a pageblock
  whose isolation already moved its free pages to the isolate list. Here callers may name any migratetype, so
  the same rule is applied at every order to the buddy's *free-list* type. Buddies of mergeable types
  (UNMOVABLE, MOVABLE, RECLAIMABLE) always merge; the merged block goes on the freed page's list.
- No guard pages, no compaction capture, no page poisoning, no vmstat beyond ``free_pages``.
- Every free is validated (in the zone, aligned, not overlapping a free block) before anything changes;
  a violation raises ``PageStateError`` with the numbers (the kernel's bad_page() only reports).
"""

from collections.abc import Iterator

from .constants import MAX_ORDER, MIGRATE_PCPTYPES, MIGRATE_TYPES, Page

# (k, the mask that rounds a pfn down to a multiple of 2^k), for every order k.
_ROUND_DOWN = tuple((k, ~((1 << k) - 1)) for k in range(MAX_ORDER))


class PageStateError(ValueError):
    """A free or allocation named pages that are outside the zone, misaligned, or already free."""


class BuddyAllocator:
    """Free blocks of [start_pfn, end_pfn), by order and migratetype."""

    def __init__(self, start_pfn: int, spanned_pages: int) -> None:
        if start_pfn < 0 or spanned_pages <= 0:
            raise ValueError(f"bad zone span: start_pfn={start_pfn} spanned_pages={spanned_pages}")
        self.start_pfn = start_pfn
        self.end_pfn = start_pfn + spanned_pages
        self.spanned_pages = spanned_pages
        self.free_pages = 0
        self.free_area: list[list[dict[int, None]]] = [[{} for _ in range(MIGRATE_TYPES)] for _ in range(MAX_ORDER)]
        self._free: dict[int, tuple[int, int]] = {}  # head pfn -> (order, migratetype)

    # -- bookkeeping -------------------------------------------------------------------------------

    def nr_free(self, order: int) -> int:
        """Free blocks of exactly ``order`` on all migratetype lists (free_area[order].nr_free)."""
        return sum(len(d) for d in self.free_area[order])

    def free_blocks(self) -> Iterator[Page]:
        """Every free block as (pfn, order, migratetype)."""
        for order, by_mt in enumerate(self.free_area):
            for mt, heads in enumerate(by_mt):
                for pfn in heads:
                    yield pfn, order, mt

    def free_block_at(self, pfn: int) -> tuple[int, int] | None:
        """(order, migratetype) if a free block starts at ``pfn``, else None."""
        return self._free.get(pfn)

    def _add_to_free_list(self, pfn: int, order: int, mt: int) -> None:
        self._free[pfn] = (order, mt)
        self.free_area[order][mt][pfn] = None

    def _del_page_from_free_list(self, pfn: int, order: int, mt: int) -> None:
        del self._free[pfn]
        del self.free_area[order][mt][pfn]

    def move_to_free_list(self, pfn: int, order: int, mt: int) -> None:
        old = self._free.get(pfn)
        if old is None or old[0] != order:
            raise PageStateError(f"move_to_free_list: no free order-{order} block at pfn {pfn} (found {old})")
        self._del_page_from_free_list(pfn, order, old[1])
        self._add_to_free_list(pfn, order, mt)

    # -- validation --------------------------------------------------------------------------------

    def check_free_range(self, pfn: int, order: int) -> None:
        """Raise PageStateError unless [pfn, pfn + 2^order) is in the zone, aligned and wholly allocated."""
        if not 0 <= order < MAX_ORDER:
            raise PageStateError(f"order {order} out of range [0, {MAX_ORDER})")
        nr = 1 << order
        if pfn < self.start_pfn or pfn + nr > self.end_pfn:
            raise PageStateError(f"pfn {pfn} order {order} outside zone [{self.start_pfn}, {self.end_pfn})")
        if pfn & (nr - 1):
            raise PageStateError(f"pfn {pfn} misaligned for order {order} (pfn % {nr} = {pfn & (nr - 1)})")
        get = self._free.get
        # A free block containing pfn starts at pfn rounded down to its own order (the masks precomputed:
        # this runs for every page freed, the engine's hottest loop in node/mm).
        for k, mask in _ROUND_DOWN:
            head = pfn & mask
            blk = get(head)
            if blk is not None and blk[0] >= k and head + (1 << blk[0]) > pfn:
                raise PageStateError(
                    f"double free: pfn {pfn} order {order} overlaps free block pfn {head} order {blk[0]}"
                )
        # A free block strictly inside the freed range (only possible for order > 0).
        for p in range(pfn + 1, pfn + nr):
            blk = get(p)
            if blk is not None:
                raise PageStateError(f"double free: pfn {pfn} order {order} contains free block pfn {p} order {blk[0]}")

    # -- split and merge ---------------------------------------------------------------------------

    def _rmqueue_smallest(self, order: int, migratetype: int) -> int | None:
        """__rmqueue_smallest: the smallest free block of ``migratetype`` with order >= ``order``, split down."""
        area = self.free_area
        for current_order in range(order, MAX_ORDER):
            heads = area[current_order][migratetype]
            if not heads:
                continue
            pfn = next(reversed(heads))  # list head = last inserted
            self._del_page_from_free_list(pfn, current_order, migratetype)
            self._expand(pfn, order, current_order, migratetype)
            self.free_pages -= 1 << order
            return pfn
        return None

    def _expand(self, pfn: int, low: int, high: int, mt: int) -> None:
        # The kernel keeps the LOW half and puts each HIGH half (page[size]) back on the free list.
        while high > low:
            high -= 1
            self._add_to_free_list(pfn + (1 << high), high, mt)

    def _free_one_page(self, pfn: int, order: int, migratetype: int) -> None:
        """__free_one_page, validated: merge with free buddies up to MAX_ORDER-1, then add at the head."""
        self.check_free_range(pfn, order)
        self._merge_free(pfn, order, migratetype)

    def _merge_free(self, pfn: int, order: int, mt: int) -> None:
        # Caller has validated [pfn, pfn + 2^order). Buddies found in _free are in the zone by construction.
        free = self._free
        self.free_pages += 1 << order
        while order < MAX_ORDER - 1:
            buddy = pfn ^ (1 << order)
            blk = free.get(buddy)
            if blk is None or blk[0] != order:
                break
            bmt = blk[1]
            if bmt != mt and (bmt >= MIGRATE_PCPTYPES or mt >= MIGRATE_PCPTYPES):
                break  # isolate/highatomic blocks keep their own list (see header)
            self._del_page_from_free_list(buddy, order, bmt)
            pfn &= buddy
            order += 1
        self._add_to_free_list(pfn, order, mt)

    def take_page_off_buddy(self, pfn: int, order: int) -> int:
        """Take the block [pfn, pfn + 2^order) off the free lists, splitting the free block that
        contains it (take_page_off_buddy + break_down_buddy_pages, generalised from order 0 to any
        order). Returns the migratetype of the list it came from. Raises PageStateError, changing
        nothing, unless the whole block is free. The coordinator uses it to rebuild its zone from
        the pages nodes report holding."""
        if (
            not 0 <= order < MAX_ORDER
            or pfn & ((1 << order) - 1)
            or not (self.start_pfn <= pfn and pfn + (1 << order) <= self.end_pfn)
        ):
            raise PageStateError(f"pfn {pfn} order {order}: not an aligned block of the zone")
        for k in range(order, MAX_ORDER):
            head = pfn & ~((1 << k) - 1)
            blk = self._free.get(head)
            if blk is not None and blk[0] == k:
                mt = blk[1]
                self._del_page_from_free_list(head, k, mt)
                # Give back every half that does not contain the block, down to its order.
                while k > order:
                    k -= 1
                    half = 1 << k
                    if pfn >= head + half:
                        self._add_to_free_list(head, k, mt)
                        head += half
                    else:
                        self._add_to_free_list(head + half, k, mt)
                self.free_pages -= 1 << order
                return mt
        raise PageStateError(f"pfn {pfn} order {order} is not wholly free")

    def move_freepages(self, start: int, end: int, mt: int) -> int:
        """move_freepages: move every free block starting in [start, end) to ``mt``'s list; returns base pages.

        Moved blocks are re-merged, so un-isolating a range joins blocks the isolate rule kept apart."""
        start = max(start, self.start_pfn)
        end = min(end, self.end_pfn)
        moved = 0
        pfn = start
        free = self._free
        while pfn < end:
            blk = free.get(pfn)
            if blk is None:
                pfn += 1
                continue
            order, old = blk
            self._del_page_from_free_list(pfn, order, old)
            self.free_pages -= 1 << order
            self._merge_free(pfn, order, mt)
            moved += 1 << order
            pfn += 1 << order
        return moved
