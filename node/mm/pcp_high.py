"""pcp->high auto-tuning, as in mm/page_alloc.c from v6.7 to v6.12 (Huang Ying's "mm, pcp" series).

The arithmetic only: which ``high`` a CPU's pcp flushes at, how many pages a refill asks for and how
many a flush frees. pcp.py calls it from its fast paths when ``PerCpuPages.auto_high`` is set (the
kernel profile says the CPU runs v6.7 or later), and does the list work itself.

Series (thread 20231016053002.756205-1-ying.huang@intel.com, merged for v6.7; v6.6 predates it:
its patches' "-" lines are v6.1's free_factor arithmetic, which pcp.py keeps for 6.6 and older):
- "mm, pcp: avoid to drain PCP when process exit": PCPF_PREV_FREE_HIGH_ORDER;
- "mm, pcp: reduce lock contention for draining high-order pages": PCPF_FREE_HIGH_BATCH;
- "mm: restrict the pcp batch scale factor to avoid too long latency": CONFIG_PCP_BATCH_SCALE_MAX
  (mm/Kconfig: default 5, range 0..6);
- "mm, page_alloc: scale the number of pages that are batch allocated": ``nr_pcp_alloc``, alloc_factor;
- "mm: add framework for PCP high auto-tuning": high_min (zone_highsize from the low watermark) and
  high_max (zone_highsize with MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8: managed pages / 8), both split
  over the CPUs sharing the zone; a manual percpu_pagelist_high_fraction sets both to one value;
- "mm: tune PCP high automatically" (51a755c56dc0): high grows by batch on every refill
  (``nr_pcp_alloc``), shrinks in ``decay_pcp_high`` (called from refresh_cpu_vm_stats, vmstat work);
- "mm, pcp: decrease PCP high if free pages < high watermark": ZONE_BELOW_HIGH stops the growth and
  shrinks high on frees;
- "mm, pcp: reduce detecting time of consecutive high order page freeing" (6ccdcb6d3a74): free_count
  replaces free_factor (an allocation halves it, a free adds the page's size up to batch << SCALE_MAX).

Later (docs/kernel-facts.md section 18, read in a stored 6.19.y mm/page_alloc.c): Nikhil Dhama's "mm: pcp:
increase pcp->free_count threshold to trigger free_high" (c544a952ba61, Fixes: 6ccdcb6d3a74; the MM pull
for v6.16-rc1) raises free_high's threshold from batch to batch + high_min / 2, which the profiles
from 6.19 set (``free_high_half_high_min``).

Deviations:
- ZONE_BELOW_HIGH is the caller's ``below_high``: the zone's flag (node.mm.zone.Zone.check_below_high,
  commit_flushed), as the last zone reply or heartbeat reported it to the node, as ZONE_RECLAIM_ACTIVE is.
- PCPF_FREE_HIGH_BATCH: ``zone_pcp_update_cacheinfo``, with the data cache slice the caller's (the cost
  model's ``data_slice_kib``: the machine's, not read from hardware), once when the pcp is set up, as
  the kernel runs it when the CPU comes online.
"""

from typing import Protocol

from .constants import PAGE_ALLOC_COSTLY_ORDER

PCP_BATCH_SCALE_MAX = 5  # CONFIG_PCP_BATCH_SCALE_MAX default
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8
PCPF_PREV_FREE_HIGH_ORDER = 1 << 0  # the last free was of a high order (0 < order <= COSTLY)
PCPF_FREE_HIGH_BATCH = 1 << 1  # keep a batch of high-order pages instead of flushing them all


class TunedPcp(Protocol):
    """The fields of pcp.PerCpuPages this module reads and writes (pcp.py imports this module)."""

    count: int
    high: int
    high_min: int
    high_max: int
    batch: int
    alloc_factor: int
    free_count: int
    flags: int
    free_high_half_high_min: bool


def zone_pcp_update_cacheinfo(pcp: TunedPcp, data_slice_pages: int) -> None:
    """zone_pcp_update_cacheinfo (94a3bfe4073c, v6.7), from setup_pcp_cacheinfo when a CPU comes online:
    keep a batch of pages through a run of high-order frees (free_high_order) if the CPU's data cache
    slice (cacheinfo's per_cpu_data_slice_size: the last-level cache over the CPUs sharing it, here in
    pages) holds more than 3 * batch. The changelog: "3 * batch" is chosen to make sure the
    optimization works on recent x86_64 server CPUs"."""
    if data_slice_pages > 3 * pcp.batch:
        pcp.flags |= PCPF_FREE_HIGH_BATCH
    else:
        pcp.flags &= ~PCPF_FREE_HIGH_BATCH


def clamp(val: int, lo: int, hi: int) -> int:
    """The kernel's clamp(): min(max(val, lo), hi), so hi wins when lo > hi."""
    return min(max(val, lo), hi)


def high_max(managed_pages: int, batch: int, nr_split_cpus: int) -> int:
    """zone_highsize(zone, batch, cpu_online, MIN_PERCPU_PAGELIST_HIGH_FRACTION): an eighth of the zone
    split over the CPUs sharing it, at least 4 * batch. (high_min is watermark.zone_highsize.)"""
    if nr_split_cpus < 1:
        raise ValueError(f"high_max needs at least one CPU, got nr_split_cpus={nr_split_cpus}")
    return max(managed_pages // MIN_PERCPU_PAGELIST_HIGH_FRACTION // nr_split_cpus, batch << 2)


def pageset_high_max(high_min: int, managed_pages: int, batch: int, nr_split_cpus: int) -> int:
    """zone_set_pageset_high_and_batch's high_max for a zone whose high_min is ``high_min``: 0 while the
    pcp is disabled (zone_pcp_disable sets both to 0, the boot pageset has both 0), and high_min when
    the zone's size is unknown (no auto-tuning, as with a manual percpu_pagelist_high_fraction)."""
    if not high_min or not managed_pages:
        return high_min
    return high_max(managed_pages, batch, nr_split_cpus)


def nr_pcp_alloc(pcp: TunedPcp, order: int, below_high: bool) -> int:
    """v6.7+ nr_pcp_alloc: pages a refill asks for; high grows by the (alloc_factor-scaled) batch first."""
    base_batch = pcp.batch
    high_min, high_max_ = pcp.high_min, pcp.high_max
    high = pcp.high = clamp(pcp.high, high_min, high_max_)
    if high < base_batch:
        return 1  # pcp disabled or boot pageset
    batch = base_batch if order else base_batch << pcp.alloc_factor
    # "If we had larger pcp->high, we could avoid to allocate from zone."
    if high_min != high_max_ and not below_high:
        high = pcp.high = min(high + batch, high_max_)
    if not order:
        max_nr_alloc = max(high - pcp.count - base_batch, base_batch)
        # Double the refill each time order-0 allocations follow one another without a free.
        if batch <= max_nr_alloc and pcp.alloc_factor < PCP_BATCH_SCALE_MAX:
            pcp.alloc_factor += 1
        batch = min(batch, max_nr_alloc)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


def free_high_order(pcp: TunedPcp, order: int, batch: int) -> bool:
    """free_unref_page_commit's free_high and PCPF_PREV_FREE_HIGH_ORDER update (v6.7+), before
    free_count counts this page: a run of high-order frees flushes them rather than keep them. The run
    must reach free_count >= batch (v6.7), or batch + high_min / 2 (Dhama's threshold: "to restore the
    original behavior" of the free_factor it replaced, which triggered between batch and high + batch)."""
    if order and order <= PAGE_ALLOC_COSTLY_ORDER:  # the THP order keeps its pages
        threshold = batch + pcp.high_min // 2 if pcp.free_high_half_high_min else batch
        free_high = (
            pcp.free_count >= threshold
            and bool(pcp.flags & PCPF_PREV_FREE_HIGH_ORDER)
            and (not pcp.flags & PCPF_FREE_HIGH_BATCH or pcp.count >= batch)
        )
        pcp.flags |= PCPF_PREV_FREE_HIGH_ORDER
        return free_high
    pcp.flags &= ~PCPF_PREV_FREE_HIGH_ORDER
    return False


def count_free(pcp: TunedPcp, order: int, batch: int) -> None:
    """free_count grows with each freed page, up to batch << CONFIG_PCP_BATCH_SCALE_MAX."""
    if pcp.free_count < batch << PCP_BATCH_SCALE_MAX:
        pcp.free_count += 1 << order


def nr_pcp_high(pcp: TunedPcp, batch: int, free_high: bool, reclaim_active: bool, below_high: bool) -> int:
    """v6.7+ nr_pcp_high: the count at which this free flushes; adjusts pcp.high on the way."""
    high_min, high_max_ = pcp.high_min, pcp.high_max
    high = pcp.high = clamp(pcp.high, high_min, high_max_)
    if not high:
        return 0
    if free_high:
        pcp.high = max(high - (batch << PCP_BATCH_SCALE_MAX), high_min)
        return 0
    # If reclaim is active, limit the number of pages that can be stored on pcp lists.
    if reclaim_active:
        pcp.high = max(high - max(pcp.free_count, batch), high_min)
        return min(batch << 2, pcp.high)
    if high_min == high_max_:
        return high  # tuned by hand (percpu_pagelist_high_fraction): no auto-tuning
    if below_high:
        pcp.high = max(high - max(pcp.free_count, batch), high_min)
        high = max(pcp.count, high_min)
    elif pcp.count >= high:
        need_high = pcp.free_count + batch
        # pcp->high should be large enough to hold batch freed pages.
        if pcp.high < need_high:
            pcp.high = clamp(need_high, high_min, high_max_)
    return high


def nr_pcp_free(pcp: TunedPcp, batch: int, high: int, free_high: bool) -> int:
    """v6.7+ nr_pcp_free: the consecutive frees (free_count) decide how much a flush frees."""
    if free_high:
        return min(pcp.count, batch << PCP_BATCH_SCALE_MAX)
    if high < batch:
        return 1  # pcp disabled or boot pageset
    # Leave at least batch pages on the lists.
    return clamp(pcp.free_count, batch, high - batch)


def decay_pcp_high(pcp: TunedPcp) -> tuple[int, bool]:
    """decay_pcp_high's arithmetic (v6.7 to v6.12): lower high by an eighth, by no more than what
    leaves batch << SCALE_MAX pages above it, not below high_min. Returns (pages to free, todo):
    todo says high is still above high_min, so vmstat_update keeps re-arming itself."""
    high_min, batch = pcp.high_min, pcp.batch
    todo = False
    if pcp.high > high_min:
        pcp.high = max(pcp.count - (batch << PCP_BATCH_SCALE_MAX), pcp.high - (pcp.high >> 3), high_min)
        todo = pcp.high > high_min
    to_drain = pcp.count - pcp.high
    return max(to_drain, 0), todo or to_drain > 0
