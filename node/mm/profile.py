"""Kernel-version profiles: what 5.19, 6.1, 6.2, 6.6, 6.12 and 6.19, and the 6.1.y, 6.6.y and 6.12.y LTS
series, do differently around the pcp lists.

Each profile is a small table of semantics that the few places which differ consult; the
drain strategy is only the profile's default (a cluster may pick another for a what-if run).

| profile | pcp protection | IRQs while held | alloc/free | free_unref_page_list | drain default | remote drain |
|---------|----------------|-----------------|------------|----------------------|---------------|--------------|
| 5.19    | local_lock     | off             | local lock | local lock           | workqueue     | impossible   |
| 6.1     | spinlock       | off (irqsave)   | trylock    | blocking spin        | remote        | yes          |
| 6.2     | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |
| 6.6     | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |
| 6.12    | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |
| 6.19    | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |
| 6.1.y   | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |
| 6.6.y   | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |
| 6.12.y  | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |

| profile          | pcp->high            | drain_pages_zone                         | vmstat on isolated CPUs |
|------------------|----------------------|------------------------------------------|-------------------------|
| 5.19 to 6.2      | fixed (zone_highsize)| one hold, pcp->count read unlocked       | queued (no pcp effect)  |
| 6.6              | fixed (zone_highsize)| one hold, pcp->count read unlocked       | skipped                 |
| 6.12             | auto-tuned (pcp_high)| chunks of batch << 5, count under lock   | skipped: high stays up  |
| 6.12-count-race  | auto-tuned           | chunks, count read once unlocked (bug)   | skipped                 |
| 6.19             | auto-tuned; free and decay flush in pcp->batch chunks    | as 6.12          | skipped         |
|                  | free_high from free_count >= batch + high_min / 2        |                  |                 |
| 6.1.y, 6.6.y     | fixed; free_factor capped at 5 | chunks, count under lock (as 6.12) | queued / skipped        |
| 6.12.y           | as 6.12; decay_pcp_high in pcp->batch chunks | as 6.12                  | skipped                |

Sources (subject lines of the mainline commits, by release):
- 5.19: "mm/page_alloc: convert per-cpu list protection to local_lock" (Mel Gorman, v5.14):
  pagesets.lock, local_lock_irqsave; no other CPU can take it, so drain_all_pages queues
  drain_local_pages_wq on each CPU (mm_percpu_wq) and flushes them. A pcp allocation that gets no
  page fails: rmqueue has no fallback to the buddy before v6.0 (buddy_fallback; kernel-facts §21).
- 6.1: Mel Gorman's series "Drain remote per-cpu directly" (v6.0): "mm/page_alloc: protect PCP
  lists with a spinlock", "mm/page_alloc: replace local_lock with normal spinlock", and Nicolas
  Saenz Julienne's "mm/page_alloc: remotely drain per-cpu lists". pcp_spin_lock_irqsave; the
  fast paths trylock and fall back to the buddy; free_unref_page_list spins.
- 6.2: "mm/page_alloc: leave IRQs enabled for per-cpu page allocations" (Mel Gorman, v6.2):
  pcp_spin_trylock with IRQs enabled everywhere, free_unref_page_list included (a failed trylock
  frees to the buddy: "trylock is necessary as pages may be getting freed from IRQ or SoftIRQ
  context"); an IRQ that allocates while its CPU holds the pcp lock finds it taken and goes to
  the buddy, where under 6.1 it could not have arrived until the lock was dropped.

- 6.6 (v6.6, Oct 2023, as released; 6.6.45 took the two drain changes below, docs/kernel-facts.md): the
  pcp paths of 6.2. Checked against the "-" lines of Huang Ying's v6.7 series, whose base is v6.6-rc:
  nr_pcp_free/nr_pcp_high with free_factor, __rmqueue_pcplist's max(batch >> order, 2), a drain in
  one hold. be5e015d107d "vmstat: skip periodic vmstat update for isolated CPUs" (Marcelo Tosatti,
  message ZIDoV/zxFKVmQl7W@tpad, in "MM updates for 6.5-rc1"): vmstat_shepherd skips cpu_is_isolated()
  CPUs. Without auto-tuning this has no pcp effect on a one-node machine (refresh_cpu_vm_stats'
  drain_zone_pages is for other nodes' pagesets), so 6.6 models no vmstat work.
- 6.12 (v6.12 LTS, Nov 2024): pcp->high auto-tuning (v6.7, node.mm.pcp_high lists the commits,
  51a755c56dc0 "mm: tune PCP high automatically" among them): high between high_min and high_max,
  alloc_factor, free_count, PCPF_* flags, decay_pcp_high from refresh_cpu_vm_stats (node.tasks
  VmstatRefresh, housekeeping CPUs only since 6.5); 55f77df7d715 "mm: page_alloc: control latency
  caused by zone PCP draining" (Lucas Stach, mainline with v6.10's mm-stable): drains in chunks
  of batch << CONFIG_PCP_BATCH_SCALE_MAX, the lock dropped between them; 66eca1021a42
  "mm/page_alloc: fix pcp->count race between drain_pages_zone() vs __rmqueue_pcplist()" (Li
  Zhijian, July 2024, v6.11; Fixes: 4b23a68f9536, v6.0): pcp->count read under the lock.
- 6.19 (the newest kernel whose pcp code was read: first as patches on the mailing lists and stable
  backports, docs/kernel-facts.md section 7, then in a stored 6.19.y mm/page_alloc.c of March 2026,
  section 18, which has everything below): 6.12 plus Nikhil Dhama's "mm: pcp: increase pcp->free_count
  threshold to trigger free_high" (c544a952ba61, v6.16: free_high from free_count >= batch + high_min / 2;
  `free_high_half_high_min`) and Joshua Hahn's "mm/page_alloc: Batch callers of free_pcppages_bulk" v5
  (<20251014145011.3427205-1-joshua.hahnjy@gmail.com>), in mm-stable for the v6.19 merge window (2/3
  is "commit fc4b909c368f upstream" in the 6.18.y and 6.12.y backports, so after v6.18):
  fc4b909c368f "mm/page_alloc: batch page freeing in decay_pcp_high" frees in pcp->batch chunks, the
  lock taken for each; 3/3 "mm/page_alloc: batch page freeing in free_frozen_page_commit" (91e691296646,
  in Linus's master push of 2025-12-05 with 0acc67c4030c and fc4b909c368f; docs/kernel-facts.md §7)
  flushes in pcp->batch chunks, dropping the lock between them and giving up if the re-trylock
  fails (free_frozen_pages then returns without unlocking; free_unref_folios trylocks again on the next
  folio). They are `free_high_batched` (3/3: node.mm.pcp_free.free_high_flush) and `decay_pcp_high_batched`
  (2/3: decay_pcp_high, which 6.12.67 took too). Unchanged on SMP:
  0f21b911011f "mm/page_alloc: simplify and cleanup pcp locking" (Babka: "bloat-o-meter reported no
  change on SMP config") and 038a102535eb (the SMP=n fix, 6.2-up-fixed); the v6.15 renames
  (free_unref_page -> free_frozen_pages, free_unref_page_commit -> free_frozen_page_commit); the
  FPI_TRYLOCK path of alloc_pages_nolock (a BPF-only caller, not modelled).
- 6.12-count-race: 6.12 without 66eca1021a42 (as v6.10 was): the bug variant, whose drain misses a
  refill under way (tests/unit/test_pcp_drain_race.py replays it). 6.1 to 6.6 have the same race.
- THP lists (`thp_lists`, node.mm.constants): one per pcp migratetype in 5.19 (15 lists), one for all
  from v6.0 (5d0a661d808f, 13), movable apart from the rest from v6.10-rc6 (yangge's, 14: 6.12, 6.19). The
  6.1 and 6.6 profiles are the releases as tagged: the stable series took yangge's patch in 6.1.97 and
  6.6.37 (docs/kernel-facts.md §16).
- v6.10's migratetype series (Johannes Weiner, 2024-03-20, in v6.10-rc1): the zone reads a freed page's
  pageblock type under zone->lock in free_pcppages_bulk and free_one_page, and a merge with a
  whole-pageblock buddy of another mergeable type retypes that buddy's block ("fix up block types when
  merging compatible blocks"); both are `pcppage_migratetype_cached` False (node.mm.zone).
- The list free of 6.12 and 6.19 is free_unref_folios (`free_unref_folios` below). The cacheinfo test
  behind PCPF_FREE_HIGH_BATCH takes the cache slice from the cost model (node.mm.pcp_high).

`drain` is drain_pages_zone's form wherever a CPU's pcp is drained: the kworker's drain and the pure
model (DRAIN_PAGES_ZONE below), and the live remote drain, whose node rule (node.remote_lock_rule)
grants one chunk of batch << CONFIG_PCP_BATCH_SCALE_MAX pages per lock hold under "chunked"
(55f77df7d715) and "count-locked" (66eca1021a42), the drainer (coordinator.drain.remote) committing
each before it asks for the next. rcu-swap hands over a whole list set and has no chunks.

Where each difference lives: `remote_drain` is checked by the node before a remote lock drain
(node.server); `free_list_trylock` picks free_unref_page_list below (node.runtime: `pcp_ops`);
`irqs_off` decides, in `LocalIrq`, whether an IRQ raised while the CPU holds its own pcp lock runs
then (and meets the held lock) or after the unlock. The live node runs IRQs as their own steps
between task steps, so it never raises one inside a pcp section: that difference is pinned by
the unit tests on the pure model only.

Variant rows (docs/kernel-facts.md, sections 6 and 7), for the pure-model bug replays
(node.mm.bugs, `pcpsim replay`); the live node runs them as their base profile, since it
never raises an IRQ inside a pcp section and frees with node.mm.pcp's single-call flush:
- 6.2-up: CONFIG_SMP=n (`smp=False`). The UP spinlock keeps no lock word, so spin_trylock()
  always succeeds; v6.2 makes the trylock sections safe with pcp_trylock_prepare()
  (local_irq_save on !SMP) but takes pcp->lock with a plain spin_lock() in drain_pages_zone,
  drain_zone_pages (and, later, decay_pcp_high), IRQs on: an IRQ there whose trylock
  "succeeds" works on the lists under the drainer's feet. The bug came with 574907741599
  (v6.2) and is reported as "BUG: spinlock trylock failure on UP" (kernel test robot,
  202512101320.e2f2dd6f-lkp@intel.com).
- 6.2-up-fixed: 038a102535eb "mm/page_alloc: prevent pcp corruption with SMP=n" (Vlastimil
  Babka, 2026-01, Cc stable): on !SMP && !PREEMPT_RT those spin_lock() sections become
  spin_lock_irqsave() (pcp_spin_lock_maybe_irqsave), `up_spin_lock_irqsave=True`.
- 6.2-batched-free: Joshua Hahn's "mm/page_alloc: Batch callers of free_pcppages_bulk" v5
  (20251014145011.3427205-1-joshua.hahnjy@gmail.com), patch 3/3: free_frozen_page_commit
  frees nr_pcp_free() pages in pcp->batch chunks, one free_pcppages_bulk (one zone->lock
  hold) each, dropping pcp->lock between chunks and giving up if its trylock then fails
  (`free_high_batched=True`; node.mm.pcp_free.free_high_flush), on 6.2 so that the replay shows the
  flush alone (6.19 is the live kernel with the whole series). Before it a
  flush is one free_pcppages_bulk of up to high - batch pages (batch << 5 with v6.7's
  auto-tuning): "the lock in free_pcppages_bulk was being held for a long time, even being
  held while 2k+ pages were being freed" (v1 cover, 1 TB, 316 CPUs, a 10.5 s RCU stall under
  memory pressure).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from types import SimpleNamespace

from . import audit, drain_chunked, pcp_free, pcp_high
from . import pcp as pcpmod
from .constants import (
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    THP_LIST_MOVABLE_APART,
    THP_LIST_PER_TYPE,
    THP_LIST_SHARED,
    Page,
    pcp_allowed_order,
)
from .lock import spin_locked, spin_trylock, spin_unlock
from .pcp import PerCpuPages, ZoneOps
from .pcp_rcu import RcuPerCpuPages

DEFAULT_KERNEL = "6.1"


@dataclass(frozen=True)
class KernelProfile:
    name: str
    strategy: str  # the drain strategy of that kernel (coordinator.drain.record.STRATEGIES)
    pcp_lock: str  # "local_lock" or "spinlock"
    irqs_off: bool  # IRQs disabled while the pcp lock is held
    free_list_trylock: bool  # free_unref_page_list trylocks (else spins)
    remote_drain: bool  # another CPU may take this pcp's lock
    smp: bool = True  # CONFIG_SMP; False: the UP spinlock, whose spin_trylock() never fails (UpSpinlock)
    up_spin_lock_irqsave: bool = False  # 038a102535eb: on !SMP, spin_lock(&pcp->lock) sections disable IRQs
    # Hahn's v5 series (docs/kernel-facts.md section 7): the free path's flush in pcp->batch chunks (3/3,
    # v6.19), and decay_pcp_high's (fc4b909c368f, 2/3: v6.19, and 6.12.67 as a stable dependency).
    free_high_batched: bool = False
    decay_pcp_high_batched: bool = False
    # Dhama, "mm: pcp: increase pcp->free_count threshold to trigger free_high" (c544a952ba61, v6.16):
    # a run of high-order frees flushes them once free_count >= batch + high_min / 2, not batch.
    free_high_half_high_min: bool = False
    # 52166607ecc9 as the 6.1.104 and 6.6.45 stable updates took it (Stable-dep-of 66eca1021a42): in the
    # free_factor arithmetic of v6.1 to v6.6, nr_pcp_free raises free_factor only below
    # CONFIG_PCP_BATCH_SCALE_MAX (5). Mainline v6.7 replaced free_factor with free_count.
    free_factor_capped: bool = False
    pcp_high_auto: bool = False  # v6.7+ pcp->high auto-tuning (node.mm.pcp_high)
    drain: str = "one-hold"  # drain_pages_zone: "one-hold" (v6.0-6.9), "chunked" (v6.10), "count-locked" (v6.11+)
    vmstat_skips_isolated: bool = False  # v6.5+: vmstat_shepherd queues no vmstat_update on isolated CPUs
    thp_lists: tuple[int, ...] = THP_LIST_SHARED  # the THP-order pcp lists (node.mm.constants): v6.0 to v6.9
    free_unref_folios: bool = False  # v6.10+: the list free is free_unref_folios (see it below)
    # To v6.9 the zone files a page from a pcp list under the type it was freed with; v6.10+ reads its
    # pageblock's type under zone->lock (node.mm.zone, Weiner's series; docs/kernel-facts.md §1).
    pcppage_migratetype_cached: bool = True
    replay_only: bool = False  # a bug-replay variant the live node cannot run as itself (see below)
    # v6.0+: a pcp allocation that gets no page (its trylock failed, or its refill found none) is taken
    # from the buddy (rmqueue_buddy); to v5.19 the pcp path's NULL is rmqueue's (docs/kernel-facts.md §21).
    buddy_fallback: bool = True


_V6_2 = KernelProfile("6.2", "remote", "spinlock", irqs_off=False, free_list_trylock=True, remote_drain=True)
_V6_6 = KernelProfile(
    "6.6", "remote", "spinlock", irqs_off=False, free_list_trylock=True, remote_drain=True, vmstat_skips_isolated=True
)
_V6_12 = KernelProfile(
    "6.12",
    "remote",
    "spinlock",
    irqs_off=False,
    free_list_trylock=True,
    remote_drain=True,
    pcp_high_auto=True,
    drain="count-locked",
    vmstat_skips_isolated=True,
    thp_lists=THP_LIST_MOVABLE_APART,  # yangge's, v6.10-rc6
    pcppage_migratetype_cached=False,  # v6.10-rc1
    free_unref_folios=True,  # by v6.10-rc1
)

PROFILES = {
    "5.19": KernelProfile(
        "5.19",
        "workqueue",
        "local_lock",
        irqs_off=True,
        free_list_trylock=False,
        remote_drain=False,
        thp_lists=THP_LIST_PER_TYPE,  # before 5d0a661d808f (v6.0)
        buddy_fallback=False,
    ),
    "6.1": KernelProfile("6.1", "remote", "spinlock", irqs_off=True, free_list_trylock=False, remote_drain=True),
    "6.2": _V6_2,
    "6.6": _V6_6,
    "6.12": _V6_12,
    # Hahn's batching series (fc4b909c368f and 3/3, v6.19): the free path's flush and decay_pcp_high in
    # pcp->batch chunks.
    "6.19": replace(
        _V6_12, name="6.19", free_high_batched=True, decay_pcp_high_batched=True, free_high_half_high_min=True
    ),
    # The LTS series as their stable updates left them (docs/kernel-facts.md section 19): 6.1 from 6.1.104
    # (a stored late 6.1.y tree, read at source) has 6.2's IRQs-on trylock paths (574907741599, 6.1.57),
    # yangge's two THP lists (6.1.97), the count-locked chunked drain and 52166607ecc9's cap on free_factor
    # (6.1.104); 6.6 from 6.6.45 (stable mails) the same three on top of 6.6.
    "6.1.y": replace(
        _V6_2, name="6.1.y", drain="count-locked", thp_lists=THP_LIST_MOVABLE_APART, free_factor_capped=True
    ),
    "6.6.y": replace(
        _V6_6, name="6.6.y", drain="count-locked", thp_lists=THP_LIST_MOVABLE_APART, free_factor_capped=True
    ),
    # 6.12 from 6.12.67 (2026-01-23): Hahn's decay_pcp_high batching (2/3, with 1/3), taken as
    # dependencies of 038a102535eb; his free path batching (3/3) was not.
    "6.12.y": replace(_V6_12, name="6.12.y", decay_pcp_high_batched=True),
    # 6.12 without 66eca1021a42, as v6.10 drained: the bug variant of the pcp->count race.
    "6.12-count-race": replace(_V6_12, name="6.12-count-race", drain="chunked"),
    # Bug replays of the pure model (node.mm.bugs, `pcpsim replay`): not offered to a live cluster.
    "6.2-up": replace(_V6_2, name="6.2-up", smp=False, replay_only=True),
    "6.2-up-fixed": replace(_V6_2, name="6.2-up-fixed", smp=False, up_spin_lock_irqsave=True, replay_only=True),
    "6.2-batched-free": replace(_V6_2, name="6.2-batched-free", free_high_batched=True, replay_only=True),
}

# What a cluster may run (--kernel): a uniprocessor variant makes no sense on several CPUs, and the
# batched-free variant is 6.2 with one patch of a 6.19 series, for its replay only.
LIVE = tuple(name for name, p in PROFILES.items() if not p.replay_only)

DRAIN_PAGES_ZONE = {
    "one-hold": pcpmod.drain_pages_zone,
    "chunked": drain_chunked.drain_pages_zone_chunked,
    "count-locked": drain_chunked.drain_pages_zone_count_locked,
}


def get(name: str) -> KernelProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown kernel profile {name!r}; known: {', '.join(PROFILES)}") from None


def free_unref_page_list_trylock(
    zone: ZoneOps, pcp: PerCpuPages, pages: Iterable[Page], done: list[int] | None = None
) -> None:
    """v6.2 free_unref_page_list (574907741599, "mm/page_alloc: leave IRQs enabled for per-cpu page
    allocations", with its -fix reading the migratetype before the trylock): isolate pages and uncached
    orders go to the zone first; then page by page, a pcp lock not held is taken with a trylock. When it
    fails (a remote drainer, or an interrupted holder on this CPU, has it) only THAT page goes to the
    buddy (free_one_page, with its unclamped type), `locked_zone = NULL`, and the next page tries the lock
    again. batch_count restarts at each acquisition, and after SWAP_CLUSTER_MAX committed pages the lock
    is dropped (`pcp = NULL; locked_zone = NULL`) and retaken by the next page's trylock. One zone, so
    `zone != locked_zone` is "the lock is not held". Each failed trylock counts once in trylock_fail_free
    and its page once in buddy_fallback_free. ``done`` as in pcp.free_unref_page_list."""
    _free_list_trylock(zone, pcp, pages, [] if done is None else done, folios=False)


def free_unref_folios(zone: ZoneOps, pcp: PerCpuPages, pages: Iterable[Page], done: list[int] | None = None) -> None:
    """v6.10+ free_unref_folios, which replaced free_unref_page_list (Matthew Wilcox, "mm: Add
    free_unref_folios()"; Johannes Weiner, "mm: page_alloc: optimize free_unref_folios()", 02/10 of his
    series in v6.10-rc1; docs/kernel-facts.md §17). As v6.2's, page by page with a trylock, but: no
    batch_count, so no drop every SWAP_CLUSTER_MAX pages (the folio batch is the bound: "has a batch count
    naturally built in"); and an isolate page is freed in the second loop, in the list's order, the lock
    dropped first if held ("the lock-breaking block"), the next page trylocking again. v6.19's batched
    flush that loses the lock sets `pcp = NULL; locked_zone = NULL` here too."""
    _free_list_trylock(zone, pcp, pages, [] if done is None else done, folios=True)


def _free_list_trylock(zone: ZoneOps, pcp: PerCpuPages, pages: Iterable[Page], done: list[int], folios: bool) -> None:
    to_pcp: list[Page] = []
    for pfn, order, mt in pages:
        if not pcp_allowed_order(order) or (mt == MIGRATE_ISOLATE and not folios):
            zone.free_one_page(pfn, order, mt)
            done.append(pfn)
        else:
            to_pcp.append((pfn, order, mt))
    lock = pcp.lock
    stats = pcp.stats
    locked = False
    batch_count = 0
    try:
        for pfn, order, mt in to_pcp:
            if mt == MIGRATE_ISOLATE:  # folios only: "Free isolated pages directly to the allocator"
                if locked:
                    spin_unlock(lock)
                    locked = False
                zone.free_one_page(pfn, order, mt)
                done.append(pfn)
                continue
            if not locked:
                locked = spin_trylock(lock)
                if not locked:
                    stats.trylock_fail_free += 1
                    stats.buddy_fallback_free += 1
                    zone.free_one_page(pfn, order, mt)
                    done.append(pfn)
                    continue
                batch_count = 0
            done.append(pfn)
            mt = MIGRATE_MOVABLE if mt >= MIGRATE_PCPTYPES else mt
            if not pcp_free.free_unref_page_commit(zone, pcp, pfn, mt, order):
                # v6.19 free_unref_folios: the batched flush lost the lock (`pcp = NULL; locked_zone =
                # NULL`), and the next page trylocks again.
                locked = False
                continue
            batch_count += 1
            if batch_count == pcp_free.SWAP_CLUSTER_MAX and not folios:
                # Bound the lock hold time; the next page retakes it with a trylock.
                spin_unlock(lock)
                locked = False
    finally:
        if locked:
            spin_unlock(lock)


def set_up_pcp(pcp: PerCpuPages | RcuPerCpuPages, profile: KernelProfile, data_slice_pages: int) -> None:
    """A pcp as `profile` runs it, set up when its CPU comes online (node.runtime and node.virtual.run
    alike): its kernel's THP lists; v6.7+ auto-tuning, and then setup_pcp_cacheinfo's PCPF_FREE_HIGH_BATCH
    from the CPU's data cache slice (pcp_high.zone_pcp_update_cacheinfo); v6.19's batched flushes and
    free_high threshold. Under
    rcu-swap, each of the two list sets."""
    for s in pcp.pcplists if isinstance(pcp, RcuPerCpuPages) else (pcp,):
        s.set_thp_lists(profile.thp_lists)
        s.auto_high = profile.pcp_high_auto
        s.free_high_batched = profile.free_high_batched
        s.decay_pcp_high_batched = profile.decay_pcp_high_batched
        s.free_high_half_high_min = profile.free_high_half_high_min
        s.free_factor_capped = profile.free_factor_capped
        if s.auto_high:
            pcp_high.zone_pcp_update_cacheinfo(s, data_slice_pages)


def pcp_ops(profile: KernelProfile) -> SimpleNamespace:
    """The spinlock (or local_lock) design's entry points under `profile` (node.alloc's `ops`)."""
    return SimpleNamespace(
        rmqueue=pcpmod.rmqueue if profile.buddy_fallback else pcpmod.rmqueue_no_fallback,
        free_unref_page=pcp_free.free_unref_page,
        free_unref_page_list=free_unref_folios
        if profile.free_unref_folios
        else free_unref_page_list_trylock
        if profile.free_list_trylock
        else pcp_free.free_unref_page_list,
        drain_pages_zone=DRAIN_PAGES_ZONE[profile.drain],
        on_pcp_list=pcpmod.on_pcp_list,
        pageset_update=pcpmod.pageset_update,
        decay_pcp_high=pcpmod.decay_pcp_high,
        check_pcp=audit.check_pcp,
    )


class UpSpinlock:
    """pcp->lock on a CONFIG_SMP=n kernel (include/linux/spinlock_up.h): no lock word, so spin_trylock()
    always succeeds and spin_lock() never waits; only IRQs being off keeps an IRQ out of a section.
    `held` and `nested` are the state CONFIG_DEBUG_SPINLOCK adds: `nested` counts acquisitions made
    while the lock was already held, which the debug build reports as "BUG: spinlock trylock failure
    on UP" (the report behind 038a102535eb) and the non-debug build lets through."""

    def __init__(self) -> None:
        self.held = 0
        self.nested = 0

    def get_nowait(self) -> object:  # spin_trylock, and spin_lock below: neither waits on UP
        if self.held:
            self.nested += 1
        self.held += 1
        return True

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        return self.get_nowait()

    def put(self, item: object, /) -> None:
        if not self.held:
            raise RuntimeError("release of an unlocked UP spinlock")
        self.held -= 1

    def empty(self) -> bool:
        return self.held > 0


class LocalIrq:
    """An IRQ raised on a CPU while that CPU is inside its own pcp section (holding pcp->lock).

    With IRQs off while the lock is held (5.19, 6.1) the IRQ stays pending and its handler runs when
    the section ends, so it never meets the held lock; with IRQs on (6.2) it runs at once, and an
    allocation in it finds the lock taken, fails the trylock and goes to the buddy. On a UP kernel
    (`smp=False`) the trylock cannot fail: v6.2 disables IRQs around the trylock sections instead
    (pcp_trylock_prepare), but not around the spin_lock() sections of the drains until 038a102535eb
    (`up_spin_lock_irqsave`), so there the IRQ's trylock "succeeds" inside the drainer's section."""

    def __init__(self, profile: KernelProfile, pcp: PerCpuPages) -> None:
        self.profile = profile
        self.pcp = pcp
        self.pending: list[Callable[[], object]] = []
        self.in_section = False
        self._irqs_off = False

    def pcp_section(self, body: Callable[[], object]) -> None:
        """Run body() holding this CPU's pcp lock, as the fast path does (pcp_trylock_prepare +
        pcp_spin_trylock); deliver deferred IRQs after."""
        self._section(body, self.profile.irqs_off or not self.profile.smp)

    def spin_lock_section(self, body: Callable[[], object]) -> None:
        """Run body() holding this CPU's pcp lock taken with spin_lock(&pcp->lock), as drain_pages_zone
        does (v6.2; pcp_spin_lock_maybe_irqsave since 038a102535eb); deliver deferred IRQs after."""
        profile = self.profile
        self._section(body, profile.irqs_off or (not profile.smp and profile.up_spin_lock_irqsave))

    def _section(self, body: Callable[[], object], irqs_off: bool) -> None:
        with spin_locked(self.pcp.lock):
            self.in_section, self._irqs_off = True, irqs_off
            try:
                body()
            finally:
                self.in_section, self._irqs_off = False, False
        pending, self.pending = self.pending, []
        for handler in pending:
            handler()

    def raise_irq(self, handler: Callable[[], object]) -> bool:
        """Returns True if the handler ran now, False if it waits for the end of the pcp section."""
        if self.in_section and self._irqs_off:
            self.pending.append(handler)
            return False
        handler()
        return True
