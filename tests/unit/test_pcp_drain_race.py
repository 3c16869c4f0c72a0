"""The pcp->count race of 66eca1021a42 ("mm/page_alloc: fix pcp->count race between drain_pages_zone() vs
__rmqueue_pcplist()", Li Zhijian, v6.11; Fixes: 4b23a68f9536, v6.0), replayed on the pure model.

The interleaving from the commit message: CPU1 holds its pcp lock inside __rmqueue_pcplist, rmqueue_bulk
has put pages on the empty list, and pcp->count is not yet raised; CPU0, in zone_pcp_disable (high 0,
batch 1, then __drain_all_pages(zone, true)), runs drain_pages_zone for CPU1. A drain that reads
pcp->count before taking the lock sees 0 and skips CPU1; CPU1 then counts its pages and unlocks, and
they stay on a list that offline_pages waits, forever, to see empty. The fixed drain reads count under
the lock, so it waits for CPU1 and drains the pages.
"""

import pytest

from node.mm import bugs
from node.mm import profile as profiles


@pytest.mark.parametrize("kernel", ["6.1", "6.2", "6.6", "6.12-count-race"])
def test_a_drain_reading_count_unlocked_leaves_the_refill_on_the_list(kernel):
    """Kernels without 66eca1021a42 (6.1 to 6.6; 6.12-count-race as v6.10 was): the drain skips the CPU and
    63 pages stay on its lists after zone_pcp_disable, so offline_pages would wait forever."""
    out = bugs.count_race(profiles.get(kernel))
    assert out.facts == {"drained": 0, "left_on_lists": 63}
    assert out.findings and "offline_pages would hang" in out.findings[0]


def test_the_fix_reads_count_under_the_lock_and_drains_the_refill():
    """6.12 (66eca1021a42): the drain waits for CPU1's lock, then sees and frees all 63 pages, in chunks of
    batch << 5 = 32 pages (zone_pcp_disable set batch 1)."""
    out = bugs.count_race(profiles.get("6.12"))
    assert out.facts == {"drained": 63, "left_on_lists": 0}
    assert out.findings == []
