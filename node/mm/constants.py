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

# 3 migratetypes x orders 0..3, plus one list for THP-order pages.
NR_LOWORDER_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
NR_PCP_THP = 1
NR_PCP_LISTS = NR_LOWORDER_PCP_LISTS + NR_PCP_THP

# A page as the pcp paths, the zone and the drains pass it: (pfn, order, migratetype).
Page = tuple[int, int, int]


def pcp_allowed_order(order: int) -> bool:
    """Orders the pcp lists cache: 0..PAGE_ALLOC_COSTLY_ORDER and the THP order."""
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == pageblock_order


def order_to_pindex(migratetype: int, order: int) -> int:
    if order > PAGE_ALLOC_COSTLY_ORDER:
        if order != pageblock_order:
            raise ValueError(f"order {order} has no pcp list")
        return NR_LOWORDER_PCP_LISTS
    if not 0 <= migratetype < MIGRATE_PCPTYPES:
        raise ValueError(f"migratetype {migratetype} has no pcp list")
    return MIGRATE_PCPTYPES * order + migratetype


def pindex_to_order(pindex: int) -> int:
    if pindex == NR_LOWORDER_PCP_LISTS:
        return pageblock_order
    return pindex // MIGRATE_PCPTYPES
