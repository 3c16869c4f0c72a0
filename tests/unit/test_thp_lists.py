"""The THP-order pcp lists of each kernel (node.mm.constants): one per migratetype in 5.19, one for all
from v6.0 (5d0a661d808f), movable apart from the rest from v6.10 (yangge's "mm/page_alloc: Separate
THP PCP into movable and non-movable categories")."""

import pytest

from node.mm import pcp_rcu
from node.mm import profile as profiles
from node.mm.audit import audit, check_pcp
from node.mm.constants import (
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    NR_LOWORDER_PCP_LISTS,
    THP_LIST_MOVABLE_APART,
    THP_LIST_PER_TYPE,
    THP_LIST_SHARED,
    order_to_pindex,
    pageblock_order,
    pindex_to_order,
)
from node.mm.pcp import PerCpuPages, drain_pages_zone, rmqueue
from node.mm.pcp_free import free_unref_page
from node.mm.pcp_rcu import RcuPerCpuPages
from node.mm.zone import Zone

THP = pageblock_order


def pcp_of(kernel: str) -> PerCpuPages:
    pcp = PerCpuPages(0, high=10_000, batch=63)
    profiles.set_up_pcp(pcp, profiles.get(kernel), data_slice_pages=0)
    return pcp


@pytest.mark.parametrize(
    ("kernel", "nr_lists", "thp_pindex"),
    [
        ("5.19", 15, (12, 13, 14)),  # NR_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1 + NR_PCP_THP)
        ("6.1", 13, (12, 12, 12)),  # NR_LOWORDER_PCP_LISTS + NR_PCP_THP, NR_PCP_THP 1
        ("6.6", 13, (12, 12, 12)),
        ("6.12", 14, (12, 13, 12)),  # NR_PCP_THP 2: NR_LOWORDER_PCP_LISTS + (migratetype == MIGRATE_MOVABLE)
        ("6.19", 14, (12, 13, 12)),
    ],
)
def test_each_kernel_has_its_lists(kernel, nr_lists, thp_pindex):
    pcp = pcp_of(kernel)
    assert len(pcp.lists) == nr_lists
    types = (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE)
    assert tuple(order_to_pindex(mt, THP, pcp.thp_lists) for mt in types) == thp_pindex
    assert {pindex_to_order(i) for i in range(NR_LOWORDER_PCP_LISTS, nr_lists)} == {THP}


def test_an_unmovable_thp_allocation_takes_a_movable_thp_from_the_one_list_of_v6_0():
    """What yangge's patch fixed: with one THP list, the page at its head is handed to any migratetype,
    so an unmovable request gets the movable THP freed last (in the kernel, possibly a CMA page)."""
    zone = Zone(0, 262144, 4)
    pcp = pcp_of("6.6")
    movable = zone.rmqueue_buddy(THP, MIGRATE_MOVABLE)
    assert free_unref_page(zone, pcp, movable, THP, MIGRATE_MOVABLE) == "pcp"
    assert rmqueue(zone, pcp, THP, MIGRATE_UNMOVABLE) == movable
    assert pcp.count == 0


@pytest.mark.parametrize("kernel", ["6.12", "6.19", "5.19"])
def test_an_unmovable_thp_allocation_leaves_the_movable_thp_on_its_list(kernel):
    """With the movable THPs on a list of their own (v6.10; 5.19's one per type), the unmovable request
    refills its own list from the zone, and the movable THP stays for a movable request."""
    zone = Zone(0, 262144, 4)
    pcp = pcp_of(kernel)
    movable = zone.rmqueue_buddy(THP, MIGRATE_MOVABLE)
    assert free_unref_page(zone, pcp, movable, THP, MIGRATE_MOVABLE) == "pcp"
    refills = pcp.stats.refills
    unmovable = rmqueue(zone, pcp, THP, MIGRATE_UNMOVABLE)
    assert unmovable not in (None, movable)
    assert pcp.stats.refills == refills + 1
    assert list(pcp.lists[order_to_pindex(MIGRATE_MOVABLE, THP, pcp.thp_lists)]) == [movable]
    assert check_pcp(pcp) == []
    assert rmqueue(zone, pcp, THP, MIGRATE_MOVABLE) == movable
    held = [(movable, THP), (unmovable, THP)]
    assert audit(zone, {"pcp": [(p, o) for p, o, _ in pcp.pages()], "held": held}).ok


def test_unmovable_and_reclaimable_thps_share_a_list_from_v6_10():
    """NR_PCP_THP 2 splits movable from the rest, not the rest from each other: a reclaimable THP
    freed last is what the next unmovable THP request gets; each page keeps its recorded type."""
    zone = Zone(0, 262144, 4)
    pcp = pcp_of("6.12")
    reclaimable = zone.rmqueue_buddy(THP, MIGRATE_RECLAIMABLE)
    assert free_unref_page(zone, pcp, reclaimable, THP, MIGRATE_RECLAIMABLE) == "pcp"
    assert pcp.thp_migratetype[reclaimable] == MIGRATE_RECLAIMABLE
    assert (reclaimable, THP, MIGRATE_RECLAIMABLE) in pcp.pages()
    assert rmqueue(zone, pcp, THP, MIGRATE_UNMOVABLE) == reclaimable


def test_a_drain_empties_every_thp_list_and_returns_each_page_with_its_type():
    zone = Zone(0, 262144, 4)
    pcp = pcp_of("5.19")
    for mt in (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE):
        pfn = zone.rmqueue_buddy(THP, mt)
        assert free_unref_page(zone, pcp, pfn, THP, mt) == "pcp"
    assert [len(lst) for lst in pcp.lists[NR_LOWORDER_PCP_LISTS:]] == [1, 1, 1]
    assert drain_pages_zone(zone, pcp) == 3 * 512
    assert pcp.count == 0 and not pcp.thp_migratetype
    assert audit(zone, {}).ok


def test_the_audit_finds_a_thp_on_another_types_list():
    pcp = pcp_of("6.12")
    pcp.lists[NR_LOWORDER_PCP_LISTS].append(512)  # the unmovable-and-reclaimable list
    pcp.thp_migratetype[512] = MIGRATE_MOVABLE
    pcp.count = 512
    assert check_pcp(pcp) == [f"cpu0: THP pfn 512 of migratetype {MIGRATE_MOVABLE} on list {NR_LOWORDER_PCP_LISTS}"]


def test_the_layout_is_set_only_on_an_empty_pcp():
    zone = Zone(0, 262144, 4)
    pcp = PerCpuPages(0, high=10_000, batch=63)
    assert rmqueue(zone, pcp, 0, MIGRATE_MOVABLE) is not None
    with pytest.raises(ValueError, match="THP lists set with 62 pages"):
        pcp.set_thp_lists(THP_LIST_MOVABLE_APART)
    assert pcp.thp_lists == THP_LIST_SHARED and len(pcp.lists) == 13


def test_order_to_pindex_refuses_what_has_no_list():
    with pytest.raises(ValueError, match="order 5 has no pcp list"):
        order_to_pindex(MIGRATE_MOVABLE, 5, THP_LIST_PER_TYPE)
    with pytest.raises(ValueError, match="migratetype 3 has no pcp list"):
        order_to_pindex(3, THP, THP_LIST_PER_TYPE)


def test_both_rcu_list_sets_have_the_kernels_lists():
    """rcu-swap's two list sets (node.mm.pcp_rcu) are each a struct pcplists of the kernel the design
    runs on: 5.19's 15 lists in both, so a THP freed after a swap lands on its type's list."""
    zone = Zone(0, 262144, 4)
    pcp = RcuPerCpuPages(0, high=10_000, batch=63)
    profiles.set_up_pcp(pcp, profiles.get("5.19"), data_slice_pages=0)
    assert [len(s.lists) for s in pcp.pcplists] == [15, 15]
    reclaimable = zone.rmqueue_buddy(THP, MIGRATE_RECLAIMABLE)
    assert pcp_rcu.free_unref_page(zone, pcp, reclaimable, THP, MIGRATE_RECLAIMABLE) == "pcp"
    assert list(pcp.lp.lists[NR_LOWORDER_PCP_LISTS + 2]) == [reclaimable]
    assert check_pcp(pcp.lp) == [] and check_pcp(pcp.spare) == []
