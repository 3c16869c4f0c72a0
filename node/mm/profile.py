"""Kernel-version profiles: what 5.19, 6.1, 6.2, 6.6 and 6.12 do differently around the pcp lists.

Each profile is a small table of semantics that the few places which differ consult; the
drain strategy is only the profile's default (a cluster may pick another for a what-if run).

| profile | pcp protection | IRQs while held | alloc/free | free_unref_page_list | drain default | remote drain |
|---------|----------------|-----------------|------------|----------------------|---------------|--------------|
| 5.19    | local_lock     | off             | local lock | local lock           | workqueue     | impossible   |
| 6.1     | spinlock       | off (irqsave)   | trylock    | blocking spin        | remote        | yes          |
| 6.2     | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |
| 6.6     | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |
| 6.12    | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |

| profile          | pcp->high            | drain_pages_zone                         | vmstat on isolated CPUs |
|------------------|----------------------|------------------------------------------|-------------------------|
| 5.19 to 6.2      | fixed (zone_highsize)| one hold, pcp->count read unlocked       | queued (no pcp effect)  |
| 6.6              | fixed (zone_highsize)| one hold, pcp->count read unlocked       | skipped                 |
| 6.12             | auto-tuned (pcp_high)| chunks of batch << 5, count under lock   | skipped: high stays up  |
| 6.12-count-race  | auto-tuned           | chunks, count read once unlocked (bug)   | skipped                 |

Sources (subject lines of the mainline commits, by release):
- 5.19: "mm/page_alloc: convert per-cpu list protection to local_lock" (Mel Gorman, v5.14):
  pagesets.lock, local_lock_irqsave; no other CPU can take it, so drain_all_pages queues
  drain_local_pages_wq on each CPU (mm_percpu_wq) and flushes them.
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
- 6.12-count-race: 6.12 without 66eca1021a42 (as v6.10 was): the bug variant, whose drain misses a
  refill under way (tests/unit/test_pcp_drain_race.py replays it). 6.1 to 6.6 have the same race.
- Not modelled for 6.12: two THP lists (NR_PCP_THP 2), free_unref_folios' folio batching, the
  cacheinfo test behind PCPF_FREE_HIGH_BATCH; the live remote drain (coordinator.drain.remote,
  node.remote_lock) still takes all pages under one lease: chunking runs on the workqueue drain,
  decay and the pure model only.

Where each difference lives: `remote_drain` is checked by the node before a remote lock drain
(node.server); `free_list_trylock` picks free_unref_page_list below (node.runtime: `pcp_ops`);
`irqs_off` decides, in `LocalIrq`, whether an IRQ raised while the CPU holds its own pcp lock runs
then (and meets the held lock) or after the unlock. The live node runs IRQs as their own steps
between task steps, so it never raises one inside a pcp section: that difference is pinned by
the unit tests on the pure model only.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from types import SimpleNamespace

from . import pcp as pcpmod
from .constants import MIGRATE_ISOLATE, MIGRATE_MOVABLE, MIGRATE_PCPTYPES, Page, pcp_allowed_order
from .pcp import PerCpuPages, ZoneOps

DEFAULT_KERNEL = "6.1"


@dataclass(frozen=True)
class KernelProfile:
    name: str
    strategy: str  # the drain strategy of that kernel (coordinator.drain.drainer.STRATEGIES)
    pcp_lock: str  # "local_lock" or "spinlock"
    irqs_off: bool  # IRQs disabled while the pcp lock is held
    free_list_trylock: bool  # free_unref_page_list trylocks (else spins)
    remote_drain: bool  # another CPU may take this pcp's lock
    pcp_high_auto: bool = False  # v6.7+ pcp->high auto-tuning (node.mm.pcp_high)
    drain: str = "one-hold"  # drain_pages_zone: "one-hold" (v6.0-6.9), "chunked" (v6.10), "count-locked" (v6.11+)
    vmstat_skips_isolated: bool = False  # v6.5+: vmstat_shepherd queues no vmstat_update on isolated CPUs


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
)

PROFILES = {
    "5.19": KernelProfile(
        "5.19", "workqueue", "local_lock", irqs_off=True, free_list_trylock=False, remote_drain=False
    ),
    "6.1": KernelProfile("6.1", "remote", "spinlock", irqs_off=True, free_list_trylock=False, remote_drain=True),
    "6.2": KernelProfile("6.2", "remote", "spinlock", irqs_off=False, free_list_trylock=True, remote_drain=True),
    "6.6": KernelProfile(
        "6.6",
        "remote",
        "spinlock",
        irqs_off=False,
        free_list_trylock=True,
        remote_drain=True,
        vmstat_skips_isolated=True,
    ),
    "6.12": _V6_12,
    # 6.12 without 66eca1021a42, as v6.10 drained: the bug variant of the pcp->count race.
    "6.12-count-race": replace(_V6_12, name="6.12-count-race", drain="chunked"),
}

DRAIN_PAGES_ZONE = {
    "one-hold": pcpmod.drain_pages_zone,
    "chunked": pcpmod.drain_pages_zone_chunked,
    "count-locked": pcpmod.drain_pages_zone_count_locked,
}


def get(name: str) -> KernelProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown kernel profile {name!r}; known: {', '.join(PROFILES)}") from None


def free_unref_page_list_trylock(
    zone: ZoneOps, pcp: PerCpuPages, pages: Iterable[Page], done: list[int] | None = None
) -> None:
    """v6.2 free_unref_page_list: like pcp.free_unref_page_list but the pcp lock is a trylock; when it
    fails (a remote drainer, or an interrupted holder on this CPU, has it) the remaining pages are
    freed to the buddy one by one, counted as trylock failures and buddy fallbacks of the free path.
    The lock is still dropped every SWAP_CLUSTER_MAX pages, and retaken with a trylock. ``done`` as in
    pcp.free_unref_page_list."""
    if done is None:
        done = []
    to_pcp: list[Page] = []
    for pfn, order, mt in pages:
        if mt == MIGRATE_ISOLATE or not pcp_allowed_order(order):
            zone.free_one_page(pfn, order, mt)
            done.append(pfn)
        else:
            to_pcp.append((pfn, order, MIGRATE_MOVABLE if mt >= MIGRATE_PCPTYPES else mt))
    lock = pcp.lock
    locked = False
    try:
        for i, (pfn, order, mt) in enumerate(to_pcp):
            if i % pcpmod.SWAP_CLUSTER_MAX == 0:
                if locked:
                    lock.release()
                locked = lock.acquire(False)
                if not locked:
                    stats = pcp.stats
                    left = to_pcp[i:]
                    stats.trylock_fail_free += 1
                    stats.buddy_fallback_free += len(left)
                    for p, o, m in left:
                        zone.free_one_page(p, o, m)
                        done.append(p)
                    return
            done.append(pfn)
            pcpmod.free_unref_page_commit(zone, pcp, pfn, mt, order)
    finally:
        if locked:
            lock.release()


def pcp_ops(profile: KernelProfile) -> SimpleNamespace:
    """The spinlock (or local_lock) design's entry points under `profile` (node.alloc's `ops`)."""
    return SimpleNamespace(
        rmqueue=pcpmod.rmqueue,
        free_unref_page=pcpmod.free_unref_page,
        free_unref_page_list=free_unref_page_list_trylock if profile.free_list_trylock else pcpmod.free_unref_page_list,
        drain_pages_zone=DRAIN_PAGES_ZONE[profile.drain],
        on_pcp_list=pcpmod.on_pcp_list,
    )


class LocalIrq:
    """An IRQ raised on a CPU while that CPU is inside its own pcp section (holding pcp->lock).

    With IRQs off while the lock is held (5.19, 6.1) the IRQ stays pending and its handler runs when
    the section ends, so it never meets the held lock; with IRQs on (6.2) it runs at once, and an
    allocation in it finds the lock taken, fails the trylock and goes to the buddy."""

    def __init__(self, profile: KernelProfile, pcp: PerCpuPages) -> None:
        self.profile = profile
        self.pcp = pcp
        self.pending: list[Callable[[], object]] = []
        self.in_section = False

    def pcp_section(self, body: Callable[[], object]) -> None:
        """Run body() holding this CPU's pcp lock, as the fast path does; deliver deferred IRQs after."""
        with self.pcp.lock:
            self.in_section = True
            try:
                body()
            finally:
                self.in_section = False
        pending, self.pending = self.pending, []
        for handler in pending:
            handler()

    def raise_irq(self, handler: Callable[[], object]) -> bool:
        """Returns True if the handler ran now, False if it waits for the end of the pcp section."""
        if self.in_section and self.profile.irqs_off:
            self.pending.append(handler)
            return False
        handler()
        return True
