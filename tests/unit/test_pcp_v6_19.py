"""The 6.19 profile: Joshua Hahn's batching series on top of 6.12's auto-tuning (node.mm.pcp_free.free_high_flush
and decay_pcp_high, docs/kernel-facts.md section 7), and Nikhil Dhama's free_high threshold (section 18).
The sequences are those of test_pcp_high (1 GiB zone, 4 CPUs, batch 63, high_min 321, high_max 8192),
with each zone->lock hold counted: v6.19 changes how the same pages reach the buddy, not how many."""

import pytest

from node.mm import pcp as pcpmod
from node.mm import pcp_free, pcp_high
from node.mm import profile as profiles
from node.mm.bugs import ZoneLockHolds
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.lock import spin_is_locked
from tests.unit.test_bug_replays import LockTakenAfterFirstRelease
from tests.unit.test_pcp_high import BATCH, HIGH_MAX, HIGH_MIN, fill, tuned_pcp, zone_1g


def batched_pcp(zone, batched):
    pcp = tuned_pcp(zone)
    pcp.free_high_batched = pcp.decay_pcp_high_batched = batched
    return pcp


def test_6_19_is_6_12_with_the_batching_series_and_the_raised_free_high_threshold():
    assert profiles.get("6.19") == profiles.replace(
        profiles.get("6.12"),
        name="6.19",
        free_high_batched=True,
        decay_pcp_high_batched=True,
        free_high_half_high_min=True,
    )
    assert "6.19" in profiles.LIVE


@pytest.mark.parametrize(("kernel", "kept"), [("6.12", 32), ("6.19", 112)])
def test_a_run_of_high_order_frees_flushes_from_batch_or_from_batch_plus_half_high_min(kernel, kept):
    """free_frozen_page_commit's free_high: a run of order-1 frees (no allocation between them, each adding
    2 to free_count) starts flushing everything once free_count, read before the page counts, reaches
    batch (v6.7 to v6.12: 64, the 33rd free) or batch + high_min / 2 = 63 + 160 = 223 (6.19.y, Dhama's
    threshold: 224, the 113th free). The data cache slice (189 pages) leaves PCPF_FREE_HIGH_BATCH off, so
    every free of the run flushes from then on. The pcp is set up as the profile sets up a node's."""
    zone = zone_1g()
    pcp = pcpmod.PerCpuPages(0, high=HIGH_MIN, batch=BATCH)
    pcpmod.pageset_update(pcp, HIGH_MIN, HIGH_MAX, BATCH)
    profiles.set_up_pcp(pcp, profiles.get(kernel), 189)
    assert pcp.free_high_half_high_min == (kernel == "6.19") and not pcp.flags & pcp_high.PCPF_FREE_HIGH_BATCH
    counts = []
    for pfn in [zone.rmqueue_buddy(1, MIGRATE_MOVABLE) for _ in range(150)]:
        pcp_free.free_unref_page(zone, pcp, pfn, 1, MIGRATE_MOVABLE)
        counts.append(pcp.count)
    assert counts[:kept] == list(range(2, 2 * kept + 2, 2))  # under the threshold: every page kept
    assert counts[kept:] == [0] * (150 - kept)  # free_high: each free flushes the lists


def one_below_high_with_a_drainer_waiting():
    """A 6.19 pcp one page below high after a run of frees, whose lock a drainer takes the first time the
    flush drops it: the next free flushes clamp(201, 63, 258) = 201 pages, 63 at a time."""
    zone = zone_1g()
    lock = LockTakenAfterFirstRelease()
    pcp = pcpmod.PerCpuPages(0, high=HIGH_MIN, batch=BATCH, lock=lock)
    pcp.auto_high = pcp.free_high_batched = True
    pcpmod.pageset_update(pcp, HIGH_MIN, HIGH_MAX, BATCH)
    fill(zone, pcp, HIGH_MIN - 1)
    pcp.free_count = 200
    lock.armed = True
    return zone, lock, pcp


@pytest.mark.parametrize(("batched", "holds"), [(False, [258]), (True, [63, 63, 63, 63, 6])])
def test_the_first_flush_of_a_run_of_frees_is_one_hold_or_batch_sized_chunks(batched, holds):
    """free_frozen_page_commit: the 321st free flushes nr_pcp_free() = clamp(321, 63, 258) = 258 pages
    (as in 6.12); v6.19 frees them min(to_free, batch) at a time, retaking the pcp lock between chunks."""
    zone = zone_1g()
    spy = ZoneLockHolds(zone)
    pcp = batched_pcp(zone, batched)
    for _ in range(HIGH_MIN):
        assert pcp_free.free_unref_page(spy, pcp, zone.rmqueue_buddy(0, MIGRATE_MOVABLE), 0, MIGRATE_MOVABLE) == "pcp"
    assert spy.holds == holds
    assert (pcp.high, pcp.count, pcp.stats.freed_high_pages) == (384, 63, 258)
    assert not spin_is_locked(pcp.lock)


def test_a_free_whose_flush_loses_the_lock_returns_without_unlocking():
    """`if (!free_frozen_page_commit(...)) return;` in __free_frozen_pages: the drainer that took the lock
    between two chunks keeps it, and the rest stays on the pcp, above high."""
    zone, lock, pcp = one_below_high_with_a_drainer_waiting()
    assert pcp_free.free_unref_page(zone, pcp, zone.rmqueue_buddy(0, MIGRATE_MOVABLE), 0, MIGRATE_MOVABLE) == "pcp"
    assert lock.released == 1 and not spin_is_locked(lock)  # released once, between the chunks, not again
    assert (pcp.count, pcp.stats.freed_high_pages) == (HIGH_MIN - BATCH, BATCH)  # 138 above high stay


def test_a_batched_free_trylocks_again_after_its_flush_lost_the_lock():
    """free_unref_folios (v6.19): a commit that returns false sets pcp = NULL and locked_zone = NULL, so the
    next page trylocks; here the lock is gone for good and the rest goes to the buddy page by page."""
    zone, lock, pcp = one_below_high_with_a_drainer_waiting()
    pages = [(zone.rmqueue_buddy(0, MIGRATE_MOVABLE), 0, MIGRATE_MOVABLE) for _ in range(4)]
    done = []
    profiles.pcp_ops(profiles.get("6.19")).free_unref_page_list(zone, pcp, pages, done)
    assert sorted(done) == sorted(p for p, _, _ in pages) and not spin_is_locked(lock)
    assert (pcp.stats.trylock_fail_free, pcp.stats.buddy_fallback_free) == (3, 3)
    assert pcp.count == HIGH_MIN - BATCH


@pytest.mark.parametrize(("batched", "holds"), [(False, [198]), (True, [63, 63, 63, 9])])
def test_vmstat_decay_frees_in_batch_chunks(batched, holds):
    """decay_pcp_high, fc4b909c368f: the same high and count sequence as 6.12 (test_pcp_high), but the
    fourth period's 5000 - 4802 = 198 pages leave in chunks of batch, each under its own lock hold."""
    zone = zone_1g()
    spy = ZoneLockHolds(zone)
    pcp = batched_pcp(zone, batched)
    pcp.high = HIGH_MAX
    fill(zone, pcp, 5000)
    steps = []
    for _ in range(4):
        pcpmod.decay_pcp_high(spy, pcp)
        steps.append((pcp.high, pcp.count))
    assert steps == [(7168, 5000), (6272, 5000), (5488, 5000), (4802, 4802)]
    assert spy.holds == holds


@pytest.mark.parametrize(
    ("kernel", "decay_holds", "flush_holds"),
    [("6.12", [198], [258]), ("6.12.y", [63, 63, 63, 9], [258]), ("6.19", [63, 63, 63, 9], [63, 63, 63, 63, 6])],
)
def test_each_kernel_batches_what_it_took_of_the_series(kernel, decay_holds, flush_holds):
    """The two sequences above on pcps set up as each profile sets up a node's: 6.12.67 took Hahn's
    decay_pcp_high batching (2/3) as a dependency of 038a102535eb but not the free path's (3/3), so its
    vmstat decay frees in chunks of batch and its flush in one zone->lock hold."""
    decay_zone, flush_zone = zone_1g(), zone_1g()
    decay_spy, flush_spy = ZoneLockHolds(decay_zone), ZoneLockHolds(flush_zone)
    decay_pcp, flush_pcp = tuned_pcp(decay_zone), tuned_pcp(flush_zone)
    for pcp in (decay_pcp, flush_pcp):
        profiles.set_up_pcp(pcp, profiles.get(kernel), 240)
    decay_pcp.high = HIGH_MAX
    fill(decay_zone, decay_pcp, 5000)
    for _ in range(4):
        pcpmod.decay_pcp_high(decay_spy, decay_pcp)
    for _ in range(HIGH_MIN):
        pcp_free.free_unref_page(flush_spy, flush_pcp, flush_zone.rmqueue_buddy(0, MIGRATE_MOVABLE), 0, MIGRATE_MOVABLE)
    assert (decay_spy.holds, flush_spy.holds) == (decay_holds, flush_holds)


def test_a_6_19_node_batches_its_flushes():
    import time

    from node.runtime import NodeRuntime, TaskConfig
    from node.shared.timebase import CostModel

    zone = zone_1g()
    rt = NodeRuntime(
        0, "housekeeping", HIGH_MIN, BATCH, zone, None, 1, CostModel(), TaskConfig.for_role("housekeeping"),
        time.monotonic, kernel="6.19", high_max=pcp_high.high_max(zone.managed_pages, BATCH, 4),
    )  # fmt: skip
    assert rt.pcp.auto_high and rt.pcp.free_high_batched and rt.pcp.decay_pcp_high_batched
    assert rt.pcp.free_high_half_high_min
