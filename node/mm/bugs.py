"""Replays of three pcp bugs found after the merge, each checked, on the pure model (docs/kernel-facts.md,
sections 5, 6 and 7). `pcpsim replay` runs them; tests/unit/test_bug_replays.py pins them.

Not kernel functions: each replay builds a zone and one CPU's pcp, runs the kernel's sequence of steps
at the point where the bug bites, and returns what its check found (nothing: the profile does not
have the bug).

- count_race: zone_pcp_disable's drain of a CPU mid-refill (66eca1021a42): a drain that reads pcp->count
  before taking pcp->lock skips the CPU, and the refill stays on its lists; memory offline then waits
  for them forever.
- up_trylock: drain_pages_zone (v6.2) on a CPU, interrupted by an IRQ that allocates a page. On a
  CONFIG_SMP=n kernel before 038a102535eb the drain's spin_lock(&pcp->lock) leaves IRQs on and the
  IRQ's pcp_spin_trylock() cannot fail (UpSpinlock), so the IRQ takes a page off the lists inside the
  drainer's critical section.
- bulk_free: the free path's flush of nr_pcp_free() pages, counting the base pages freed under each
  zone->lock hold (each free_pcppages_bulk's zone half is one hold). Before Hahn's batching series
  one hold frees them all; with it (`free_high_batched`), at most pcp->batch. The report's many CPUs
  queueing on zone->lock behind such holds are node.virtual.bulk_free_storm (`--cpus N`): that needs the
  virtual-time engine, not this single-CPU sequence.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from . import pcp as pcpmod
from . import pcp_free
from .audit import audit, check_pcp
from .constants import MIGRATE_MOVABLE, Page, order_to_pindex
from .lock import PcpLock, UnsharedPcpLock, spin_lock, spin_unlock
from .pcp import PerCpuPages, pageset_update
from .profile import KernelProfile, LocalIrq, UpSpinlock, pcp_ops
from .zone import Zone

# 63 << CONFIG_PCP_BATCH_SCALE_MAX (5): the most one flush frees with v6.7's auto-tuning, which is
# where the series' ">1000 pages" under one hold came from (docs/kernel-facts.md, sections 4 and 7).
BULK_FREE_PAGES = 63 << 5


@dataclass
class Replay:
    """A replay's outcome: `findings` empty when the check passed; `facts` are the numbers behind it."""

    profile: str
    findings: list[str] = field(default_factory=list)
    facts: dict[str, int | float | str] = field(default_factory=dict)


def _pcp_lock(profile: KernelProfile) -> PcpLock:
    return UnsharedPcpLock() if profile.smp else UpSpinlock()


def up_trylock(profile: KernelProfile, batch: int = 63) -> Replay:
    """v6.2 drain_pages_zone: `spin_lock(&pcp->lock); free_pcppages_bulk(zone, pcp->count, pcp, 0)`, and
    free_pcppages_bulk does `count = min(pcp->count, count)` before spin_lock_irqsave(&zone->lock)
    (574907741599). The IRQ is raised between the two, where IRQs are on unless the profile's section
    disables them (5.19/6.1 irqsave; 038a102535eb on UP). Its handler allocates a page (the reported
    one freed a page from an RCU callback: either meets the lock the same way).

    Checks: (1) no acquisition of pcp->lock while it was held (the debug build's "spinlock trylock
    failure on UP"); (2) the drain frees the `count` it read under the lock: the lists must not
    change under it. In the kernel a shorter list leaves free_pcppages_bulk's `while (count > 0)`
    searching empty lists past the end of pcp->lists (min_pindex climbs without bound); the model's
    walk stops at empty lists instead, so the replay compares the two numbers. (3) Every page is in
    exactly one place afterwards (audit) and the pcp's count matches its lists."""
    zone = Zone(0, 1 << 14, 1)
    lock = _pcp_lock(profile)
    pcp = PerCpuPages(0, high=batch * 6, batch=batch, lock=lock)
    held = [pcpmod.rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)]  # refills `batch` pages, keeps one
    irq = LocalIrq(profile, pcp)
    out = Replay(profile.name)
    facts = out.facts

    def irq_handler() -> None:
        facts["irq_in_drain"] = int(irq.in_section)
        held.append(pcpmod.rmqueue(zone, pcp, 0, MIGRATE_MOVABLE))

    def drain() -> None:
        count = facts["count_read"] = pcp.count
        irq.raise_irq(irq_handler)
        facts["freed"] = pcpmod.free_pcppages_bulk(zone, count, pcp, 0)

    irq.spin_lock_section(drain)
    facts["trylock_fail_alloc"] = pcp.stats.trylock_fail_alloc
    nested = lock.nested if isinstance(lock, UpSpinlock) else 0
    facts["nested_acquisitions"] = nested
    if nested:
        out.findings.append(
            f"pcp->lock taken {nested} time(s) while held: the IRQ's pcp_spin_trylock succeeded inside the "
            "drainer's spin_lock section (CONFIG_DEBUG_SPINLOCK: 'spinlock trylock failure on UP')"
        )
    if facts["freed"] != facts["count_read"]:
        out.findings.append(
            f"free_pcppages_bulk read count {facts['count_read']} under pcp->lock but the lists held "
            f"{facts['freed']}: the IRQ took pages off them under the drainer's feet, and v6.2's walk would "
            "search past the last pcp list for the rest"
        )
    if None in held:
        out.findings.append("an allocation failed")
    pages = [(pfn, 0) for pfn in held if pfn is not None]
    report = audit(zone, {"pcp": pcp.pages(), "held": pages})
    out.findings += report.errors + check_pcp(pcp)
    return out


class ZoneLockHolds:
    """The zone, recording the base pages each free_pcppages_bulk frees under its one zone->lock hold."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.holds: list[int] = []

    @property
    def reclaim_active(self) -> bool:
        return self.zone.reclaim_active

    @property
    def below_high(self) -> bool:
        return self.zone.below_high

    def rmqueue_bulk(self, order: int, count: int, migratetype: int) -> list[int]:
        return self.zone.rmqueue_bulk(order, count, migratetype)

    def rmqueue_buddy(self, order: int, migratetype: int) -> int | None:
        return self.zone.rmqueue_buddy(order, migratetype)

    def free_pcppages_bulk(self, pages: list[Page], commit: bool = False) -> None:
        self.zone.free_pcppages_bulk(pages, commit)
        self.holds.append(sum(1 << order for _, order, _ in pages))

    def free_one_page(self, pfn: int, order: int, migratetype: int) -> None:
        self.zone.free_one_page(pfn, order, migratetype)
        self.holds.append(1 << order)


def bulk_free(profile: KernelProfile, nr_pages: int = BULK_FREE_PAGES, batch: int = 63) -> Replay:
    """A pcp holding `nr_pages` order-0 MOVABLE pages and the free path's flush of all of them (as
    free_frozen_page_commit does once count >= high with nr_pcp_free() = nr_pages).

    Check: no zone->lock hold frees more than pcp->batch pages (the bound Hahn's series sets)."""
    if nr_pages < 1 or batch < 1:
        raise ValueError(f"nr_pages and batch must be >= 1, got {nr_pages} and {batch}")
    zone = Zone(0, max(1 << 14, 2 * nr_pages), 1)
    pcp = PerCpuPages(0, high=nr_pages + batch, batch=batch)
    pcp.free_high_batched = profile.free_high_batched
    for pfn in zone.rmqueue_bulk(0, nr_pages, MIGRATE_MOVABLE):
        pcp_free.free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE)
    if pcp.count != nr_pages:
        raise ValueError(f"the zone has no {nr_pages} free MOVABLE pages for the replay")
    spy = ZoneLockHolds(zone)
    spin_lock(pcp.lock)
    if pcp_free.free_high_flush(spy, pcp, nr_pages, order_to_pindex(MIGRATE_MOVABLE, 0)):
        spin_unlock(pcp.lock)
    out = Replay(profile.name)
    longest = max(spy.holds, default=0)
    out.facts = {
        "pages": nr_pages,
        "batch": batch,
        "zone_lock_holds": len(spy.holds),
        "longest_hold_pages": longest,
        "left_on_pcp": pcp.count,
    }
    if longest > batch:
        out.findings.append(
            f"one zone->lock hold freed {longest} pages (pcp->batch is {batch}): "
            "the hold that stalled RCU for ~10 s on a 316-CPU machine under memory pressure"
        )
    out.findings += check_pcp(pcp)
    return out


class _HeldByRefill(UnsharedPcpLock):
    """pcp->lock held by CPU1 in __rmqueue_pcplist: the first blocking acquire (the drainer spinning)
    lets CPU1 finish (`finish`: count the refill, unlock) before it gets the lock."""

    def __init__(self, finish: Callable[[], None]) -> None:
        super().__init__()
        self.get_nowait()  # CPU1 holds it
        self.finish = finish
        self.drainer_waited = False

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        if self.empty() and block and not self.drainer_waited:
            self.drainer_waited = True
            self.finish()  # CPU1 runs on while the drainer spins
        return super().get(block, timeout)


def count_race(profile: KernelProfile, batch: int = 63) -> Replay:
    """The interleaving of 66eca1021a42's message ("mm/page_alloc: fix pcp->count race between
    drain_pages_zone() vs __rmqueue_pcplist()", Li Zhijian, v6.11; Fixes: 4b23a68f9536, v6.0): CPU1
    holds its pcp lock in __rmqueue_pcplist, rmqueue_bulk has put `batch` pages on the empty list and
    pcp->count is not yet raised; CPU0, in zone_pcp_disable (high 0, batch 1, then
    __drain_all_pages(zone, true)), runs drain_pages_zone for CPU1. Check: no page is left on CPU1's
    lists once both are done (offline_pages waits for exactly that)."""
    zone = Zone(0, 1 << 18, 4)
    pcp = PerCpuPages(1, high=321, batch=batch)
    pcp.auto_high = profile.pcp_high_auto

    def cpu1_finishes_refill() -> None:
        pcp.count += batch  # __rmqueue_pcplist: pcp->count += alloced << order
        spin_unlock(lock)

    lock = _HeldByRefill(cpu1_finishes_refill)
    pcp.lock = lock
    pcp.lists[MIGRATE_MOVABLE].extend(zone.rmqueue_bulk(0, batch, MIGRATE_MOVABLE))
    pageset_update(pcp, 0, 0, 1)  # zone_pcp_disable: __zone_set_pageset_high_and_batch(zone, 0, 0, 1)
    drained = pcp_ops(profile).drain_pages_zone(zone, pcp)
    if not lock.drainer_waited:
        cpu1_finishes_refill()  # the drain never touched the lock: CPU1 finishes after it
    out = Replay(profile.name, facts={"drained": drained, "left_on_lists": pcp.count})
    if pcp.count:
        out.findings.append(
            f"{pcp.count} pages left on the pcp lists after zone_pcp_disable's drain: the drain read "
            "pcp->count before taking the lock and skipped the CPU mid-refill (offline_pages would hang)"
        )
    return out


REPLAYS: dict[str, Callable[[KernelProfile], Replay]] = {
    "count-race": count_race,
    "up-trylock": up_trylock,
    "bulk-free": bulk_free,
}
# The profiles each replay runs under by default: the bug, then the fix (6.2 itself for bulk-free).
VARIANTS = {
    "count-race": ("6.12-count-race", "6.12"),
    "up-trylock": ("6.2-up", "6.2-up-fixed"),
    "bulk-free": ("6.2", "6.2-batched-free"),
}
# bulk-free's many-CPU storm (`pcpsim replay bulk-free --cpus N`, node.virtual.bulk_free_storm): the live
# kernels whose auto-tuned pcp->high lets a flush reach batch << 5 pages, one zone->lock hold (6.12) or
# pcp->batch a hold (6.19, the whole series).
STORM_VARIANTS = ("6.12", "6.19")
