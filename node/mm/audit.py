"""Invariant checkers: page conservation, buddy consistency and pcp consistency (docs/design.md, "Invariants").

Not a kernel function: the nearest kernel analogues are CONFIG_DEBUG_VM checks (check_new_page, bad_page,
VM_BUG_ON in __free_one_page) and /proc/buddyinfo. Modeled on Jepsen's bank checker: every base page of the
zone must be accounted for exactly once, and failures are reported with the pfns and the numbers.

Callers must stop mutation (hold the zone lock and every pcp lock, or pause the system) while auditing.
``where`` maps each holder name (plus "free" for the zone's free lists) to the base pages it claims.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .buddy import BuddyAllocator
from .constants import MAX_ORDER, MIGRATE_PCPTYPES, NR_LOWORDER_PCP_LISTS, pindex_to_order

_SAMPLE = 20


class PcpView(Protocol):
    """What check_pcp reads of a pcp: node.mm.pcp.PerCpuPages, or one list set of node.mm.pcp_rcu's."""

    @property
    def cpu(self) -> int: ...

    @property
    def count(self) -> int: ...

    @property
    def lists(self) -> Sequence[Iterable[int]]: ...

    @property
    def thp_migratetype(self) -> Mapping[int, int]: ...

    @property
    def thp_lists(self) -> tuple[int, ...]: ...


@dataclass
class AuditReport:
    ok: bool
    total_pages: int
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    where: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "total_pages": self.total_pages,
            "lost_count": len(self.lost),
            "lost": self.lost[:_SAMPLE],
            "duplicated_count": len(self.duplicated),
            "duplicated": self.duplicated[:_SAMPLE],
            "unexpected_count": len(self.unexpected),
            "unexpected": self.unexpected[:_SAMPLE],
            "errors": list(self.errors),
            "where": dict(self.where),
        }


def audit(zone: BuddyAllocator, holders: Mapping[str, Iterable[Sequence[int]]]) -> AuditReport:
    """Every pfn of [zone.start_pfn, zone.end_pfn) covered exactly once by free blocks + holders' pages.
    A holder's page is (pfn, order) or (pfn, order, migratetype)."""
    start, end = zone.start_pfn, zone.end_pfn
    total = end - start
    cov = bytearray(total)  # times each base page is covered, saturating at 2
    dup_set: set[int] = set()
    unexpected: list[int] = []
    errors = check_buddy(zone)

    def cover(pfn: int, order: int) -> None:
        nr = 1 << order
        lo, hi = pfn - start, pfn - start + nr
        if lo >= 0 and hi <= total and not any(cov[lo:hi]):
            cov[lo:hi] = b"\x01" * nr  # fast path: the whole block is new
            return
        for p in range(pfn, pfn + nr):
            i = p - start
            if i < 0 or i >= total:
                unexpected.append(p)
            elif cov[i]:
                cov[i] = 2
                dup_set.add(p)
            else:
                cov[i] = 1

    where = {"free": 0}
    for pfn, order, _mt in zone.free_blocks():
        cover(pfn, order)
        where["free"] += 1 << order
    for name, pages in holders.items():
        n = 0
        for page in pages:
            pfn, order = page[0], page[1]
            if not 0 <= order < MAX_ORDER:
                errors.append(f"{name}: pfn {pfn} has order {order} out of range [0, {MAX_ORDER})")
                continue
            if pfn & ((1 << order) - 1):
                errors.append(f"{name}: pfn {pfn} misaligned for order {order}")
            cover(pfn, order)
            n += 1 << order
        where[name] = where.get(name, 0) + n

    lost = []
    i = cov.find(0)
    while i != -1:
        lost.append(start + i)
        i = cov.find(0, i + 1)
    duplicated = sorted(dup_set)
    if lost:
        errors.append(f"{len(lost)} of {total} pages lost (first {lost[:3]})")
    if duplicated:
        errors.append(f"{len(duplicated)} pages held more than once (first {duplicated[:3]})")
    if unexpected:
        errors.append(f"{len(unexpected)} pages outside zone [{start}, {end}) (first {unexpected[:3]})")
    return AuditReport(
        ok=not errors,
        total_pages=total,
        lost=lost,
        duplicated=duplicated,
        unexpected=unexpected,
        errors=errors,
        where=where,
    )


def check_buddy(zone: BuddyAllocator) -> list[str]:
    """Free blocks aligned, in the zone, non-overlapping; no mergeable free buddies left unmerged;
    free_pages, nr_free, the head index and the free map agree with the free lists."""
    errors: list[str] = []
    start, end = zone.start_pfn, zone.end_pfn
    blocks = sorted(zone.free_blocks())
    heads: dict[int, tuple[int, int]] = {}
    total = 0
    prev_end: int | None = None
    prev_pfn: int | None = None
    for pfn, order, mt in blocks:
        nr = 1 << order
        total += nr
        if pfn & (nr - 1):
            errors.append(f"free block pfn {pfn} misaligned for order {order}")
        if pfn < start or pfn + nr > end:
            errors.append(f"free block pfn {pfn} order {order} outside zone [{start}, {end})")
        if prev_end is not None and pfn < prev_end:
            errors.append(f"free block pfn {pfn} order {order} overlaps free block pfn {prev_pfn} (ends {prev_end})")
        if pfn in heads:
            errors.append(f"pfn {pfn} on two free lists")
        heads[pfn] = (order, mt)
        if prev_end is None or pfn + nr > prev_end:
            prev_end, prev_pfn = pfn + nr, pfn
    for pfn, (order, mt) in heads.items():
        if order >= MAX_ORDER - 1:
            continue
        buddy = pfn ^ (1 << order)
        if pfn < buddy and heads.get(buddy, (None,))[0] == order:
            bmt = heads[buddy][1]
            if bmt == mt or (bmt < MIGRATE_PCPTYPES and mt < MIGRATE_PCPTYPES):
                errors.append(f"free buddies pfn {pfn} and {buddy} of order {order} (types {mt}, {bmt}) not merged")
        if zone.free_block_at(pfn) != (order, mt):
            errors.append(f"head index says {zone.free_block_at(pfn)} for free block pfn {pfn} ({order}, {mt})")
    if total != zone.free_pages:
        errors.append(f"free_pages {zone.free_pages} != {total} base pages on the free lists")
    # The map marks every page of every listed block (checked block by block) and no other page
    # (its count of marks is the lists' base pages: the blocks do not overlap, checked above).
    marked = zone.marked_free_pages()
    unmarked = [pfn for pfn, order, _ in blocks if zone.first_taken_page(pfn, pfn + (1 << order)) is not None]
    if unmarked or marked != total:
        errors.append(
            f"free map marks {marked} pages free against {total} on the free lists"
            + (f"; free blocks with pages it marks taken: pfn {unmarked[:5]}" if unmarked else "")
        )
    for order in range(MAX_ORDER):
        counted = sum(1 for _, o, _ in blocks if o == order)
        if zone.nr_free(order) != counted:
            errors.append(f"nr_free({order}) = {zone.nr_free(order)} but {counted} blocks listed")
    return errors


def check_pcp(pcp: PcpView) -> list[str]:
    """count == base pages on the lists; every page's order and migratetype match its list (a THP's, its
    recorded type's list under the kernel's THP layout)."""
    errors: list[str] = []
    total = 0
    seen: set[int] = set()
    on_thp_lists: set[int] = set()
    for pindex in range(len(pcp.lists)):
        order = pindex_to_order(pindex)
        for pfn in pcp.lists[pindex]:
            total += 1 << order
            if pfn in seen:
                errors.append(f"cpu{pcp.cpu}: pfn {pfn} on the pcp lists twice")
            seen.add(pfn)
            if pfn & ((1 << order) - 1):
                errors.append(f"cpu{pcp.cpu}: pfn {pfn} on list {pindex} misaligned for order {order}")
            if pindex >= NR_LOWORDER_PCP_LISTS:
                on_thp_lists.add(pfn)
                mt = pcp.thp_migratetype.get(pfn)
                if mt is None:
                    errors.append(f"cpu{pcp.cpu}: THP pfn {pfn} has no recorded migratetype")
                elif not 0 <= mt < MIGRATE_PCPTYPES:
                    errors.append(f"cpu{pcp.cpu}: THP pfn {pfn} has migratetype {mt}, not a pcp type")
                elif NR_LOWORDER_PCP_LISTS + pcp.thp_lists[mt] != pindex:
                    errors.append(f"cpu{pcp.cpu}: THP pfn {pfn} of migratetype {mt} on list {pindex}")
    stale = set(pcp.thp_migratetype) - on_thp_lists
    if stale:
        errors.append(
            f"cpu{pcp.cpu}: {len(stale)} thp_migratetype entries for pages not on a THP list "
            f"(first {sorted(stale)[:3]})"
        )
    if total != pcp.count:
        errors.append(f"cpu{pcp.cpu}: count {pcp.count} != {total} base pages on the lists")
    return errors
