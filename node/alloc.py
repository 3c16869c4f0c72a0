"""The page allocator entry points a task on this CPU calls: alloc_pages / free_pages.

Wraps the pure model's rmqueue / free_unref_page / free_unref_page_list with what
sits around them in mm/page_alloc.c's __alloc_pages: when the zone refuses for want
of free pages, the allocating task enters direct reclaim, which (having "made
progress") drains every CPU's pcp lists once (drain_all_pages, a global drain that is
skipped if one is already running) and retries; a second refusal is an allocation
failure. The drain is a synchronous call on this CPU's thread, as direct reclaim runs
in the allocating task's context; while it waits, this CPU's kworker may run, so a
workqueue drain that includes this CPU cannot deadlock.

Also keeps the set of pages this CPU's tasks hold (for the audit), the time lost
to pcp lock contention (a trylock that failed and sent the task to the buddy) and the
time its refills and frees queued for zone->lock behind other CPUs.

A page is freed with its pageblock's migratetype at free time, not the type it was
allocated with: v6.1 free_unref_page_prepare() does `migratetype =
get_pfnblock_migratetype(page, pfn); set_pcppage_migratetype(page, migratetype)`, and
free_unref_page() / free_unref_page_list() pick the pcp list from that (ISOLATE goes to
the buddy, HIGHATOMIC to the MOVABLE list: node.mm.pcp). A block stolen by another type
since the allocation (steal_suitable_fallback) takes the page back to the new type's
list. The in-process Zone (pure-model tests, the bench, the virtual engine) reads its own
bitmap; the live node's ZoneClient reads its copy of the coordinator's, as new as its last
zone reply (node.zone_client). Where there is no copy (a coordinator that sends none), the
page keeps its allocation-time type.

Fencing: once this CPU's membership lease has run out (`fenced()`), every allocation
fails without touching the pcp or the zone: the coordinator may take this CPU's pages
back at any moment, and a page it reuses must never be handed out here too. Frees go
on (they only move pages this CPU still holds, and the zone refuses them from a CPU it
declared dead). The lease is read again once the page is in hand: an allocation that
waited for a refill's answer may have waited past the lease (the process SIGSTOPped with
the refill in flight, the zone's answer held in its socket), and the coordinator may have
declared this CPU dead and handed the refill's pages to another CPU meanwhile. Such a page is
not handed out but freed again at once (sweep seed 1127, 2026-12-06: the page went to the
task, while another CPU held it).
"""

import contextlib
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from node.api.v1 import pcpsim_pb2 as pb
from node.eventlog import EventLog
from node.mm import profile as profiles
from node.mm.constants import Page
from node.mm.lock import spin_is_locked
from node.mm.pcp import ZoneOps


class PcpOps(Protocol):
    """A pcp design's entry points: a module (node.mm.pcp, node.mm.pcp_rcu) or a kernel profile's
    (node.mm.profile.pcp_ops). `pcp` is Any: each design takes its own pcp type, a pairing the
    runtime makes (node.runtime) and a protocol cannot express without making every caller generic."""

    def rmqueue(self, zone: ZoneOps, pcp: Any, order: int, migratetype: int) -> int | None: ...

    def free_unref_page(self, zone: ZoneOps, pcp: Any, pfn: int, order: int, migratetype: int) -> str: ...

    def free_unref_page_list(
        self, zone: ZoneOps, pcp: Any, pages: Iterable[Page], done: list[int] | None = None
    ) -> None: ...

    def on_pcp_list(self, pcp: Any, pfn: int, order: int, migratetype: int) -> bool: ...

    def drain_pages_zone(self, zone: ZoneOps, pcp: Any) -> int: ...

    def pageset_update(self, pcp: Any, high_min: int, high_max: int, batch: int) -> None: ...

    def decay_pcp_high(self, zone: ZoneOps, pcp: Any) -> bool: ...

    def check_pcp(self, pcp: Any) -> list[str]: ...


class PageAllocator:
    def __init__(
        self,
        cpu,
        pcp,
        zone,
        coordinator_stub,
        reclaim_timeout: float = 30.0,
        fenced=None,
        faults=None,
        ops: PcpOps | None = None,
        transfer_log=None,
    ):
        """`ops`: the pcp design's rmqueue / free_unref_page / free_unref_page_list (a kernel profile's,
        node.mm.profile.pcp_ops; by default DEFAULT_KERNEL's), or node.mm.pcp_rcu for list sets behind
        an RCU pointer."""
        self.cpu = cpu
        self.faults = faults  # node.shared.faults.Faults: OUT faults on the direct-reclaim drain request
        self.fenced = fenced or (lambda: False)
        self.fenced_refusals = 0
        self.pcp = pcp
        self.ops = ops if ops is not None else profiles.pcp_ops(profiles.get(profiles.DEFAULT_KERNEL))
        self.zone = zone
        self._stub = coordinator_stub
        self.reclaim_timeout = reclaim_timeout
        self.allocated: dict[int, tuple[int, int]] = {}  # pfn -> (order, migratetype)
        self.allocs = 0
        self.frees = 0
        self.alloc_failures = 0
        self.reclaims = 0
        self.lock_contention_s = 0.0  # extra time spent in buddy fallbacks after a failed trylock
        # Time this CPU's refills and frees queued for zone->lock behind other CPUs (the zone's
        # `lock_wait_s`), outside those fallbacks, which count whole above.
        self.zone_lock_wait_s = 0.0
        # Each of those stretches, (start, end, "alloc" | "free" | "free_list"), for the timeline of a
        # drain window; "free_list" is a batched free that waited for the pcp lock (v6.0/6.1's spin).
        self.fallbacks = EventLog()
        self.transfer_log = transfer_log  # node.shared.transfer_log.TransferLog, or None

    def alloc_pages(self, order: int, migratetype: int) -> int | None:
        # The checker compares allocations with the time this CPU's pages were taken back:
        # the time of the lease check is when this allocation was allowed.
        checked_at = self.transfer_log.clock() if self.transfer_log is not None else 0.0
        if self.fenced():
            self.fenced_refusals += 1
            self.alloc_failures += 1
            return None
        pfn = self._rmqueue(order, migratetype)
        if pfn is None and self.zone.watermark_failed:
            self.reclaims += 1
            self._direct_reclaim_drain()
            pfn = self._rmqueue(order, migratetype)
        if pfn is None:
            self.alloc_failures += 1
            return None
        if self.fenced():
            # The lease ran out while this allocation waited (see the header). The page goes back
            # as a free takes it: to the pcp list, or to the zone, which refuses it from a CPU it
            # declared dead (ZoneRefused, as it refuses that CPU's refills; the CPU then discards
            # all it holds, and this page is the zone's already).
            self.fenced_refusals += 1
            self.alloc_failures += 1
            self.ops.free_unref_page(self.zone, self.pcp, pfn, order, self._free_migratetype(pfn, migratetype))
            return None
        self.allocs += 1
        self.allocated[pfn] = (order, migratetype)
        if self.transfer_log is not None:
            self.transfer_log.write("alloc", t=checked_at, pfn=pfn, order=order)
        return pfn

    def _free_migratetype(self, pfn: int, migratetype: int) -> int:
        """get_pfnblock_migratetype(): the pageblock's type now (read without zone->lock, as the
        kernel does), or the allocation-time type where the zone cannot say (see the header)."""
        lookup = getattr(self.zone, "get_pageblock_migratetype", None)
        block_mt = None if lookup is None else lookup(pfn)
        return migratetype if block_mt is None else block_mt

    def free_pages(self, pfn: int) -> None:
        order, allocated_mt = self.allocated.pop(pfn)
        migratetype = self._free_migratetype(pfn, allocated_mt)
        stats = self.pcp.stats
        before = stats.trylock_fail_free
        t0, waited = self.cpu.clock(), self.zone.lock_wait_s
        try:
            self.ops.free_unref_page(self.zone, self.pcp, pfn, order, migratetype)
        except BaseException:
            # The zone did not take it: unless it is on the pcp list (a flush failed after the
            # page was added, and the flush put its pages back), the task still holds it.
            if not self.ops.on_pcp_list(self.pcp, pfn, order, migratetype):
                self.allocated[pfn] = (order, allocated_mt)
            raise
        if stats.trylock_fail_free != before:
            self._fell_back(t0, "free")
        else:
            self.zone_lock_wait_s += self.zone.lock_wait_s - waited
        self.frees += 1

    def free_pages_list(self, pfns: list[int]) -> None:
        """free_unref_page_list: a batched free that spins on the pcp lock (v6.0/6.1)."""
        held = {pfn: self.allocated.pop(pfn) for pfn in pfns}
        pages = [(pfn, order, self._free_migratetype(pfn, mt)) for pfn, (order, mt) in held.items()]
        t0, waited = self.cpu.clock(), self.zone.lock_wait_s
        locked = spin_is_locked(self.pcp.lock)
        done: list[int] = []
        try:
            self.ops.free_unref_page_list(self.zone, self.pcp, pages, done)
        except BaseException:
            # The zone did not answer half-way: the pages not yet freed or on a list are still held.
            freed = set(done)
            for pfn, order_mt in held.items():
                if pfn not in freed:
                    self.allocated[pfn] = order_mt
            raise
        if locked:
            self._fell_back(t0, "free_list")
        else:
            self.zone_lock_wait_s += self.zone.lock_wait_s - waited
        self.frees += len(pages)

    def discard(self) -> None:
        """Forget every page held (this CPU was declared dead: they are the zone's)."""
        self.allocated.clear()

    def pages(self) -> list[tuple[int, int, int]]:
        # dict.copy() runs without a thread switch: a Snapshot of a running CPU reads this
        # from the interconnect thread while the CPU thread allocates and frees.
        return [(pfn, order, mt) for pfn, (order, mt) in self.allocated.copy().items()]

    def _rmqueue(self, order: int, migratetype: int) -> int | None:
        stats = self.pcp.stats
        before = stats.trylock_fail_alloc
        t0, waited = self.cpu.clock(), self.zone.lock_wait_s
        pfn = self.ops.rmqueue(self.zone, self.pcp, order, migratetype)
        if stats.trylock_fail_alloc != before:
            self._fell_back(t0, "alloc")
        else:
            self.zone_lock_wait_s += self.zone.lock_wait_s - waited
        return pfn

    def _fell_back(self, t0: float, kind: str) -> None:
        t1 = self.cpu.clock()
        self.lock_contention_s += t1 - t0
        self.fallbacks.add(t0, t1, kind)

    def _direct_reclaim_drain(self) -> None:
        if self.faults is not None and not self.faults.outbound_sync_sent("DrainAllPages", self.reclaim_timeout):
            return  # the request was lost or failed: the retry fails on its own
        done = threading.Event()
        future = self._stub.DrainAllPages.future(
            pb.DrainAllRequest(trigger=pb.TRIGGER_RECLAIM), timeout=self.reclaim_timeout
        )

        def answered(_future) -> None:
            done.set()
            self.cpu.notify()

        future.add_done_callback(answered)
        self.cpu.wait_for(done, self.reclaim_timeout + 1.0)
        with contextlib.suppress(Exception):  # a failed drain leaves the retry to fail on its own
            future.result(timeout=0)
