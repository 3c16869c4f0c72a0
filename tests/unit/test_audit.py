"""The checkers can fail: audit, check_buddy and check_pcp report each kind of violation with its pfns."""

from collections import deque

from node.mm.audit import audit, check_buddy, check_pcp
from node.mm.constants import MIGRATE_MOVABLE, NR_LOWORDER_PCP_LISTS
from node.mm.pcp import PerCpuPages, rmqueue
from node.mm.zone import Zone


def test_clean_state_passes_and_reports_where():
    """A consistent zone + holders gives ok with base pages per holder."""
    z = Zone(0, 8192, 2)
    pcp = PerCpuPages(0, high=100, batch=8)
    held = [rmqueue(z, pcp, 1, MIGRATE_MOVABLE) for _ in range(3)]
    r = audit(z, {"cpu0.pcp": [(p, o) for p, o, _ in pcp.pages()], "cpu0.allocated": [(p, 1) for p in held]})
    assert r.ok, r.errors
    assert r.where == {"free": 8192 - 8, "cpu0.pcp": 2, "cpu0.allocated": 6}
    assert r.to_dict()["lost_count"] == 0


def test_audit_detects_lost_page():
    """An allocated page nobody claims is reported lost."""
    z = Zone(0, 8192, 2)
    pfn = z.rmqueue_buddy(0, MIGRATE_MOVABLE)
    r = audit(z, {})
    assert not r.ok and r.lost == [pfn]
    assert "1 of 8192 pages lost" in r.errors[0]


def test_audit_detects_duplicated_page():
    """A page claimed by two holders (or by a holder while free) is reported duplicated."""
    z = Zone(0, 8192, 2)
    pfn = z.rmqueue_buddy(0, MIGRATE_MOVABLE)
    r = audit(z, {"a": [(pfn, 0)], "b": [(pfn, 0)]})
    assert not r.ok and r.duplicated == [pfn] and r.lost == []
    r = audit(z, {"a": [(pfn, 0)], "b": [(5000, 1)]})
    assert r.duplicated == [5000, 5001]


def test_audit_detects_unexpected_pfn_and_truncates_to_dict():
    """Pages outside the zone are unexpected; to_dict gives counts and at most 20 pfns of each list."""
    z = Zone(0, 8192, 2)
    r = audit(z, {"inflight.x": [(8192, 5)]})
    assert not r.ok and r.unexpected == list(range(8192, 8224))
    d = r.to_dict()
    assert d["unexpected_count"] == 32 and len(d["unexpected"]) == 20


def test_check_buddy_detects_unmerged_buddies_and_bad_counts():
    """Two free buddies of one order and mergeable types, or a wrong free_pages, are errors."""
    z = Zone(0, 8192, 2)
    a = z.rmqueue_buddy(0, MIGRATE_MOVABLE)
    z._add_to_free_list(a, 0, MIGRATE_MOVABLE)  # bypass the merge
    errs = check_buddy(z)
    assert any("not merged" in e for e in errs)
    assert any("free_pages 8191 != 8192" in e for e in errs)


def test_check_buddy_detects_overlap():
    """A free block inside another free block is an overlap."""
    z = Zone(0, 8192, 2)
    z._add_to_free_list(2050, 1, MIGRATE_MOVABLE)
    assert any("overlaps" in e for e in check_buddy(z))


def test_check_buddy_detects_a_free_map_that_disagrees_with_the_lists():
    """The double-free check reads the free map: a block listed free whose pages it marks taken, or
    a page it marks free that no listed block holds, is an error."""
    z = Zone(0, 8192, 2)
    a = z.rmqueue_buddy(0, MIGRATE_MOVABLE)
    z._add_to_free_list(a, 0, MIGRATE_MOVABLE)  # listed, but the map still has it taken
    z.free_pages += 1
    want = "free map marks 8191 pages free against 8192 on the free lists; "
    want += f"free blocks with pages it marks taken: pfn [{a}]"
    assert want in check_buddy(z)
    z = Zone(0, 8192, 2)
    b = z.rmqueue_buddy(0, MIGRATE_MOVABLE)
    z._free_map[b] = 1  # marked free, on no list: a free of b would be refused as a double free
    assert check_buddy(z) == ["free map marks 8192 pages free against 8191 on the free lists"]


def test_check_pcp_detects_count_and_thp_errors():
    """check_pcp reports a count that disagrees with the lists and a THP page without a migratetype."""
    pcp = PerCpuPages(3)
    pcp.lists[0] = deque([1, 2])
    pcp.count = 3
    pcp.lists[NR_LOWORDER_PCP_LISTS] = deque([512])
    errs = check_pcp(pcp)
    assert any("count 3 != 514" in e for e in errs)
    assert any("THP pfn 512 has no recorded migratetype" in e for e in errs)
    pcp.lists[4] = deque([7])
    assert any("misaligned for order 1" in e for e in check_pcp(pcp))
