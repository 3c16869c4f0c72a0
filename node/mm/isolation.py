"""Page isolation and taking a PFN range out of the buddy: mm/page_isolation.c and the range halves of
alloc_contig_range / offline_pages (mm/page_alloc.c, mm/memory_hotplug.c; v6.1).

Models ``start_isolate_page_range`` (set_migratetype_isolate on each pageblock: the type becomes
MIGRATE_ISOLATE and its free pages move to the isolate lists, so no allocation takes them and frees into
the range land there too), ``test_pages_isolated`` (every page of the range is free), the taking of the
range (``isolate_freepages_range`` for alloc_contig_range, ``__offline_isolated_pages`` for offline) and
``undo_isolate_page_range``. Callers hold zone->lock.

Deviations:
- The range must be pageblock aligned (CMA areas and memory blocks are); the kernel aligns outward.
- No migration (``__alloc_contig_migrate_range`` / ``do_migrate_range``): pages still in use stay busy
  and the caller retries until their holders free them or it gives up (-EBUSY).
- A free block straddling a range boundary is split at the boundary first (isolate_single_pageblock
  does this in v6.1); isolated free pages stay counted in ``free_pages`` (the kernel subtracts them
  from NR_FREE_PAGES).
"""

from .buddy import PageStateError
from .constants import MAX_ORDER, MIGRATE_ISOLATE, pageblock_nr_pages
from .zone import Zone


def check_range(zone: Zone, start: int, nr_pages: int) -> int:
    """Validate [start, start + nr_pages): in the zone and pageblock aligned; returns its end."""
    end = start + nr_pages
    if nr_pages <= 0 or start % pageblock_nr_pages or nr_pages % pageblock_nr_pages:
        raise PageStateError(
            f"range pfn {start} + {nr_pages} pages is not pageblock aligned ({pageblock_nr_pages} pages)"
        )
    if start < zone.start_pfn or end > zone.end_pfn:
        raise PageStateError(f"range [{start}, {end}) outside zone [{zone.start_pfn}, {zone.end_pfn})")
    return end


def _split_at(zone: Zone, boundary: int) -> None:
    """Split the free block that straddles `boundary`, if any, so that no free block crosses it."""
    found = zone.containing_free_block(boundary)
    if found is None or found[0] == boundary:
        return
    head, order, mt = found
    zone._del_page_from_free_list(head, order, mt)
    pieces = [(head, order)]
    while pieces:
        pfn, o = pieces.pop()
        if pfn < boundary < pfn + (1 << o):
            o -= 1
            pieces += [(pfn, o), (pfn + (1 << o), o)]
        else:
            zone._add_to_free_list(pfn, o, mt)


def start_isolate_page_range(zone: Zone, start: int, nr_pages: int) -> list[int]:
    """Isolate every pageblock of the range; returns their previous migratetypes (for the undo).
    A pageblock already isolated (another contiguous allocation or offline in progress) is -EBUSY:
    PageStateError, and nothing changes."""
    end = check_range(zone, start, nr_pages)
    for pfn in range(start, end, pageblock_nr_pages):
        if zone.get_pageblock_migratetype(pfn) == MIGRATE_ISOLATE:
            raise PageStateError(f"pageblock at pfn {pfn} is already isolated")
    _split_at(zone, start)
    _split_at(zone, end)
    saved: list[int] = []
    for pfn in range(start, end, pageblock_nr_pages):
        saved.append(zone.get_pageblock_migratetype(pfn))
        zone.set_pageblock_migratetype(pfn, MIGRATE_ISOLATE)
        zone.move_freepages_block(pfn, MIGRATE_ISOLATE)
    return saved


def undo_isolate_page_range(zone: Zone, start: int, nr_pages: int, saved: list[int]) -> None:
    """Give each pageblock its type back and move its free pages (if any are left) back to that list."""
    # `saved` is start_isolate_page_range's answer for this range: one type per pageblock.
    for pfn, mt in zip(range(start, check_range(zone, start, nr_pages), pageblock_nr_pages), saved, strict=True):
        zone.set_pageblock_migratetype(pfn, mt)
        zone.move_freepages_block(pfn, mt)


def test_pages_isolated(zone: Zone, start: int, nr_pages: int) -> int | None:
    """The first pfn of the range that is not free, or None when the whole range is free."""
    return zone.first_taken_page(start, check_range(zone, start, nr_pages))


def take_isolated_range(zone: Zone, start: int, nr_pages: int) -> list[tuple[int, int]]:
    """Take every (free, isolated) page of the range out of the buddy; returns the range as maximal
    aligned blocks (pfn, order). The caller has checked test_pages_isolated."""
    end = check_range(zone, start, nr_pages)
    if (busy := test_pages_isolated(zone, start, nr_pages)) is not None:
        raise PageStateError(f"pfn {busy} of range [{start}, {end}) is not free")
    # Isolated free pages merge across pageblocks: with a neighbouring range isolated too, one free
    # block may now span both. Split it so only this range's pages leave the buddy.
    _split_at(zone, start)
    _split_at(zone, end)
    pfn = start
    while pfn < end:
        block = zone.free_block_at(pfn)
        # The range is free (checked above) and no free block crosses its ends: each step lands on a head.
        assert block is not None
        order, mt = block
        zone._del_page_from_free_list(pfn, order, mt)
        zone._pages_taken(pfn, order)
        pfn += 1 << order
    return range_blocks(start, end)


def range_blocks(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) as maximal aligned blocks (pfn, order), order < MAX_ORDER."""
    blocks: list[tuple[int, int]] = []
    pfn = start
    while pfn < end:
        order = MAX_ORDER - 1
        while pfn & ((1 << order) - 1) or pfn + (1 << order) > end:
            order -= 1
        blocks.append((pfn, order))
        pfn += 1 << order
    return blocks
