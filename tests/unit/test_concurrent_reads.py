"""What a Snapshot reads from the interconnect thread while the CPU thread changes it.

The CPU thread allocates, frees and moves pages with no lock the reader could take
without perturbing it (node.server.NodeServicer.Snapshot), so each read must copy its structure whole.
Before that, iterating the held-page map while it changed size raised RuntimeError, which
the hostile-input fuzzer saw once in ~10,000 requests as a Snapshot answered UNKNOWN.
Switching threads every microsecond makes the race near certain here.
"""

import sys
import threading

import pytest

from node.alloc import PageAllocator
from node.mm.constants import MIGRATE_MOVABLE, NR_LOWORDER_PCP_LISTS
from node.mm.pcp import PerCpuPages


@pytest.fixture
def fast_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def read_while_changing(read, change, reads=300) -> list:
    """`reads` calls of read() while another thread calls change(0), change(1), ... throughout."""
    stop, changes, errors = threading.Event(), [0], []

    def run():
        try:
            while not stop.is_set():
                change(changes[0])
                changes[0] += 1
        except Exception as err:  # surfaces in the test, not as a warning
            errors.append(err)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        out = [read() for _ in range(reads)]
    finally:
        stop.set()
        t.join(5.0)
    assert not errors and changes[0] > 0, (errors, changes)  # the other thread did run meanwhile
    return out


def test_held_pages_read_while_the_cpu_allocates_and_frees(fast_switching):
    alloc = PageAllocator(cpu=None, pcp=None, zone=None, coordinator_stub=None)
    alloc.allocated.update({pfn: (0, MIGRATE_MOVABLE) for pfn in range(5000)})

    def change(i):  # one page leaves, another arrives: the map changes size each time
        del alloc.allocated[i]
        alloc.allocated[5000 + i] = (0, MIGRATE_MOVABLE)

    for pages in read_while_changing(alloc.pages, change):
        assert all(order == 0 and mt == MIGRATE_MOVABLE for _, order, mt in pages)


def test_pcp_lists_read_while_the_cpu_moves_pages(fast_switching):
    pcp = PerCpuPages(0, high=10_000, batch=63)
    thp = NR_LOWORDER_PCP_LISTS
    for pfn in range(0, 4000 * 512, 512):  # THPs: their migratetype lives in a map beside the list
        pcp.lists[thp].append(pfn)
        pcp.thp_migratetype[pfn] = MIGRATE_MOVABLE
    pcp.lists[0].extend(range(10**7, 10**7 + 4000))

    def change(i):
        pfn = pcp.lists[thp].popleft()
        del pcp.thp_migratetype[pfn]
        pcp.lists[thp].append(pfn)
        pcp.thp_migratetype[pfn] = MIGRATE_MOVABLE
        pcp.lists[0].append(pcp.lists[0].popleft())

    for pages in read_while_changing(pcp.pages, change):
        assert len({pfn for pfn, _, _ in pages}) == len(pages)  # each list copied whole: no page twice
        # Each of the three copies (list 0, the THP list, the THP map) may miss the page it caught
        # mid-move, and only that one.
        assert 8000 - 3 <= len(pages) <= 8000
