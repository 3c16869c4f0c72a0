"""The buddy free lists of one zone: split and merge, as in mm/page_alloc.c (v6.1).

Models ``__rmqueue_smallest`` + ``expand``, ``__free_one_page``, ``move_to_free_list`` and the free-area
bookkeeping (``add_to_free_list`` / ``del_page_from_free_list``). Pageblock migratetypes, fallback and the
zone lock live in zone.py; this module only knows free blocks.

Representation: ``free_area[order][migratetype]`` is a ``dict[int, None]`` of head pfns (insertion ordered,
O(1) removal). The kernel list's HEAD is the dict's LAST key (``add_to_free_list`` is list_add, and
``get_page_from_free_area`` takes list_first_entry). ``_free`` maps every free head pfn to
``(order, migratetype)``, so buddy lookup is O(1). ``_free_map`` has a byte per page of the zone, 1 where
the page lies in a free block: the double-free check reads it in one step instead of looking for a
containing block at every order (every freed page runs that check; it was the engine's hottest loop).
Only a page changing hands changes it (``_pages_freed``, ``_pages_taken``, with ``free_pages``); a
split, a merge or a move between lists leaves every page as free as it was.

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

from collections.abc import Callable, Iterable, Iterator

from .constants import MAX_ORDER, MIGRATE_PCPTYPES, MIGRATE_TYPES, Page, pageblock_order

# A zone's say on a merge with a whole-pageblock buddy (order >= pageblock_order): (buddy pfn, the freed
# block's migratetype) -> whether to merge. node.mm.zone's v6.10+ rule reads the buddy's pageblock there.
AcrossPageblocks = Callable[[int, int], bool]

# _FREE[order] / _TAKEN[order]: what a block of that order writes into the free map.
_FREE = tuple(b"\x01" * (1 << k) for k in range(MAX_ORDER))
_TAKEN = tuple(bytes(1 << k) for k in range(MAX_ORDER))


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
        self._free_map = bytearray(spanned_pages)  # per page from start_pfn: 1 if in a free block (see header)

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

    def containing_free_block(self, pfn: int) -> tuple[int, int, int] | None:
        """(head, order, migratetype) of the free block containing ``pfn``, or None: a block that
        contains pfn starts at pfn rounded down to its own order."""
        for k in range(MAX_ORDER):
            head = pfn & ~((1 << k) - 1)
            blk = self._free.get(head)
            if blk is not None and blk[0] >= k and head + (1 << blk[0]) > pfn:
                return head, blk[0], blk[1]
        return None

    def first_taken_page(self, start: int, end: int) -> int | None:
        """The first pfn of [start, end) (within the zone) that lies in no free block, or None."""
        i = self._free_map.find(0, start - self.start_pfn, end - self.start_pfn)
        return None if i < 0 else self.start_pfn + i

    def marked_free_pages(self) -> int:
        """The pages the free map marks free (the audit holds it against the free lists)."""
        return self._free_map.count(1)

    def _pages_freed(self, pfn: int, order: int) -> None:
        """The block [pfn, pfn + 2^order) joins the free pages (it is, or is about to be, on a list)."""
        self.free_pages += 1 << order
        i = pfn - self.start_pfn
        if order:
            self._free_map[i : i + (1 << order)] = _FREE[order]
        else:  # most frees: a byte store costs half a slice's
            self._free_map[i] = 1

    def _pages_taken(self, pfn: int, order: int) -> None:
        """The block [pfn, pfn + 2^order) leaves the free pages (it is off the lists)."""
        self.free_pages -= 1 << order
        i = pfn - self.start_pfn
        if order:
            self._free_map[i : i + (1 << order)] = _TAKEN[order]
        else:
            self._free_map[i] = 0

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
        i = pfn - self.start_pfn
        if self._free_map[i] if nr == 1 else self._free_map.find(1, i, i + nr) >= 0:
            raise PageStateError(self._overlap(pfn, order))

    def _overlap(self, pfn: int, order: int) -> str:
        """What a free of [pfn, pfn + 2^order) that overlaps free pages overlaps: the free block that
        contains pfn, else the first free block inside the range."""
        found = self.containing_free_block(pfn)
        if found is not None:
            return f"double free: pfn {pfn} order {order} overlaps free block pfn {found[0]} order {found[1]}"
        for p in range(pfn + 1, pfn + (1 << order)):
            blk = self._free.get(p)
            if blk is not None:
                return f"double free: pfn {pfn} order {order} contains free block pfn {p} order {blk[0]}"
        raise AssertionError(f"the free map marks a page of pfn {pfn} order {order} free, the lists do not")

    # -- split and merge ---------------------------------------------------------------------------

    def _rmqueue_smallest(self, order: int, migratetype: int) -> int | None:
        """__rmqueue_smallest: the smallest free block of ``migratetype`` with order >= ``order``, split down."""
        pages: list[int] = []
        return pages[0] if self._rmqueue_smallest_bulk(order, migratetype, 1, pages) else None

    def _rmqueue_smallest_bulk(self, order: int, migratetype: int, count: int, pages: list[int]) -> int:
        """__rmqueue_smallest up to ``count`` times, appending each page's pfn to ``pages``; stops early once
        ``migratetype`` has no free block of order >= ``order``. Returns how many it took.

        One loop for a whole refill (rmqueue_bulk takes pcp->batch pages, 63 on the default zone), with
        expand(), the free-list bookkeeping and _pages_taken inlined: the virtual engine's 64-CPU bench
        span takes ~90,000 pages this way, and the calls were a third of the buddy's time there."""
        area, free, free_map, start = self.free_area, self._free, self._free_map, self.start_pfn
        own = area[order][migratetype]  # most takes find a block of the order asked for (an expand()'s last half)
        taken = 0
        while taken < count:
            if own:
                heads, current_order = own, order
            else:
                for current_order in range(order + 1, MAX_ORDER):
                    heads = area[current_order][migratetype]
                    if heads:
                        break
                else:
                    break
            pfn = heads.popitem()[0]  # list head = last inserted
            del free[pfn]
            if current_order > order:
                # expand() keeps the LOW half and puts each HIGH half back, each the only block of its list
                # (the search found every list from `order` up empty). So the takes that follow would
                # consume the block's units in ascending pfn order, each then the head of its list: take
                # the ones the refill still needs at once, and leave what those takes would, the binary
                # decomposition of the untaken tail (a block of 2^k units at each unit offset whose
                # lowest set bit is 2^k). tests/unit/test_buddy_bulk_take.py holds it to single takes.
                units = 1 << (current_order - order)
                n = min(count - taken, units)
                cur = n
                while cur < units:
                    size = cur & -cur
                    k = order + size.bit_length() - 1
                    head = pfn + (cur << order)
                    free[head] = (k, migratetype)
                    area[k][migratetype][head] = None
                    cur += size
                i = pfn - start
                free_map[i : i + (n << order)] = bytes(n << order)
                pages.extend(range(pfn, pfn + (n << order), 1 << order))
                taken += n
                continue
            i = pfn - start
            if order:
                free_map[i : i + (1 << order)] = _TAKEN[order]
            else:
                free_map[i] = 0
            pages.append(pfn)
            taken += 1
        self.free_pages -= taken << order
        return taken

    def _free_one_page(self, pfn: int, order: int, migratetype: int) -> None:
        """__free_one_page, validated: merge with free buddies up to MAX_ORDER-1, then add at the head."""
        self.check_free_range(pfn, order)
        self._merge_free(pfn, order, migratetype)

    def _merge_free(self, pfn: int, order: int, mt: int, across: AcrossPageblocks | None = None) -> None:
        self._merge_free_list(((pfn, order, mt),), across)

    def _merge_free_list(self, pages: Iterable[Page], across: AcrossPageblocks | None = None) -> None:
        """__free_one_page's merge for each (pfn, order, migratetype) in turn, each block merged with its
        free buddies up to MAX_ORDER-1 and added at its list's head. The caller has validated every
        block; buddies found in _free are in the zone by construction. One loop for a whole bulk free,
        with _pages_freed and the free-list bookkeeping inlined, as _rmqueue_smallest_bulk's refill.
        ``across``: the zone decides a merge with a whole-pageblock buddy instead of the list-type rule."""
        free, area, free_map, start = self._free, self.free_area, self._free_map, self.start_pfn
        freed = 0
        for pfn, order, mt in pages:
            freed += 1 << order
            i = pfn - start
            if order:
                free_map[i : i + (1 << order)] = _FREE[order]
            else:  # most frees: a byte store costs half a slice's
                free_map[i] = 1
            while order < MAX_ORDER - 1:
                buddy = pfn ^ (1 << order)
                blk = free.get(buddy)
                if blk is None or blk[0] != order:
                    break
                bmt = blk[1]
                if across is not None and order >= pageblock_order:
                    if not across(buddy, mt):
                        break
                elif bmt != mt and (bmt >= MIGRATE_PCPTYPES or mt >= MIGRATE_PCPTYPES):
                    break  # isolate/highatomic blocks keep their own list (see header)
                del free[buddy]
                del area[order][bmt][buddy]
                pfn &= buddy
                order += 1
            free[pfn] = (order, mt)
            area[order][mt][pfn] = None
        self.free_pages += freed

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
                self._pages_taken(pfn, order)
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
            self._pages_taken(pfn, order)
            self._merge_free(pfn, order, mt)
            moved += 1 << order
            pfn += 1 << order
        return moved
