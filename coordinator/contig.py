"""The drain triggers that take a PFN range: alloc_contig_range (CMA, gigantic pages) and memory offline.

alloc_contig_range (mm/page_alloc.c, v6.1), as modelled:
  start_isolate_page_range  -> the range's pageblocks become MIGRATE_ISOLATE (node.mm.isolation)
  drain_all_pages(zone)     -> a zone-specific drain: it waits for pcpu_drain_mutex (never skipped), so
                               pages of the range cached on pcp lists return to the buddy's isolate lists
  test_pages_isolated       -> every page free? If not, the kernel migrates the pages still in use; here
                               their holders must free them: drain again and retest until `timeout`
  isolate_freepages_range   -> the range leaves the buddy, recorded as owner CMA (audited)
  undo_isolate_page_range

offline_pages (mm/memory_hotplug.c, v6.1) differs in its drain: zone_pcp_disable first sets every CPU's
pcp to high=0, batch=1 (each free then goes straight to the buddy, each refill takes a single page) and
calls __drain_all_pages(zone, force_all_cpus=true), so every CPU is drained whatever its count; after the
range is out of the buddy (owner OFFLINE), zone_pcp_enable restores batch and recomputes high. The
pageset reaches the nodes with their heartbeat replies (coordinator.hotplug): the drain starts once
every online CPU has sent a heartbeat after the one whose reply carried high=0, so each has applied it.
Deviation: the kernel's pcp_batch_high_lock keeps zone_pcp_update from running meanwhile; here a CPU
declared dead during an offline recomputes high from batch 1 until zone_pcp_enable.

ReleaseRange gives a CMA range (cma_release) or an offline one (online_pages) back to the buddy.

No node knows these ranges, so each is written to the coordinator's store (coordinator.store) before the
RPC that took or released it answers, and a restarted coordinator takes them out of its new zone again
(`retake`) before any node's holdings are claimed: a forgotten range would be handed out to the CPUs.

Every drain these run is an ordinary drain_all_pages record with its own trigger, by the cluster's default
strategy, so the reports see it like any other.
"""

import asyncio
from dataclasses import dataclass, field

from coordinator.store import TakenRange
from coordinator.zone_service import CMA, OFFLINE, OWNER_KINDS
from node.api.errors import FailedPrecondition, InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import isolation
from node.mm.buddy import PageStateError

RETRY_INTERVAL_S = 0.05
DEFAULT_TIMEOUT_MS = 5000
MAX_TIMEOUT_MS = 600_000


@dataclass
class ContigResult:
    ok: bool
    start_pfn: int
    nr_pages: int
    duration_s: float = 0.0
    drains: list = field(default_factory=list)  # DrainRecord
    attempts: int = 0
    busy_pfn: int = 0
    error: str = ""

    def to_pb(self) -> pb.ContigRangeReply:
        return pb.ContigRangeReply(
            ok=self.ok,
            start_pfn=self.start_pfn,
            nr_pages=self.nr_pages,
            duration_s=self.duration_s,
            drains=[d.to_pb() for d in self.drains],
            attempts=self.attempts,
            busy_pfn=self.busy_pfn,
            error=self.error,
        )


def retake(zone_service, ranges: list[TakenRange]) -> int:
    """At start, before recovery: the stored ranges out of a fresh zone again, recorded as their
    owners'. Each must be wholly free (the zone was just built, with only `preallocate`'s blocks taken,
    the same as when the range was taken); if one is not, the store does not describe this zone (another
    --zone-mb or --zone-used): an error, never a range silently left out. Returns base pages taken."""
    owners = {name: kind for kind, name in OWNER_KINDS.items()}
    zone = zone_service.zone
    taken = 0
    for r in ranges:
        try:
            saved = isolation.start_isolate_page_range(zone, r.start, r.nr_pages)
        except PageStateError as err:
            raise ValueError(f"stored {r.owner} range [{r.start}, {r.start + r.nr_pages}): {err}") from None
        try:
            blocks, busy, holder = zone_service.take_range(owners[r.owner], r.start, r.nr_pages)
        finally:
            isolation.undo_isolate_page_range(zone, r.start, r.nr_pages, saved)
        if blocks is None:
            raise ValueError(
                f"stored {r.owner} range [{r.start}, {r.start + r.nr_pages}): pfn {busy} is not free in the new "
                f"zone (held by {OWNER_KINDS.get(holder, holder)}): was the zone's size or --zone-used changed?"
            )
        taken += r.nr_pages
    return taken


class ContigRanges:
    def __init__(self, zone_service, drainer, clock, pageset, membership, store):
        """`pageset`: coordinator.hotplug.Pageset, the high and batch every CPU is told;
        `store`: coordinator.store.Store, where each taken range is kept."""
        self.store = store
        self.zone = zone_service
        self.drainer = drainer
        self.clock = clock
        self.pageset = pageset
        self.membership = membership

    def resolve(self, start_pfn: int, nr_pages: int, timeout_ms: int) -> tuple[int, int, float]:
        """Validate a request; start_pfn 0 means the last nr_pages of the zone, timeout_ms 0 the default."""
        zone = self.zone.zone
        timeout_ms = timeout_ms or DEFAULT_TIMEOUT_MS
        if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
            raise InvalidArgument(f"timeout_ms {timeout_ms} out of range 1..{MAX_TIMEOUT_MS}")
        if start_pfn == 0:
            start_pfn = zone.end_pfn - nr_pages
        try:
            isolation.check_range(zone, start_pfn, nr_pages)
        except PageStateError as err:
            raise InvalidArgument(str(err)) from None
        return start_pfn, nr_pages, timeout_ms / 1000.0

    async def alloc_contig_range(self, start_pfn: int, nr_pages: int, timeout_ms: int) -> ContigResult:
        start, nr, timeout = self.resolve(start_pfn, nr_pages, timeout_ms)
        return await self._take(CMA, pb.TRIGGER_ALLOC_CONTIG, start, nr, timeout, force_all_cpus=False)

    async def offline_pages(self, start_pfn: int, nr_pages: int, timeout_ms: int) -> ContigResult:
        start, nr, timeout = self.resolve(start_pfn, nr_pages, timeout_ms)
        pageset = self.pageset
        batch = pageset.batch
        pageset.high, pageset.batch = 0, 1  # zone_pcp_disable: __zone_set_pageset_high_and_batch(zone, 0, 1)
        try:
            await self._pageset_applied()
            return await self._take(OFFLINE, pb.TRIGGER_MEMORY_OFFLINE, start, nr, timeout, force_all_cpus=True)
        finally:
            pageset.batch = batch  # zone_pcp_enable
            pageset.zone_pcp_update(self.membership.alive())

    async def _pageset_applied(self) -> None:
        """Wait until every online CPU has heartbeated twice since now: the first reply carried the
        pageset, and a node applies a reply before it sends its next heartbeat."""
        for _ in range(2):
            since = self.clock()
            deadline = since + 2 * self.membership.failure_timeout
            while any(m.last_heartbeat <= since for m in self.membership.online()):
                if self.clock() > deadline:
                    raise FailedPrecondition("the CPUs did not acknowledge the pageset change in time")
                await asyncio.sleep(0.01)

    async def release(self, start_pfn: int, nr_pages: int) -> str:
        try:
            owner = await self.zone.locked(self.zone.release_range, start_pfn, nr_pages)
        except PageStateError as err:
            raise InvalidArgument(str(err)) from None
        # After the zone: a crash in between leaves the range stored, so a restart takes it again
        # (pages withheld until it is released again), never hands out a range still in use.
        self.store.remove(start_pfn, nr_pages)
        return OWNER_KINDS[owner]

    async def _take(
        self, owner: int, trigger: int, start: int, nr: int, timeout: float, force_all_cpus: bool
    ) -> ContigResult:
        result = ContigResult(False, start, nr)
        t0 = self.clock()
        zs = self.zone
        try:
            saved = await zs.locked(isolation.start_isolate_page_range, zs.zone, start, nr)
        except PageStateError as err:  # a pageblock of it is already isolated: -EBUSY
            raise FailedPrecondition(str(err)) from None
        try:
            deadline = t0 + timeout
            while True:
                result.drains.append(await self.drainer.drain_all_pages(force_all_cpus=force_all_cpus, trigger=trigger))
                result.attempts += 1
                blocks, busy, holder = await zs.locked(zs.take_range, owner, start, nr)
                if blocks is not None:
                    await self._keep(owner, start, nr)
                    result.ok = True
                    break
                result.busy_pfn = busy
                if self.clock() >= deadline:
                    who = OWNER_KINDS.get(holder, f"cpu {holder}") if holder is not None else "nobody"
                    result.error = (
                        f"pfn {busy} is still in use (held by {who}) after {result.attempts} "
                        f"attempts in {timeout:g} s; pages are not migrated here"
                    )
                    break
                await asyncio.sleep(RETRY_INTERVAL_S)
        finally:
            await zs.locked(isolation.undo_isolate_page_range, zs.zone, start, nr, saved)
        result.duration_s = self.clock() - t0
        return result

    async def _keep(self, owner: int, start: int, nr: int) -> None:
        """The range is taken: make it durable before the RPC answers. If it cannot be, the range goes
        back to the buddy and the call fails, so the zone and the store never disagree."""
        try:
            self.store.add(start, nr, OWNER_KINDS[owner])
        except Exception:
            await self.zone.locked(self.zone.release_range, start, nr)
            raise
