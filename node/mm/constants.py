"""Page-allocator constants and index helpers, as in include/linux/mmzone.h (v6.1).

Only the values pcpsim needs; names are the kernel's.
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT

# enum migratetype (CONFIG_CMA off; MIGRATE_ISOLATE kept because frees of
# isolated pages bypass the pcp lists).
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3  # the number of types on the pcp lists
MIGRATE_HIGHATOMIC = MIGRATE_PCPTYPES
MIGRATE_ISOLATE = 4
MIGRATE_TYPES = 5

MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")

MAX_ORDER = 11  # v6.1: valid orders are 0 .. MAX_ORDER - 1
PAGE_ALLOC_COSTLY_ORDER = 3
pageblock_order = 9  # HUGETLB_PAGE_ORDER on x86-64 with 4 KiB pages
HPAGE_PMD_ORDER = 9
pageblock_nr_pages = 1 << pageblock_order

# 3 migratetypes x orders 0..3; the THP-order lists follow (CONFIG_TRANSPARENT_HUGEPAGE=y).
NR_LOWORDER_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)

# Which THP list each pcp migratetype uses, as an offset from NR_LOWORDER_PCP_LISTS. The layout changed
# twice, so it is the kernel profile's (PerCpuPages.thp_lists), not one NR_PCP_LISTS:
# - v5.14 to v5.19, 44042b449872 "mm/page_alloc: allow high-order pages to be stored on the per-cpu
#   lists": NR_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1 + NR_PCP_THP), one THP list
#   per type, 15 lists;
# - v6.0 to v6.9, 5d0a661d808f "mm/page_alloc: use only one PCP list for THP-sized allocations" (Mel
#   Gorman's remote-drain series, to keep struct per_cpu_pages in 4 cache lines): one list, 13;
# - v6.10 on, yangge's "mm/page_alloc: Separate THP PCP into movable and non-movable categories"
#   (mm-hotfixes, June 2024; Fixes: 5d0a661d808f): NR_PCP_THP 2, order_to_pindex returns
#   NR_LOWORDER_PCP_LISTS + (migratetype == MIGRATE_MOVABLE), 14 lists.
THP_LIST_PER_TYPE = (0, 1, 2)
THP_LIST_SHARED = (0, 0, 0)
THP_LIST_MOVABLE_APART = (0, 1, 0)

# A page as the pcp paths, the zone and the drains pass it: (pfn, order, migratetype).
Page = tuple[int, int, int]


def pcp_allowed_order(order: int) -> bool:
    """Orders the pcp lists cache: 0..PAGE_ALLOC_COSTLY_ORDER and the THP order."""
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == pageblock_order


def order_to_pindex(migratetype: int, order: int, thp_lists: tuple[int, ...] = THP_LIST_SHARED) -> int:
    """The list of a page of `order` and `migratetype` (a pcp type) under the THP layout `thp_lists`."""
    if not 0 <= migratetype < MIGRATE_PCPTYPES:
        raise ValueError(f"migratetype {migratetype} has no pcp list")
    if order > PAGE_ALLOC_COSTLY_ORDER:
        if order != pageblock_order:
            raise ValueError(f"order {order} has no pcp list")
        return NR_LOWORDER_PCP_LISTS + thp_lists[migratetype]
    return MIGRATE_PCPTYPES * order + migratetype


def pindex_to_order(pindex: int) -> int:
    if pindex >= NR_LOWORDER_PCP_LISTS:  # every layout's THP lists
        return pageblock_order
    return pindex // MIGRATE_PCPTYPES


def nr_pcp_lists(thp_lists: tuple[int, ...]) -> int:
    """NR_PCP_LISTS of the kernel whose THP layout is `thp_lists`."""
    return NR_LOWORDER_PCP_LISTS + max(thp_lists) + 1
