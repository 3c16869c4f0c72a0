"""Kernel-version profiles: what 5.19, 6.1 and 6.2 do differently around the pcp lists.

Each profile is a small table of semantics that the few places which differ consult; the
drain strategy is only the profile's default (a cluster may pick another for a what-if run).

| profile | pcp protection | IRQs while held | alloc/free | free_unref_page_list | drain default | remote drain |
|---------|----------------|-----------------|------------|----------------------|---------------|--------------|
| 5.19    | local_lock     | off             | local lock | local lock           | workqueue     | impossible   |
| 6.1     | spinlock       | off (irqsave)   | trylock    | blocking spin        | remote        | yes          |
| 6.2     | spinlock       | on              | trylock    | trylock, else buddy  | remote        | yes          |

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

Where each difference lives: `remote_drain` is checked by the node before a remote lock drain
(node.server); `free_list_trylock` picks free_unref_page_list below (node.runtime: `pcp_ops`);
`irqs_off` decides, in `LocalIrq`, whether an IRQ raised while the CPU holds its own pcp lock runs
then (and meets the held lock) or after the unlock. The live node runs IRQs as their own steps
between task steps, so it never raises one inside a pcp section: that difference is pinned by
the unit tests on the pure model only.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


PROFILES = {
    "5.19": KernelProfile(
        "5.19", "workqueue", "local_lock", irqs_off=True, free_list_trylock=False, remote_drain=False
    ),
    "6.1": KernelProfile("6.1", "remote", "spinlock", irqs_off=True, free_list_trylock=False, remote_drain=True),
    "6.2": KernelProfile("6.2", "remote", "spinlock", irqs_off=False, free_list_trylock=True, remote_drain=True),
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
    if done is None:
        done = []
    to_pcp: list[Page] = []
    for pfn, order, mt in pages:
        if mt == MIGRATE_ISOLATE or not pcp_allowed_order(order):
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
            if not locked:
                locked = lock.acquire(False)
                if not locked:
                    stats.trylock_fail_free += 1
                    stats.buddy_fallback_free += 1
                    zone.free_one_page(pfn, order, mt)
                    done.append(pfn)
                    continue
                batch_count = 0
            done.append(pfn)
            pcpmod.free_unref_page_commit(zone, pcp, pfn, MIGRATE_MOVABLE if mt >= MIGRATE_PCPTYPES else mt, order)
            batch_count += 1
            if batch_count == pcpmod.SWAP_CLUSTER_MAX:
                # Bound the lock hold time; the next page retakes it with a trylock.
                lock.release()
                locked = False
    finally:
        if locked:
            lock.release()


def pcp_ops(profile: KernelProfile) -> SimpleNamespace:
    """The spinlock (or local_lock) design's entry points under `profile` (node.alloc's `ops`)."""
    return SimpleNamespace(
        rmqueue=pcpmod.rmqueue,
        free_unref_page=pcpmod.free_unref_page,
        free_unref_page_list=free_unref_page_list_trylock if profile.free_list_trylock else pcpmod.free_unref_page_list,
        drain_pages_zone=pcpmod.drain_pages_zone,
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
