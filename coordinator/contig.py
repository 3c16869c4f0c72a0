"""The drain triggers that take a PFN range in the coordinator process: alloc_contig_range (CMA, gigantic
pages), memory offline and the range's release.

The rules (isolation, the drains and retries, taking the range, zone_pcp_disable and the wait for every
CPU to apply it, keeping the range in the store, `retake` at start) are coordinator.contig_rule's, whose
docstring says what each models of the kernel; this class runs them on the drainer's wall driver
(coordinator.drain.wall: zone->lock is the zone service's thread, sleeps are asyncio's), with the
coordinator's store (coordinator.store: the state directory's file).
"""

from coordinator import contig_rule
from coordinator.contig_rule import ContigResult, retake

__all__ = ["ContigRanges", "retake"]  # retake: coordinator.__main__ takes the stored ranges at start


class ContigRanges:
    def __init__(self, zone_service, drainer, clock, pageset, membership, store):
        """`drainer`: coordinator.drain.drainer.Drainer (its driver, pcpu_drain_mutex, default strategy
        and history); `pageset`: coordinator.pageset.Pageset, the high and batch every CPU is told;
        `store`: coordinator.store.Store, where each taken range is kept."""
        self.drainer = drainer
        self.rules = contig_rule.Contig(
            zone_service.zone,
            clock,
            membership,
            drainer,
            drainer.pcpu_drain_mutex,
            drainer.default_strategy,
            pageset,
            store,
            drainer.record,
        )

    async def alloc_contig_range(self, start_pfn: int, nr_pages: int, timeout_ms: int) -> ContigResult:
        program = contig_rule.alloc_contig_range(self.rules, start_pfn, nr_pages, timeout_ms)
        return await self.drainer.driver.run(program)

    async def offline_pages(self, start_pfn: int, nr_pages: int, timeout_ms: int) -> ContigResult:
        return await self.drainer.driver.run(contig_rule.offline_pages(self.rules, start_pfn, nr_pages, timeout_ms))

    async def release(self, start_pfn: int, nr_pages: int) -> str:
        return await self.drainer.driver.run(contig_rule.release(self.rules, start_pfn, nr_pages))
