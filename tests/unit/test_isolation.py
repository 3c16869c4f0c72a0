"""Page isolation and taking a range out of the buddy (node.mm.isolation), on an in-process zone."""

import pytest

from node.mm import isolation
from node.mm.audit import audit, check_buddy
from node.mm.constants import MIGRATE_ISOLATE, MIGRATE_MOVABLE
from node.mm.zone import PageStateError, Zone


def test_isolated_range_takes_no_allocation_and_comes_out_whole():
    """Isolating one pageblock of an order-10 free block splits the block at the boundary; allocations
    then never land in the range, and the whole range comes out of the buddy as maximal blocks that,
    held by a caller, balance the audit to the page."""
    z = Zone(0, 8192, 2)
    start, nr = 4096 + 512, 512  # the upper half of the order-10 block at 4096
    saved = isolation.start_isolate_page_range(z, start, nr)
    assert saved == [MIGRATE_MOVABLE]
    assert z.get_pageblock_migratetype(start) == MIGRATE_ISOLATE
    assert check_buddy(z) == []
    got = [z.rmqueue_buddy(0, MIGRATE_MOVABLE) for _ in range(3000)]
    assert not any(start <= p < start + nr for p in got)
    assert isolation.test_pages_isolated(z, start, nr) is None
    blocks = isolation.take_isolated_range(z, start, nr)
    assert blocks == [(start, 9)]
    isolation.undo_isolate_page_range(z, start, nr, saved)
    assert z.get_pageblock_migratetype(start) == MIGRATE_MOVABLE
    report = audit(z, {"held": [(p, 0) for p in got], "range": blocks})
    assert report.ok, report.errors


def test_a_busy_page_is_reported_and_the_undo_merges_back():
    """A page of the range held by someone makes test_pages_isolated name it and take_isolated_range refuse
    (changing nothing); undoing the isolation after the page is freed merges everything back."""
    z = Zone(0, 8192, 2)
    pfn = z.rmqueue_buddy(0, MIGRATE_MOVABLE)  # the lowest MOVABLE page
    start = pfn - pfn % 512
    saved = isolation.start_isolate_page_range(z, start, 512)
    assert isolation.test_pages_isolated(z, start, 512) == pfn
    free0 = z.free_pages
    with pytest.raises(PageStateError, match=f"pfn {pfn}"):
        isolation.take_isolated_range(z, start, 512)
    assert z.free_pages == free0
    z.free_one_page(pfn, 0, MIGRATE_MOVABLE)  # lands on the isolate list
    assert z.free_block_at(start) is not None and isolation.test_pages_isolated(z, start, 512) is None
    isolation.undo_isolate_page_range(z, start, 512, saved)
    assert check_buddy(z) == [] and audit(z, {}).ok and z.free_pages == 8192


@pytest.mark.parametrize("start,nr", [(100, 512), (512, 100), (7680, 1024), (-512, 512)])
def test_misaligned_or_outside_ranges_are_refused(start, nr):
    z = Zone(0, 8192, 2)
    with pytest.raises(PageStateError):
        isolation.start_isolate_page_range(z, start, nr)
    assert audit(z, {}).ok and not z.has_isolate_pageblock()


def test_an_isolated_pageblock_cannot_be_isolated_twice():
    z = Zone(0, 8192, 2)
    isolation.start_isolate_page_range(z, 1024, 512)
    with pytest.raises(PageStateError, match="already isolated"):
        isolation.start_isolate_page_range(z, 512, 1024)
    assert z.get_pageblock_migratetype(512) != MIGRATE_ISOLATE


def test_adjacent_isolated_ranges_come_out_separately():
    """Two neighbouring pageblocks isolated at once merge into one isolated free block; taking the first
    takes only its own pages (the block is split at the range's end), the second is then still free and
    comes out whole, and the audit balances with both ranges held."""
    z = Zone(0, 8192, 2)
    a, b = 4096, 4096 + 512
    saved_a = isolation.start_isolate_page_range(z, a, 512)
    saved_b = isolation.start_isolate_page_range(z, b, 512)
    assert z.free_block_at(a) == (10, MIGRATE_ISOLATE)  # merged across the two ranges
    free0 = z.free_pages
    blocks_a = isolation.take_isolated_range(z, a, 512)
    assert z.free_pages == free0 - 512 and isolation.test_pages_isolated(z, b, 512) is None
    blocks_b = isolation.take_isolated_range(z, b, 512)
    isolation.undo_isolate_page_range(z, a, 512, saved_a)
    isolation.undo_isolate_page_range(z, b, 512, saved_b)
    report = audit(z, {"a": blocks_a, "b": blocks_b})
    assert report.ok, report.errors


def test_range_blocks_are_maximal_and_aligned():
    assert isolation.range_blocks(512, 4096) == [(512, 9), (1024, 10), (2048, 10), (3072, 10)]
