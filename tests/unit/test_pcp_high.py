"""pcp->high auto-tuning (v6.7 to v6.12) and the chunked drains, as worked sequences.

Each expected sequence was worked by hand from the kernel functions named in its test (mm/page_alloc.c
as Huang Ying's series left it for v6.7, unchanged in v6.12; node.mm.pcp_high cites the commits), on
a 1 GiB zone shared by 4 CPUs: batch 63, high_min 321 (low watermark 1286 / 4), high_max 8192
(262144 pages / 8 / 4).
"""

import pathlib
import re

import pytest

from node.mm import pcp_high
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.drain_chunked import drain_pages_zone_chunked, drain_pages_zone_count_locked
from node.mm.lock import UnsharedPcpLock, spin_trylock
from node.mm.pcp import PerCpuPages, decay_pcp_high, drain_pages_zone, pageset_update, rmqueue
from node.mm.pcp_free import free_unref_page
from node.mm.zone import Zone
from node.shared.timebase import CostModel

BATCH, HIGH_MIN, HIGH_MAX = 63, 321, 8192


def zone_1g():
    return Zone(0, 262144, 4)


def tuned_pcp(zone):
    pcp = PerCpuPages(0, high=HIGH_MIN, batch=BATCH)
    pcp.auto_high = True
    pageset_update(pcp, zone.zone_highsize(BATCH, 4), pcp_high.high_max(zone.managed_pages, BATCH, 4), BATCH)
    return pcp


def fill(zone, pcp, n):
    """n order-0 movable pages on the pcp's list, as refills leave them (no flush on the way)."""
    pcp.lists[MIGRATE_MOVABLE].extend(zone.rmqueue_buddy(0, MIGRATE_MOVABLE) for _ in range(n))
    pcp.count += n


def test_the_zone_gives_the_documented_high_min_and_high_max():
    """zone_highsize from the low watermark gives high_min, and with MIN_PERCPU_PAGELIST_HIGH_FRACTION high_max."""
    zone = zone_1g()
    assert zone.zone_highsize(BATCH, 4) == HIGH_MIN
    assert pcp_high.high_max(zone.managed_pages, BATCH, 4) == HIGH_MAX
    assert pcp_high.pageset_high_max(0, zone.managed_pages, 1, 4) == 0  # zone_pcp_disable: 0, 0, 1
    assert pcp_high.pageset_high_max(HIGH_MIN, 0, BATCH, 4) == HIGH_MIN  # zone size unknown: no tuning


def test_each_refill_raises_high_by_the_scaled_batch_until_high_max():
    """nr_pcp_alloc: order-0 allocations without frees double the refill (alloc_factor, capped at
    CONFIG_PCP_BATCH_SCALE_MAX 5: 63 << 5 = 2016) and raise high by it first, up to high_max."""
    zone = zone_1g()
    pcp = tuned_pcp(zone)
    refills = []
    for _ in range(9000):
        before = pcp.stats.refills
        assert rmqueue(zone, pcp, 0, MIGRATE_MOVABLE) is not None
        if pcp.stats.refills != before:
            refills.append((pcp.high, pcp.alloc_factor, pcp.count + 1))  # +1: the page just taken
    assert refills == [
        (384, 1, 63),
        (510, 2, 126),
        (762, 3, 252),
        (1266, 4, 504),
        (2274, 5, 1008),
        (4290, 5, 2016),
        (6306, 5, 2016),
        (8192, 5, 2016),
        (8192, 5, 2016),
    ]


def test_no_growth_while_the_zone_is_short_of_memory():
    """nr_pcp_alloc: below the high watermark (ZONE_BELOW_HIGH) high stays."""
    zone = zone_1g()
    pcp = tuned_pcp(zone)
    zone.below_high = True
    rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)
    assert (pcp.high, pcp.count) == (HIGH_MIN, 62)


def test_a_flush_of_the_free_path_clears_zone_below_high_and_growth_resumes_but_a_drain_clears_nothing():
    """ZONE_BELOW_HIGH in the pcp paths: set by the zone (Zone.check_below_high, at an allocation that finds
    it under high), it stops nr_pcp_alloc's growth; a drain's free_pcppages_bulk leaves it set, and the
    flush of free_unref_page_commit clears it once the high watermark is met, after which a refill grows
    high again."""
    zone = zone_1g()
    pcp = tuned_pcp(zone)
    hoard = [zone.rmqueue_buddy(0, MIGRATE_MOVABLE) for _ in range(zone.free_pages - zone.watermark["high"])]
    assert not zone.below_high  # each of those tested before it took its page
    rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)  # a refill finds the zone at its high watermark: sets the flag
    # That refill still grew high: its CPU hears of the flag with the refill's reply (node.mm.zone).
    assert zone.below_high and pcp.high == HIGH_MIN + BATCH
    for pfn in hoard[:200]:
        zone.free_one_page(pfn, 0, MIGRATE_MOVABLE)  # the rest of the system frees: above high again
    drain_pages_zone(zone, pcp)
    assert zone.below_high and pcp.count == 0  # a drain's free clears nothing
    held = [rmqueue(zone, pcp, 0, MIGRATE_MOVABLE) for _ in range(HIGH_MIN)]
    assert pcp.stats.refills > 2 and pcp.high == HIGH_MIN + BATCH  # the refills on the way did not grow it
    for pfn in held:
        free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE)
    assert pcp.stats.freed_high_pages and not zone.below_high  # the commit's flush cleared it
    drain_pages_zone(zone, pcp)
    high = pcp.high
    rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)
    assert pcp.high > high  # growth resumed


def test_consecutive_frees_flush_free_count_pages_and_raise_high_to_hold_them():
    """free_unref_page_commit + nr_pcp_high + nr_pcp_free: free_count counts the run of frees (capped at
    2016); a flush frees clamp(free_count, batch, high - batch) and first raises high to free_count + batch."""
    zone = zone_1g()
    pcp = tuned_pcp(zone)
    held = [zone.rmqueue_buddy(0, MIGRATE_MOVABLE) for _ in range(4600)]
    flushes = []
    for i, pfn in enumerate(held, 1):
        before = pcp.stats.freed_high_pages
        assert free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE) == "pcp"
        if pcp.stats.freed_high_pages != before:
            flushes.append((i, pcp.stats.freed_high_pages - before, pcp.high, pcp.count))
    assert flushes == [
        (321, 258, 384, 63),
        (642, 321, 705, 63),
        (1284, 642, 1347, 63),
        (2568, 1284, 2079, 63),
        (4584, 2016, 2079, 63),
    ]
    assert pcp.free_count == 2016
    rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)  # rmqueue_pcplist: free_count >>= 1
    assert pcp.free_count == 1008


def test_reclaim_shrinks_high_on_every_free_and_caps_the_flush_threshold():
    """nr_pcp_high under ZONE_RECLAIM_ACTIVE: high -= max(free_count, batch) (not below high_min) and the
    flush threshold is min(batch << 2, high)."""
    zone = zone_1g()
    pcp = tuned_pcp(zone)
    pcp.high = 2079
    fill(zone, pcp, 200)
    zone.reclaim_active = True
    free_unref_page(zone, pcp, zone.rmqueue_buddy(0, MIGRATE_MOVABLE), 0, MIGRATE_MOVABLE)
    # free_count 1 -> high 2079 - 63 = 2016; count 201 >= 252? no: nothing freed.
    assert (pcp.high, pcp.count) == (2016, 201)
    fill(zone, pcp, 51)
    free_unref_page(zone, pcp, zone.rmqueue_buddy(0, MIGRATE_MOVABLE), 0, MIGRATE_MOVABLE)
    # high 2016 - 63 = 1953; count 253 >= 252: nr_pcp_free(batch 63, high 252) = clamp(2, 63, 189) = 63.
    assert (pcp.high, pcp.count) == (1953, 190)


def test_vmstat_decays_high_by_an_eighth_and_frees_what_is_above_it():
    """decay_pcp_high: high = max3(count - (batch << 5), high - high / 8, high_min), then free count - high.
    From high_max with 5000 pages held, 25 vmstat periods (25 s) bring high down to high_min; the 26th
    finds nothing to do, and vmstat_update stops re-arming."""
    zone = zone_1g()
    pcp = tuned_pcp(zone)
    pcp.high = HIGH_MAX
    fill(zone, pcp, 5000)
    steps = []
    todo = True
    while todo:
        todo = decay_pcp_high(zone, pcp)
        steps.append((pcp.high, pcp.count))
    assert steps[:6] == [(7168, 5000), (6272, 5000), (5488, 5000), (4802, 4802), (4202, 4202), (3677, 3677)]
    assert steps[-2:] == [(HIGH_MIN, HIGH_MIN), (HIGH_MIN, HIGH_MIN)]
    assert len(steps) == 26


def test_without_vmstat_work_an_isolated_cpu_keeps_its_pages_for_the_next_drain():
    """vmstat_shepherd skips isolated CPUs (v6.5): their high never decays, so the pages a burst left stay
    until a drain takes them all; a housekeeping CPU's decay has freed all but high_min by then."""
    zone = zone_1g()
    isolated, housekeeping = tuned_pcp(zone), tuned_pcp(zone)
    for pcp in (isolated, housekeeping):
        pcp.high = HIGH_MAX
        fill(zone, pcp, 5000)
    for _ in range(60):  # one minute of vmstat_update on the housekeeping CPU only
        decay_pcp_high(zone, housekeeping)
    assert (isolated.high, isolated.count) == (HIGH_MAX, 5000)
    assert (housekeeping.high, housekeeping.count) == (HIGH_MIN, HIGH_MIN)
    assert drain_pages_zone_count_locked(zone, isolated) == 5000
    assert drain_pages_zone_count_locked(zone, housekeeping) == HIGH_MIN


class FreeRecorder:
    """The zone as the drain calls it, noting the pages of each free_pcppages_bulk: one zone->lock hold
    each, which the zone rules charge CostModel.zone_hold_us of that many (node.mm.zone_rules)."""

    def __init__(self, zone):
        self.zone = zone
        self.holds: list[int] = []

    def __getattr__(self, name):
        return getattr(self.zone, name)

    def free_pcppages_bulk(self, pages, commit=False):
        pages = list(pages)
        self.holds.append(len(pages))
        self.zone.free_pcppages_bulk(pages, commit)


KERNEL_PROFILES_MD = pathlib.Path(__file__).resolve().parents[2] / "docs" / "kernel-profiles.md"


@pytest.mark.parametrize("pages", [5000, HIGH_MIN, HIGH_MAX])
def test_the_documented_cost_of_draining_a_cpu_is_the_cost_model_s(pages):
    """docs/kernel-profiles.md prices the drain of what an isolated CPU kept (6.12's chunks); those figures
    went stale once, when the cost model was calibrated, so here they are recomputed from the model."""
    doc = KERNEL_PROFILES_MD.read_text()
    costs = CostModel()
    prices = f"{costs.zone_lock_us} µs of zone->lock for each\n`free_pcppages_bulk` call plus {costs.buddy_page_us} µs"
    assert prices in doc
    line = re.search(rf"^- {pages:,} pages.*$", doc, re.MULTILINE)
    assert line, f"docs/kernel-profiles.md prices no drain of {pages:,} pages"
    chunks, kernel_us = re.search(r"(\d+) chunks?, ([\d.]+) µs", line.group()).groups()
    zone = FreeRecorder(zone_1g())
    pcp = tuned_pcp(zone.zone)
    pcp.high = HIGH_MAX
    fill(zone.zone, pcp, pages)
    assert drain_pages_zone_count_locked(zone, pcp) == pages
    assert len(zone.holds) == int(chunks)
    assert f"{sum(costs.zone_hold_us(n) for n in zone.holds):.1f}" == kernel_us


class RecordingLock(UnsharedPcpLock):
    """pcp->lock that notes, at each release, whether pages are left: a window in which the CPU's own
    trylock succeeds while the drain is not over."""

    def __init__(self, pcp_ref):
        super().__init__()
        self.pcp_ref = pcp_ref
        self.windows = 0
        self.acquires = 0

    def get_nowait(self):  # every acquisition, a blocking one too (UnsharedPcpLock.get)
        got = super().get_nowait()
        self.acquires += 1
        return got

    def put(self, item, /):
        super().put(item)
        if self.pcp_ref[0].count and spin_trylock(self):  # the CPU's trylock, between two chunks
            self.windows += 1
            super().put(item)


@pytest.mark.parametrize(
    ("drain", "holds", "windows"),
    [(drain_pages_zone, 1, 0), (drain_pages_zone_chunked, 3, 2), (drain_pages_zone_count_locked, 3, 2)],
)
def test_a_chunked_drain_drops_the_lock_between_chunks_of_batch_shl_5(drain, holds, windows):
    """drain_pages_zone: v6.1 frees 5000 pages under one hold; 55f77df7d715 (and the fix after it) in
    chunks of 63 << 5 = 2016 (2016, 2016, 968), between which the CPU's trylock succeeds twice."""
    zone = zone_1g()
    ref = [None]
    lock = RecordingLock(ref)
    pcp = PerCpuPages(0, high=HIGH_MIN, batch=BATCH, lock=lock)
    ref[0] = pcp
    fill(zone, pcp, 5000)
    assert drain(zone, pcp) == 5000
    assert (lock.acquires - lock.windows, lock.windows, pcp.count) == (holds, windows, 0)


@pytest.mark.parametrize(("kernel", "first_flush"), [("6.2", 63), ("6.6", 63), ("6.12", 258)])
def test_only_the_6_12_profile_tunes_and_its_batched_free_does_too(kernel, first_flush):
    """6.6 predates the series: its batched free flushes batch (v6.1 nr_pcp_free, free_factor 0) when count
    reaches high 321; 6.12's frees clamp(free_count 321, 63, 258) and raises high to 384."""
    from node.mm import profile as profiles

    zone = zone_1g()
    profile = profiles.get(kernel)
    pcp = PerCpuPages(0, high=HIGH_MIN, batch=BATCH)
    pcp.auto_high = profile.pcp_high_auto
    pageset_update(pcp, HIGH_MIN, HIGH_MAX, BATCH)
    pages = [(zone.rmqueue_buddy(0, MIGRATE_MOVABLE), 0, MIGRATE_MOVABLE) for _ in range(HIGH_MIN)]
    profiles.pcp_ops(profile).free_unref_page_list(zone, pcp, pages)
    assert pcp.stats.freed_high_pages == first_flush
    assert pcp.high == (384 if profile.pcp_high_auto else HIGH_MIN)


@pytest.mark.parametrize(
    ("kernel", "role", "sources"),
    [
        ("6.12", "housekeeping", ["Housekeeping", "IrqSource", "VmstatRefresh"]),
        ("6.12", "isolated-preemptible", ["LatencyTask"]),
        ("6.6", "housekeeping", ["Housekeeping", "IrqSource"]),
    ],
)
def test_vmstat_update_runs_on_housekeeping_cpus_of_an_auto_tuning_kernel_only(kernel, role, sources):
    """node.runtime: 6.12 decays high from vmstat_update, which vmstat_shepherd queues on housekeeping
    CPUs only (be5e015d107d, v6.5); 6.6 has no auto-tuning, so its vmstat work has no pcp effect."""
    import time

    from node.runtime import NodeRuntime, TaskConfig
    from node.shared.timebase import CostModel

    zone = zone_1g()
    rt = NodeRuntime(
        0, role, HIGH_MIN, BATCH, zone, None, 1, CostModel(), TaskConfig.for_role("isolated-preemptible"),
        time.monotonic, kernel=kernel, high_max=pcp_high.high_max(zone.managed_pages, BATCH, 4),
    )  # fmt: skip
    assert [type(s).__name__ for s in rt.cpu.sources] == sources
    assert (rt.pcp.high_min, rt.pcp.high_max) == ((HIGH_MIN, HIGH_MAX) if kernel == "6.12" else (HIGH_MIN, HIGH_MIN))


@pytest.mark.parametrize(("slice_pages", "kept"), [(240, True), (189, False)])
def test_a_large_data_cache_slice_keeps_a_batch_through_a_run_of_high_order_frees(slice_pages, kept):
    """PCPF_FREE_HIGH_BATCH (362d37a106dd, set by zone_pcp_update_cacheinfo, 94a3bfe4073c): a run of
    order-1 frees turns free_high on once free_count reaches a batch (the 33rd free: 64 base pages).
    Without the flag every free from then on flushes the lists; with it (a slice over 3 * 63 = 189
    pages: Sapphire Rapids' 960 KiB is 240) a flush waits until a batch is on them again, so a batch
    of cache-hot pages stays between flushes."""
    zone = zone_1g()
    pcp = tuned_pcp(zone)
    pcp_high.zone_pcp_update_cacheinfo(pcp, slice_pages)
    assert bool(pcp.flags & pcp_high.PCPF_FREE_HIGH_BATCH) == kept
    counts = []
    for pfn in [zone.rmqueue_buddy(1, MIGRATE_MOVABLE) for _ in range(100)]:
        free_unref_page(zone, pcp, pfn, 1, MIGRATE_MOVABLE)
        counts.append(pcp.count)
    assert counts[:32] == list(range(2, 66, 2))  # free_count under a batch: no free_high yet
    assert counts[32:] == ((list(range(0, 64, 2)) * 3)[:68] if kept else [0] * 68)


@pytest.mark.parametrize(
    ("kernel", "data_slice_kib", "flag"), [("6.12", 960.0, True), ("6.12", 756.0, False), ("6.1", 960.0, False)]
)
def test_a_node_sets_free_high_batch_from_its_cost_models_data_slice_when_its_cpu_comes_online(
    kernel, data_slice_kib, flag
):
    """node.runtime runs zone_pcp_update_cacheinfo when it sets up a v6.7+ pcp (setup_pcp_cacheinfo at CPU
    online), with the cost model's data_slice_kib: the default (Sapphire Rapids, 240 pages) sets it; 756 KiB
    (189 pages, not over 3 * 63) does not; 6.1 has no such flag. The virtual CPUs do the same."""
    import time

    from node.runtime import NodeRuntime, TaskConfig
    from node.shared.timebase import CostModel
    from node.virtual.run import Options, VirtualCluster

    cost = CostModel(data_slice_kib=data_slice_kib)
    zone = zone_1g()
    rt = NodeRuntime(
        0, "housekeeping", HIGH_MIN, BATCH, zone, None, 1, cost, TaskConfig.for_role("housekeeping"),
        time.monotonic, kernel=kernel, high_max=pcp_high.high_max(zone.managed_pages, BATCH, 4),
    )  # fmt: skip
    assert bool(rt.pcp.flags & pcp_high.PCPF_FREE_HIGH_BATCH) == flag
    if data_slice_kib == CostModel().data_slice_kib:
        cluster = VirtualCluster(("housekeeping", "idle"), 1, options=Options(kernel=kernel))
        assert [bool(p.flags & pcp_high.PCPF_FREE_HIGH_BATCH) for p in cluster.pcps] == [flag, flag]
        cluster.close()
