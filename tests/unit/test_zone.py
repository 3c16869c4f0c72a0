"""The buddy allocator of one zone: initial layout, split/merge, fallback, validation (mm/page_alloc.c v6.1)."""

import random

import pytest

from node.mm.audit import audit, check_buddy
from node.mm.constants import (
    MAX_ORDER,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    pageblock_order,
)
from node.mm.zone import PageStateError, Zone


def snapshot(zone):
    return sorted(zone.free_blocks()), zone.free_pages, [zone.nr_free(o) for o in range(MAX_ORDER)]


def test_initial_layout_of_8192_page_zone():
    """16 pageblocks: 2 UNMOVABLE, 1 RECLAIMABLE, 13 MOVABLE; all pages free as 8 order-10 blocks, each on its first
    pageblock's list (so 1024..2047, half RECLAIMABLE and half MOVABLE, is on the RECLAIMABLE list); checker clean."""
    z = Zone(0, 8192, 2)
    assert [z.get_pageblock_migratetype(p) for p in range(0, 8192, 512)] == [0, 0, 2] + [1] * 13
    assert sorted(z.free_blocks()) == (
        [(0, 10, MIGRATE_UNMOVABLE), (1024, 10, MIGRATE_RECLAIMABLE)]
        + [(p, 10, MIGRATE_MOVABLE) for p in range(2048, 8192, 1024)]
    )
    assert z.free_pages == z.managed_pages == 8192
    assert check_buddy(z) == []


def test_unaligned_zone_uses_maximal_aligned_blocks():
    """A zone starting off alignment is covered by maximal aligned blocks that never leave it."""
    z = Zone(3, 2000, 1)
    assert z.free_pages == 2000
    assert audit(z, {}).ok
    assert min(p for p, _, _ in z.free_blocks()) == 3


def test_alloc_splits_order_10_block_and_free_merges_back():
    """Order 0 from a fresh zone's UNMOVABLE order-10 block returns its first page and leaves one free block of
    each order 0..9 (the high halves); freeing the page merges them back into the order-10 block."""
    z = Zone(0, 8192, 2)
    before = snapshot(z)
    pfn = z.rmqueue_buddy(0, MIGRATE_UNMOVABLE)
    assert pfn == 0
    assert sorted((p, o) for p, o, mt in z.free_blocks() if mt == MIGRATE_UNMOVABLE) == sorted(
        (1 << o, o) for o in range(10)
    )
    assert z.free_pages == 8191
    z.free_one_page(pfn, 0, MIGRATE_UNMOVABLE)
    assert snapshot(z) == before
    assert z.free_block_at(0) == (10, MIGRATE_UNMOVABLE)


def test_bulk_allocation_is_in_physical_order():
    """Successive order-0 allocations walk the split block upwards: 0, 1, 2, ... (expand keeps the low half)."""
    z = Zone(0, 8192, 2)
    assert z.rmqueue_bulk(0, 8, MIGRATE_UNMOVABLE) == list(range(8))
    assert z.rmqueue_bulk(1, 3, MIGRATE_UNMOVABLE) == [8, 10, 12]


def test_bulk_refills_and_frees_leave_the_zone_as_page_by_page_ones_do():
    """rmqueue_bulk's one loop and a bulk free's one merge loop are __rmqueue and __free_one_page applied
    page by page: a zone driven in bulk and its twin driven one page at a time (rmqueue_buddy, free_one_page)
    hand out the same pages and keep the same free lists, list order and pageblock types included, through
    splits, merges and fallback steals, until the zone runs short."""
    bulk, single = Zone(0, 8192, 2), Zone(0, 8192, 2)
    rng = random.Random(5)
    held: list[tuple[int, int, int]] = []
    short = 0
    for _ in range(600):
        if held and rng.random() < 0.3:
            rng.shuffle(held)
            n = rng.randint(1, min(len(held), 63))
            batch, held = held[:n], held[n:]
            bulk.free_pcppages_bulk(batch)
            for pfn, order, mt in batch:
                single.free_one_page(pfn, order, mt)
        else:
            # Mostly RECLAIMABLE, which owns one pageblock of sixteen: its refills steal from the others.
            order, count = rng.choice((0, 0, 0, 1, 3)), rng.choice((1, 7, 31, 63))
            mt = rng.choice((MIGRATE_UNMOVABLE, MIGRATE_MOVABLE) + (MIGRATE_RECLAIMABLE,) * 3)
            got = bulk.rmqueue_bulk(order, count, mt)
            assert got == [single.rmqueue_buddy(order, mt) for _ in got]
            if len(got) < count:
                short += 1
                assert single.rmqueue_buddy(order, mt) is None
            held += [(pfn, order, mt) for pfn in got]
        assert list(bulk.free_blocks()) == list(single.free_blocks())  # list order too: the head is the last key
        assert bulk.free_pages == single.free_pages
        assert bulk._pageblock_mt == single._pageblock_mt
    assert short and bulk.pageblock_changes  # the zone ran short, and fallbacks claimed pageblocks
    assert check_buddy(bulk) == []


def test_fallback_steals_largest_block_and_claims_pageblocks():
    """With RECLAIMABLE exhausted, a RECLAIMABLE request falls back to UNMOVABLE (fallbacks[] order), takes the
    largest block (order 10) and converts both pageblocks it spans to RECLAIMABLE."""
    z = Zone(0, 8192, 2)
    got = z.rmqueue_bulk(0, 1024, MIGRATE_RECLAIMABLE)
    assert got == list(range(1024, 2048))
    pfn = z.rmqueue_buddy(0, MIGRATE_RECLAIMABLE)
    assert pfn == 0
    assert z.get_pageblock_migratetype(0) == z.get_pageblock_migratetype(512) == MIGRATE_RECLAIMABLE
    assert not any(mt == MIGRATE_UNMOVABLE for _, _, mt in z.free_blocks())
    assert audit(z, {"held": [(p, 0) for p in [*got, pfn]]}).ok


def test_movable_fallback_prefers_reclaimable_then_unmovable():
    """MOVABLE falls back to RECLAIMABLE first, then UNMOVABLE; when all lists are empty allocation fails."""
    z = Zone(0, 8192, 2)
    held = z.rmqueue_bulk(pageblock_order, 12, MIGRATE_MOVABLE)
    assert held == list(range(2048, 8192, 512))
    nxt = z.rmqueue_buddy(pageblock_order, MIGRATE_MOVABLE)
    assert nxt == 1024 and z.get_pageblock_migratetype(1024) == MIGRATE_MOVABLE
    rest = z.rmqueue_bulk(pageblock_order, 5, MIGRATE_MOVABLE)
    assert rest == [1536, 0, 512]
    assert z.get_pageblock_migratetype(0) == MIGRATE_MOVABLE
    assert z.rmqueue_buddy(0, MIGRATE_MOVABLE) is None
    assert z.free_pages == 0
    assert audit(z, {"held": [(p, pageblock_order) for p in [*held, nxt, *rest]]}).ok


def test_whole_pageblock_steal_below_pageblock_order():
    """An UNMOVABLE request finding only a smaller MOVABLE block may steal the whole pageblock: its free pages
    move to UNMOVABLE and the pageblock changes type once at least half of it is free."""
    z = Zone(0, 8192, 2)
    z.rmqueue_bulk(0, 1024, MIGRATE_UNMOVABLE)
    z.rmqueue_bulk(0, 1024, MIGRATE_RECLAIMABLE)
    big = [z.rmqueue_buddy(9, MIGRATE_MOVABLE) for _ in range(11)]
    assert None not in big
    # One movable pageblock left; split it so its largest free block is order 8.
    assert z.rmqueue_buddy(0, MIGRATE_MOVABLE) is not None
    last = [p for p, _, mt in z.free_blocks() if mt == MIGRATE_MOVABLE]
    block = min(last) & ~511
    pfn = z.rmqueue_buddy(0, MIGRATE_UNMOVABLE)
    assert pfn is not None and pfn & ~511 == block
    assert z.get_pageblock_migratetype(block) == MIGRATE_UNMOVABLE
    assert all(mt == MIGRATE_UNMOVABLE for p, _, mt in z.free_blocks() if p & ~511 == block)
    assert check_buddy(z) == []


@pytest.mark.parametrize(
    "pfn,order,match",
    [
        (8192, 0, "outside zone"),
        (-1, 0, "outside zone"),
        (8190, 2, "outside zone"),
        (3, 1, "misaligned"),
        (4, 3, "misaligned"),
        (5000, 0, "double free"),  # inside a free order-10 block
        (0, 10, "double free"),  # contains free blocks after a split
    ],
)
def test_bad_frees_raise_and_change_nothing(pfn, order, match):
    """Freeing out of the zone, misaligned, or already-free pages raises PageStateError and changes nothing."""
    z = Zone(0, 8192, 2)
    z.rmqueue_buddy(0, MIGRATE_UNMOVABLE)
    before = snapshot(z)
    with pytest.raises(PageStateError, match=match):
        z.free_one_page(pfn, order, MIGRATE_MOVABLE)
    assert snapshot(z) == before
    assert issubclass(PageStateError, ValueError)


@pytest.mark.parametrize(
    "pages, match",
    [
        ([(2112, 0, 1), (2114, 0, 1), (2112, 0, 1)], "pfn 2112 appears twice in one bulk free"),  # one head twice
        ([(2114, 1, 1), (2115, 0, 1)], r"pfn 2115 appears twice in one bulk free \(block pfn 2115 order 0\)"),  # inside
        ([(2115, 0, 1), (2112, 2, 1)], r"pfn 2115 appears twice in one bulk free \(block pfn 2112 order 2\)"),  # after
        ([(2112, 0, 1), (5000, 0, 1)], "double free: pfn 5000"),  # a page already free
    ],
)
def test_a_bulk_free_that_names_a_page_twice_or_a_free_page_raises_and_frees_none(pages, match):
    """Both bulk frees check every page before they free one: a page named twice in the list (two
    blocks with one head, or a block inside another) or one already free raises and changes nothing."""
    for free in (Zone.free_pcppages_bulk, Zone.free_one_page_list):
        z = Zone(0, 8192, 2)
        assert sorted(z.rmqueue_bulk(0, 128, MIGRATE_MOVABLE)) == list(range(2048, 2176))
        before = snapshot(z)
        with pytest.raises(PageStateError, match=match):
            free(z, pages)
        assert snapshot(z) == before and check_buddy(z) == []


def test_double_free_of_same_page_raises():
    """Freeing the same page twice raises on the second free with the pfn in the message."""
    z = Zone(0, 8192, 2)
    pfn = z.rmqueue_buddy(0, MIGRATE_MOVABLE)
    z.free_one_page(pfn, 0, MIGRATE_MOVABLE)
    before = snapshot(z)
    with pytest.raises(PageStateError, match=f"pfn {pfn}"):
        z.free_one_page(pfn, 0, MIGRATE_MOVABLE)
    assert snapshot(z) == before


def test_bulk_free_is_all_or_nothing():
    """free_pcppages_bulk with one bad page (or a page listed twice) frees none of the batch."""
    z = Zone(0, 8192, 2)
    pages = z.rmqueue_bulk(0, 4, MIGRATE_MOVABLE)
    before = snapshot(z)
    with pytest.raises(PageStateError):
        z.free_pcppages_bulk([(pages[0], 0, 1), (pages[1], 0, 1), (6000, 0, 1)])
    with pytest.raises(PageStateError, match="twice"):
        z.free_pcppages_bulk([(pages[0], 0, 1), (pages[0], 0, 1)])
    assert snapshot(z) == before
    z.free_pcppages_bulk([(p, 0, MIGRATE_MOVABLE) for p in pages])
    assert audit(z, {}).ok


def test_bad_allocation_arguments_raise():
    """Orders outside [0, MAX_ORDER) and unknown migratetypes are rejected."""
    z = Zone(0, 8192, 2)
    with pytest.raises(ValueError):
        z.rmqueue_buddy(11, MIGRATE_MOVABLE)
    with pytest.raises(ValueError):
        z.rmqueue_bulk(0, 1, 7)


def test_isolated_pageblock_keeps_its_pages_apart_until_unisolated():
    """Pages freed into an isolated pageblock go on the ISOLATE list and do not merge with non-isolate buddies;
    moving the block back to MOVABLE re-merges them."""
    z = Zone(0, 8192, 2)
    a, b = z.rmqueue_bulk(0, 2, MIGRATE_MOVABLE)
    assert b == a + 1
    z.set_pageblock_migratetype(a, MIGRATE_ISOLATE)
    assert z.has_isolate_pageblock()
    z.free_one_page(a, 0, MIGRATE_MOVABLE)  # free_one_page trusts the pageblock while any block is isolated
    assert z.free_block_at(a) == (0, MIGRATE_ISOLATE)
    z.set_pageblock_migratetype(a, MIGRATE_MOVABLE)
    z.free_one_page(b, 0, MIGRATE_MOVABLE)
    assert z.free_block_at(b) == (0, MIGRATE_MOVABLE)
    assert check_buddy(z) == []  # unmerged, but legitimately: one side is isolate
    z.move_freepages_block(a, MIGRATE_MOVABLE)
    assert z.free_pages == 8192 and z.nr_free(0) == 0
    assert audit(z, {}).ok


def test_watermark_ok():
    """zone_watermark_ok: free pages minus the request must stay above the mark, with a large-enough block free."""
    z = Zone(0, 8192, 2)
    assert z.zone_watermark_ok(0, z.watermark["high"])
    assert not z.zone_watermark_ok(0, 8192)
    assert z.zone_watermark_ok(10, 1000)
    z.rmqueue_bulk(10, 7, MIGRATE_MOVABLE)
    z.rmqueue_bulk(10, 7, MIGRATE_UNMOVABLE)
    assert not z.zone_watermark_ok(10, 0)
