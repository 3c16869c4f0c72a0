"""Per-cpu page lists behind an RCU pointer: Nicolas Saenz Julienne's design, the alternative to the
v6.0 pcp spinlock ("mm/page_alloc: Remote per-cpu lists drain support", RFC Oct 2021, v2 Feb 2022;
not merged, Mel Gorman's spinlock series was).

Each per_cpu_pages holds two list sets (``struct pcplists``: count and lists) and a pointer ``lp`` to
the one in use. The CPU's fast path dereferences ``lp`` once inside its local critical section
(``local_lock_irqsave(&pagesets.lock)``: a lock only its own CPU ever takes) and works on that set.
A drainer on another CPU never writes the set ``lp`` points to: it swaps ``lp`` to the empty set
(``rcu_replace_pointer``), waits for a grace period (``synchronize_rcu``: the CPU has passed a quiescent
state, so no fast path still holds the old set), then frees the old set's pages into the zone. The
fast path takes no lock another CPU can hold, so it never meets a drainer; the drainer pays the grace
period instead.

A list set here is a ``pcp.PerCpuPages``, so the v6.1 fast paths and helpers of pcp.py run on it
unchanged: ``rmqueue`` / ``free_unref_page`` / ``free_unref_page_list`` / ``drain_pages_zone`` below
pass ``pcp.lp`` to them, and the set's own lock stands for the series' local_lock (only this CPU's
thread takes it, so its trylock cannot fail). The locks are the caller's (``list_locks``; the wall
node's Cpu.pcp_lock() each (node.runtime), since its reports read the sets from other threads).

Each set is set up as the kernel profile's pcp is (node.mm.profile.set_up_pcp: its THP lists, v6.7+
auto-tuning, v6.19's batched flushes), so under a profile the design runs that kernel's arithmetic:
the series was written against v5.x, and this is what it would be on the profile's kernel.

Deviations:
- ``high``, ``batch``, ``free_factor`` and v6.7's tuning (``high_min``, ``high_max``, ``alloc_factor``,
  ``free_count``, ``flags``) live in each set (pcp.py's helpers read them there) and are carried over at a
  swap; the series keeps them in per_cpu_pages. ``pageset_update`` sets both sets.
- ``lock`` is the set in use's lock, the local_lock the fast path takes (reports read it, as they read
  the v6.0 spinlock). ``drain_lock`` serializes remote swaps of this CPU, which the kernel does with
  pcpu_drain_mutex; the fast path never takes it. It is the caller's (lock.py): the wall node
  passes a threading.Lock.
- A grace period that times out (node.rcu) leaves the old set as the spare with ``gp_pending`` set;
  the next drain waits for its grace period before it may swap again. Pages a drainer took but did not
  free (it aborted, or its lease lapsed) come back as ``stranded``: past their grace period, on no list
  the fast path uses, still this CPU's, and first in line at the next drain.
"""

from collections.abc import Iterable

from . import audit, pcp_free
from . import pcp as pcpmod
from .constants import Page
from .lock import Lock, PcpLock, UnsharedLock, UnsharedPcpLock
from .pcp import PcpStats, PerCpuPages, ZoneOps


class RcuPerCpuPages:
    __slots__ = ("cpu", "pcplists", "lp", "stats", "drain_lock", "gp_pending", "stranded", "swaps")

    def __init__(
        self,
        cpu: int,
        high: int = 0,
        batch: int = 1,
        drain_lock: Lock | None = None,
        list_locks: tuple[PcpLock, PcpLock] | None = None,
    ) -> None:
        self.cpu = cpu
        self.stats = PcpStats()
        locks = list_locks or (UnsharedPcpLock(), UnsharedPcpLock())
        self.pcplists = (self._list_set(high, batch, locks[0]), self._list_set(high, batch, locks[1]))
        self.lp = self.pcplists[0]
        self.drain_lock: Lock = UnsharedLock() if drain_lock is None else drain_lock
        self.gp_pending = False
        self.stranded: list[Page] = []
        self.swaps = 0

    def _list_set(self, high: int, batch: int, lock: PcpLock) -> PerCpuPages:
        s = PerCpuPages(self.cpu, high, batch, lock=lock)
        s.stats = self.stats  # one set of counters for the CPU, whichever set is in use
        return s

    def __repr__(self) -> str:
        return (
            f"RcuPerCpuPages(cpu={self.cpu}, lp={self.pcplists.index(self.lp)}, count={self.count}, "
            f"spare={self.spare.count}, stranded={len(self.stranded)}, gp_pending={self.gp_pending})"
        )

    @property
    def lock(self) -> PcpLock:
        return self.lp.lock

    @property
    def spare(self) -> PerCpuPages:
        a, b = self.pcplists
        return b if self.lp is a else a

    # What the CPU holds on its pcp, whichever set: reports, heartbeats and the audit read these.
    @property
    def count(self) -> int:
        a, b = self.pcplists
        return a.count + b.count + sum(1 << order for _, order, _ in self.stranded)

    @property
    def lists(self) -> list[list[int]]:
        """Pages of both sets per pindex (new lists: for reporting only)."""
        a, b = self.pcplists
        return [list(x) + list(y) for x, y in zip(a.lists, b.lists, strict=True)]

    @property
    def thp_migratetype(self) -> dict[int, int]:
        a, b = self.pcplists
        return {**a.thp_migratetype, **b.thp_migratetype}

    def pages(self) -> list[Page]:
        a, b = self.pcplists
        return a.pages() + b.pages() + list(self.stranded)

    @property
    def high(self) -> int:
        return self.lp.high

    @property
    def batch(self) -> int:
        return self.lp.batch

    @property
    def high_min(self) -> int:
        return self.lp.high_min

    @property
    def high_max(self) -> int:
        return self.lp.high_max

    @property
    def free_factor(self) -> int:
        return self.lp.free_factor

    # ------------------------------------------------------------ the drainer (holds drain_lock)
    def swap(self) -> None:
        """rcu_replace_pointer(pcp->lp, the spare): new fast paths use the empty set; ones already
        running finish on the old set, so it may not be touched until grace_period_elapsed()."""
        old, new = self.lp, self.spare
        if new.count or self.gp_pending:
            raise AssertionError(
                f"pcp cpu{self.cpu}: swap onto a spare set with {new.count} pages, gp_pending={self.gp_pending}"
            )
        # What the series keeps in per_cpu_pages, outside the sets (v6.7+ adds the tuning: pcp_high).
        new.high, new.batch, new.free_factor = old.high, old.batch, old.free_factor
        new.high_min, new.high_max, new.alloc_factor = old.high_min, old.high_max, old.alloc_factor
        new.free_count, new.flags = old.free_count, old.flags
        self.lp = new
        self.gp_pending = True
        self.swaps += 1

    def grace_period_elapsed(self) -> None:
        self.gp_pending = False

    def take_spare(self) -> list[Page]:
        """Every page of the spare set, whose grace period has elapsed, and the stranded pages."""
        if self.gp_pending:
            raise AssertionError(f"pcp cpu{self.cpu}: spare set taken before its grace period")
        spare = self.spare
        pages = self.stranded + spare.take_bulk(spare.count, 0)
        self.stranded = []
        return pages

    def discard(self) -> None:
        """Forget every page, on both sets and stranded (this CPU was declared dead and the zone took
        them back). Caller holds lock (the fast path's)."""
        for s in self.pcplists:
            s.discard()
        self.stranded = []
        self.gp_pending = False

    def strand(self, pages: Iterable[Page]) -> None:
        """Pages a drainer took and did not free come back, on no list the fast path uses."""
        self.stranded.extend(pages)


def rmqueue(zone: ZoneOps, pcp: RcuPerCpuPages, order: int, migratetype: int) -> int | None:
    return pcpmod.rmqueue(zone, pcp.lp, order, migratetype)


def free_unref_page(zone: ZoneOps, pcp: RcuPerCpuPages, pfn: int, order: int, migratetype: int) -> str:
    return pcp_free.free_unref_page(zone, pcp.lp, pfn, order, migratetype)


def free_unref_page_list(
    zone: ZoneOps, pcp: RcuPerCpuPages, pages: Iterable[Page], done: list[int] | None = None
) -> None:
    pcp_free.free_unref_page_list(zone, pcp.lp, pages, done)


def on_pcp_list(pcp: RcuPerCpuPages, pfn: int, order: int, migratetype: int) -> bool:
    return pcpmod.on_pcp_list(pcp.lp, pfn, order, migratetype)


def pageset_update(pcp: RcuPerCpuPages, high_min: int, high_max: int, batch: int) -> None:
    """pcp.pageset_update on both sets (the series keeps high and batch in per_cpu_pages)."""
    for s in pcp.pcplists:
        pcpmod.pageset_update(s, high_min, high_max, batch)


def decay_pcp_high(zone: ZoneOps, pcp: RcuPerCpuPages) -> bool:
    """vmstat_update's decay (v6.7+) runs on the CPU itself, so on the set in use, as a fast path."""
    return pcpmod.decay_pcp_high(zone, pcp.lp)


def drain_pages_zone(zone: ZoneOps, pcp: RcuPerCpuPages) -> int:
    """drain_local_pages on the CPU itself (a workqueue drain) frees the set in use, like any fast path:
    a remote swap meanwhile finds the old set emptied after its grace period."""
    return pcpmod.drain_pages_zone(zone, pcp.lp)


def check_pcp(pcp: RcuPerCpuPages) -> list[str]:
    """audit.check_pcp on each set, plus stranded pages that are also on a set."""
    errors = [f"set {i}: {e}" for i, s in enumerate(pcp.pcplists) for e in audit.check_pcp(s)]
    on_sets = {pfn for s in pcp.pcplists for pfn, _, _ in s.pages()}
    both = [pfn for pfn, _, _ in pcp.stranded if pfn in on_sets]
    if both:
        errors.append(f"cpu{pcp.cpu}: {len(both)} stranded pages also on a list set (first {both[:3]})")
    return errors
