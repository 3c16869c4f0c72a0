"""drain_pages_zone in chunks (v6.10 and v6.11): the kworker's and zone_pcp_disable's drain of one CPU's
pcp, split so that the pcp lock is dropped between chunks of batch << CONFIG_PCP_BATCH_SCALE_MAX pages.
node.mm.pcp keeps the one-hold drain of v6.0 to v6.9; node.mm.profile picks one per kernel."""

from . import pcp_high
from .lock import spin_locked
from .pcp import PerCpuPages, ZoneOps, drain_chunk


def drain_pages_zone_chunked(zone: ZoneOps, pcp: PerCpuPages) -> int:
    """55f77df7d715 "mm: page_alloc: control latency caused by zone PCP draining" (Lucas Stach, v6.10):
    chunks of batch << CONFIG_PCP_BATCH_SCALE_MAX, the lock dropped between them, so the CPU's own
    trylock can win between two chunks. pcp->count is still read once, before any lock: the race
    stays (and a refill between chunks is not drained)."""
    count = pcp.count
    n = 0
    while count:
        to_drain = min(count, pcp.batch << pcp_high.PCP_BATCH_SCALE_MAX)
        count -= to_drain
        with spin_locked(pcp.lock):
            n += drain_chunk(zone, pcp, to_drain)
    if n:
        pcp.stats.drains += 1
    return n


def drain_pages_zone_count_locked(zone: ZoneOps, pcp: PerCpuPages) -> int:
    """66eca1021a42 "mm/page_alloc: fix pcp->count race between drain_pages_zone() vs
    __rmqueue_pcplist()" (Li Zhijian, v6.11; Fixes: 4b23a68f9536 "mm/page_alloc: protect PCP lists with
    a spinlock", v6.0): the chunked drain reads pcp->count under the lock, each chunk, until it is 0,
    so zone_pcp_disable leaves no page behind and offline_pages no longer hangs."""
    n = 0
    while True:
        with spin_locked(pcp.lock):
            count = pcp.count
            if count:
                to_drain = min(count, pcp.batch << pcp_high.PCP_BATCH_SCALE_MAX)
                n += drain_chunk(zone, pcp, to_drain)
                count -= to_drain
        if not count:
            break
    if n:
        pcp.stats.drains += 1
    return n
