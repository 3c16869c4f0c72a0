"""Free-path fidelity, transcribed from the kernel: the free-time migratetype (v6.1
free_unref_page_prepare: get_pfnblock_migratetype) and v6.2 free_unref_page_list after a failed
trylock (574907741599 + its -fix). docs/kernel-facts.md, sections 1 and 2."""

import pytest

from node.alloc import PageAllocator
from node.cpu import Cpu
from node.mm import pcp as pcpmod
from node.mm import pcp_free
from node.mm import profile as profiles
from node.mm.audit import check_buddy, check_pcp
from node.mm.constants import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
)
from node.mm.lock import LockBusy, UnsharedPcpLock, spin_is_locked
from node.mm.zone import Zone


def block_holding(zone, pfn):
    """(head, order, migratetype) of the free block that contains pfn."""
    return next((h, o, mt) for h, o, mt in zone.free_blocks() if h <= pfn < h + (1 << o))


def stolen_after_allocation(list_free):
    """A MOVABLE page is allocated through the pcp from the zone's last MOVABLE pageblock; then an
    UNMOVABLE request with its own and RECLAIMABLE lists empty steals that pageblock (more than half
    of it free: steal_suitable_fallback sets the type). Returns the zone, pcp, allocator and page."""
    zone = Zone(0, 8192, 2)
    zone.watermark_failed = False
    zone.rmqueue_bulk(0, 1024, MIGRATE_UNMOVABLE)
    zone.rmqueue_bulk(0, 1024, MIGRATE_RECLAIMABLE)
    assert None not in [zone.rmqueue_buddy(9, MIGRATE_MOVABLE) for _ in range(11)]
    pcp = pcpmod.PerCpuPages(0, high=518, batch=63)
    ops = profiles.pcp_ops(profiles.get("6.2")) if list_free else None
    alloc = PageAllocator(Cpu(0, sleep=lambda s: None), pcp, zone, coordinator_stub=None, ops=ops)
    page = alloc.alloc_pages(0, MIGRATE_MOVABLE)
    block = page & ~511
    assert zone.get_pageblock_migratetype(block) == MIGRATE_MOVABLE
    stolen = zone.rmqueue_buddy(0, MIGRATE_UNMOVABLE)
    assert stolen is not None and stolen & ~511 == block
    assert zone.get_pageblock_migratetype(block) == MIGRATE_UNMOVABLE
    return zone, pcp, alloc, page


@pytest.mark.parametrize("list_free", [False, True], ids=["free_unref_page", "free_unref_page_list"])
def test_a_page_goes_back_to_its_pageblocks_type_at_free_time(list_free):
    """free_unref_page_prepare takes get_pfnblock_migratetype(): the page allocated MOVABLE from a block
    since converted to UNMOVABLE goes on the UNMOVABLE pcp list, and free_pcppages_bulk gives it to the
    UNMOVABLE free area (its cached pcp type; the pageblock is not isolated)."""
    zone, pcp, alloc, page = stolen_after_allocation(list_free)
    assert alloc.allocated[page] == (0, MIGRATE_MOVABLE)
    if list_free:
        alloc.free_pages_list([page])
    else:
        alloc.free_pages(page)
    assert list(pcp.lists[MIGRATE_UNMOVABLE]) == [page]  # order 0: pindex == migratetype
    assert page not in pcp.lists[MIGRATE_MOVABLE]
    assert pcpmod.free_pcppages_bulk(zone, 1, pcp, MIGRATE_UNMOVABLE) == 1
    assert block_holding(zone, page)[2] == MIGRATE_UNMOVABLE
    assert check_pcp(pcp) == [] and check_buddy(zone) == []


def test_without_a_steal_the_page_keeps_its_type():
    """The control: the same allocation, no steal, goes back to the MOVABLE list."""
    zone = Zone(0, 8192, 2)
    zone.watermark_failed = False
    pcp = pcpmod.PerCpuPages(0, high=518, batch=63)
    alloc = PageAllocator(Cpu(0, sleep=lambda s: None), pcp, zone, coordinator_stub=None)
    page = alloc.alloc_pages(0, MIGRATE_MOVABLE)
    alloc.free_pages(page)
    assert pcp.lists[MIGRATE_MOVABLE][0] == page and page not in pcp.lists[MIGRATE_UNMOVABLE]


class FailsAt(UnsharedPcpLock):
    """pcp->lock whose trylocks fail at the given attempt numbers (0-based), as a drainer holding it
    then would make them; records the list position of every acquisition."""

    def __init__(self, fail_at):
        super().__init__()
        self.fail_at = set(fail_at)
        self.attempts = 0
        self.acquired_at: list[int] = []
        self.position = 0  # set by the test's zone spy: pages handled so far

    def get_nowait(self):  # every acquisition, a blocking one too (UnsharedPcpLock.get)
        attempt = self.attempts
        self.attempts += 1
        if attempt in self.fail_at:
            raise LockBusy
        self.acquired_at.append(self.position)
        return super().get_nowait()


def batched_free(n, fail_at, mt=MIGRATE_MOVABLE):
    zone = Zone(0, 1 << 16, 4)
    held = [zone.rmqueue_buddy(0, MIGRATE_MOVABLE) for _ in range(n)]
    lock = FailsAt(fail_at)
    pcp = pcpmod.PerCpuPages(1, high=1 << 12, batch=63, lock=lock)

    class Positions(list):
        def append(self, pfn):  # free_unref_page_list_trylock reports each page handled
            super().append(pfn)
            lock.position = len(self)

    done = Positions()
    free0 = zone.free_pages
    profiles.free_unref_page_list_trylock(zone, pcp, [(pfn, 0, mt) for pfn in held], done)
    return zone, pcp, lock, held, zone.free_pages - free0, done


def test_one_failed_trylock_on_a_40_page_list_sends_one_page_to_the_buddy():
    """v6.2: on a failed pcp_spin_trylock only that page goes to free_one_page, locked_zone = NULL, and
    the next page tries the lock again: 1 page to the buddy and 39 to the pcp, not 40 to the buddy.
    batch_count restarts at the acquisition, so the SWAP_CLUSTER_MAX drop comes 32 committed pages
    later (position 33), not at list position 32."""
    zone, pcp, lock, held, to_buddy, done = batched_free(40, fail_at={0})
    assert to_buddy == 1
    assert pcp.count == 39 and held[0] not in pcp.lists[MIGRATE_MOVABLE]
    assert (pcp.stats.trylock_fail_free, pcp.stats.buddy_fallback_free) == (1, 1)
    assert lock.acquired_at == [1, 1 + pcp_free.SWAP_CLUSTER_MAX]
    assert sorted(done) == sorted(held) and not spin_is_locked(lock)
    assert check_pcp(pcp) == [] and check_buddy(zone) == []


def test_without_a_failure_the_lock_drops_every_32_pages():
    _, pcp, lock, _, to_buddy, _ = batched_free(70, fail_at=set())
    assert (to_buddy, pcp.count, pcp.stats.trylock_fail_free) == (0, 70, 0)
    assert lock.acquired_at == [0, 32, 64]


def test_a_failure_at_the_relock_sends_that_page_only():
    """The trylock after the 32-page drop fails: page 32 goes to the buddy, page 33 takes the lock."""
    _, pcp, lock, held, to_buddy, _ = batched_free(40, fail_at={1})
    assert (to_buddy, pcp.count) == (1, 39) and held[32] not in pcp.lists[MIGRATE_MOVABLE]
    assert lock.acquired_at == [0, 33]
    assert (pcp.stats.trylock_fail_free, pcp.stats.buddy_fallback_free) == (1, 1)


def test_the_buddy_gets_the_unclamped_migratetype():
    """The -fix reads the migratetype before the trylock and clamps it to MOVABLE only after a
    successful one: a HIGHATOMIC page whose trylock failed goes to the HIGHATOMIC free area; the next
    one, locked, to the MOVABLE pcp list."""
    zone, pcp, _, held, to_buddy, _ = batched_free(2, fail_at={0}, mt=MIGRATE_HIGHATOMIC)
    assert to_buddy == 1 and block_holding(zone, held[0])[2] == MIGRATE_HIGHATOMIC
    assert list(pcp.lists[MIGRATE_MOVABLE]) == [held[1]]


def test_a_live_nodes_copy_of_the_pageblock_types_answers_the_free_time_lookup():
    """node.zone_client: the copy a zone reply brings (here, of a zone after a steal) answers
    get_pfnblock_migratetype() for node.alloc; before any copy it answers None, and the page keeps its
    allocation-time type."""
    import grpc

    from node.api.v1 import pcpsim_pb2 as pb
    from node.zone_client import ZoneClient

    zone, _, alloc, page = stolen_after_allocation(False)
    client = ZoneClient(grpc.insecure_channel("127.0.0.1:1"), 0, "inc")
    try:
        alloc.zone = client
        assert client.get_pageblock_migratetype(page) is None
        assert alloc._free_migratetype(page, MIGRATE_MOVABLE) == MIGRATE_MOVABLE
        first_pfn, types = zone.pageblocks()
        client._note(pb.RmqueueReply(pageblocks=pb.Pageblocks(version=1 << 32, first_pfn=first_pfn, migratetype=types)))
        assert alloc._free_migratetype(page, MIGRATE_MOVABLE) == MIGRATE_UNMOVABLE
        assert client.get_pageblock_migratetype(zone.end_pfn) is None
    finally:
        client.close()


def test_the_zone_service_sends_the_pageblock_types_to_a_copy_of_another_version():
    """coordinator.zone_service: version = (epoch << 32) + the zone's type changes."""
    from coordinator.zone_service import ZoneService
    from node.shared.timebase import CostModel

    zone = Zone(0, 8192, 2)
    service = ZoneService(zone, CostModel())
    try:
        version, first_pfn, types = service.pageblocks(0, 3)
        assert (version, first_pfn, types) == (3 << 32, 0, zone.pageblocks()[1])
        assert service.pageblocks(version, 3) is None
        assert service.pageblocks(version, 4) is not None  # a new coordinator: every copy is stale
        zone.set_pageblock_migratetype(8191, MIGRATE_UNMOVABLE)
        version2, _, types2 = service.pageblocks(version, 3)
        assert version2 == version + 1 and types2[-1] == MIGRATE_UNMOVABLE != types[-1]
    finally:
        service.close()


def zone_with_a_pcp_page_whose_block_changes(cached: bool):
    """A MOVABLE page freed to the MOVABLE pcp list; then its pageblock becomes UNMOVABLE (the type bits a
    steal sets: steal_suitable_fallback) while the page sits on the list."""
    zone = Zone(0, 8192, 2, pcppage_migratetype_cached=cached)
    pcp = pcpmod.PerCpuPages(0, high=518, batch=63)
    page = zone.rmqueue_buddy(0, MIGRATE_MOVABLE)
    assert zone.get_pageblock_migratetype(page) == MIGRATE_MOVABLE
    assert pcp_free.free_unref_page(zone, pcp, page, 0, MIGRATE_MOVABLE) == "pcp"
    zone.set_pageblock_migratetype(page, MIGRATE_UNMOVABLE)
    return zone, pcp, page


@pytest.mark.parametrize(
    ("cached", "filed_as"),
    [(True, MIGRATE_MOVABLE), (False, MIGRATE_UNMOVABLE)],
    ids=["to v6.9: the type it was freed with", "v6.10+: its pageblock's"],
)
def test_a_flush_files_a_page_whose_block_was_stolen_by_the_kernels_rule(cached, filed_as):
    """free_pcppages_bulk to v6.9 frees with get_pcppage_migratetype() (the block is not isolated); from
    v6.10 ("mm: page_alloc: remove pcppage migratetype caching") with get_pfnblock_migratetype() under
    zone->lock, so the page whose block was stolen goes to the block's new type."""
    zone, pcp, page = zone_with_a_pcp_page_whose_block_changes(cached)
    assert pcpmod.free_pcppages_bulk(zone, 1, pcp, MIGRATE_MOVABLE) == 1
    assert block_holding(zone, page)[2] == filed_as
    assert check_buddy(zone) == []


@pytest.mark.parametrize(("cached", "filed_as"), [(True, MIGRATE_MOVABLE), (False, MIGRATE_UNMOVABLE)])
def test_a_buddy_free_with_a_stale_type_is_filed_by_the_kernels_rule(cached, filed_as):
    """free_one_page to v6.9 trusts the caller's type unless pageblocks are isolated; from v6.10 ("mm:
    page_alloc: close migratetype race between freeing and stealing") it reads the block's under
    zone->lock. The zone service's free (free_one_page_list) follows the same rule."""
    for free in ("free_one_page", "free_one_page_list"):
        zone = Zone(0, 8192, 2, pcppage_migratetype_cached=cached)
        page = zone.rmqueue_buddy(0, MIGRATE_MOVABLE)
        zone.set_pageblock_migratetype(page, MIGRATE_UNMOVABLE)
        if free == "free_one_page":
            zone.free_one_page(page, 0, MIGRATE_MOVABLE)
        else:
            zone.free_one_page_list([(page, 0, MIGRATE_MOVABLE)])
        assert block_holding(zone, page)[2] == filed_as, free
        assert check_buddy(zone) == []


def folios_free(pages, lock):
    """free_unref_folios (v6.10+) of `pages` on a pcp with `lock`; the zone's frees in order."""
    zone = Zone(0, 1 << 16, 4)
    held = [zone.rmqueue_buddy(0, MIGRATE_MOVABLE) for _ in range(pages)]
    pcp = pcpmod.PerCpuPages(1, high=1 << 12, batch=63, lock=lock)
    to_zone: list[int] = []
    free_one_page = zone.free_one_page

    def spy(pfn, order, mt):
        to_zone.append(pfn)
        free_one_page(pfn, order, mt)

    zone.free_one_page = spy

    class Positions(list):
        def append(self, pfn):
            super().append(pfn)
            lock.position = len(self)

    return zone, pcp, held, to_zone, Positions()


def test_free_unref_folios_keeps_the_lock_for_the_whole_batch():
    """v6.10+: no batch_count ("has a batch count naturally built in"), so a 70-page list takes the lock
    once where v6.2's free_unref_page_list took it at 0, 32 and 64."""
    lock = FailsAt(set())
    zone, pcp, held, to_zone, done = folios_free(70, lock)
    profiles.free_unref_folios(zone, pcp, [(pfn, 0, MIGRATE_MOVABLE) for pfn in held], done)
    assert lock.acquired_at == [0] and pcp.count == 70 and not to_zone and not spin_is_locked(lock)
    assert profiles.pcp_ops(profiles.get("6.12")).free_unref_page_list is profiles.free_unref_folios
    assert profiles.pcp_ops(profiles.get("6.6")).free_unref_page_list is profiles.free_unref_page_list_trylock


def test_free_unref_folios_frees_an_isolate_page_in_order_dropping_the_lock():
    """Weiner's "optimize free_unref_folios()": an isolate page is freed in the second loop, in the list's
    order, after the lock is dropped; the next page trylocks again. v6.2 freed it first, before any trylock."""
    for free, isolate_first in ((profiles.free_unref_folios, False), (profiles.free_unref_page_list_trylock, True)):
        lock = FailsAt(set())
        zone, pcp, held, to_zone, done = folios_free(6, lock)
        pages = [(pfn, 0, MIGRATE_ISOLATE if i == 3 else MIGRATE_MOVABLE) for i, pfn in enumerate(held)]
        free(zone, pcp, pages, done)
        assert to_zone == [held[3]], free.__name__
        assert list(done) == (held[3:4] + held[:3] + held[4:] if isolate_first else held), free.__name__
        assert lock.acquired_at == ([1] if isolate_first else [0, 4]), free.__name__
        assert pcp.count == 5 and check_pcp(pcp) == [] and check_buddy(zone) == []


def pageblock_pair(cached: bool):
    """Pageblocks 2 (RECLAIMABLE) and 3 (MOVABLE) of an 8,192-page zone are the halves of one order-10
    block. Pageblock 3 is taken whole; pageblock 2 stays a free order-9 block."""
    zone = Zone(0, 8192, 2, pcppage_migratetype_cached=cached)
    reclaimable, movable = 2 * 512, 3 * 512
    assert zone.get_pageblock_migratetype(reclaimable) == MIGRATE_RECLAIMABLE
    assert zone.get_pageblock_migratetype(movable) == MIGRATE_MOVABLE
    zone.take_page_off_buddy(movable, 9)
    assert block_holding(zone, reclaimable) == (reclaimable, 9, MIGRATE_RECLAIMABLE)
    return zone, reclaimable, movable


@pytest.mark.parametrize(("cached", "reclaimable_becomes"), [(True, MIGRATE_RECLAIMABLE), (False, MIGRATE_MOVABLE)])
def test_a_merge_across_pageblocks_retypes_the_buddys_block_from_v6_10(cached, reclaimable_becomes):
    """Weiner's "fix up block types when merging compatible blocks" (v6.10): freeing the MOVABLE
    pageblock merges it with its free RECLAIMABLE buddy (both mergeable), and from v6.10 the buddy's
    pageblock takes the freed block's type ("Match buddy type"); before, it keeps its own."""
    zone, reclaimable, movable = pageblock_pair(cached)
    changes = zone.pageblock_changes
    zone.free_one_page(movable, 9, MIGRATE_MOVABLE)
    assert block_holding(zone, movable) == (reclaimable, 10, MIGRATE_MOVABLE)
    assert zone.get_pageblock_migratetype(reclaimable) == reclaimable_becomes
    assert zone.pageblock_changes == changes + (not cached)  # nodes refresh their copy of the bitmap
    assert check_buddy(zone) == []


def test_no_merge_with_an_isolated_pageblock_buddy_from_v6_10():
    """An ISOLATE buddy pageblock (set_migratetype_isolate: its type, and its free pages moved to the
    isolate list) is not mergeable: the freed pageblock stays an order-9 block and neither block changes
    type."""
    zone, reclaimable, movable = pageblock_pair(cached=False)
    zone.set_pageblock_migratetype(reclaimable, MIGRATE_ISOLATE)
    zone.move_freepages_block(reclaimable, MIGRATE_ISOLATE)
    zone.free_one_page(movable, 9, MIGRATE_MOVABLE)
    assert block_holding(zone, movable) == (movable, 9, MIGRATE_MOVABLE)
    assert zone.get_pageblock_migratetype(reclaimable) == MIGRATE_ISOLATE
    assert check_buddy(zone) == []
