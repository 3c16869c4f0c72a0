"""CPUs going away: the hotplug path (the pageset sizes that follow the online count are coordinator.pageset).

A node silent for longer than the dead timeout is gone as far as the zone is concerned
(coordinator.membership explains why its lease has run out by then). The reaper does
what the kernel's CPU-hotplug teardown does for the page allocator:
page_alloc_cpu_dead() -> drain_pages(cpu) returns the dead CPU's pcp pages to the zone,
here together with every page its tasks held (the process holding them is gone or
fenced), then zone_pcp_update() recomputes pcp->high for the CPUs that remain
(zone_highsize divides the low watermark among the online CPUs), and v6.7+'s high_max (a
zone_highsize of the managed pages over the same CPUs). Nodes learn the new
high, high_max and batch from their next heartbeat reply, as the kernel writes them with
WRITE_ONCE and the fast path reads them racily.
"""

import asyncio
import logging

from coordinator import reaper_rule
from coordinator.drain.control import Control
from coordinator.drain.wall import WallDriver
from coordinator.membership_rule import excused
from coordinator.pageset import Pageset

log = logging.getLogger(__name__)


class Reaper:
    """The wall driver of the reaper's round (coordinator.reaper_rule; its decisions are
    coordinator.membership_rule's overdue, reapable and excused; coordinator.virtual_members is the
    virtual driver). Declares overdue members dead and takes their pages back, one at a time, with
    no drain in flight (it holds pcpu_drain_mutex, as coordinator.registration does for a replaced
    CPU)."""

    def __init__(self, membership, zone_service, drainer, pageset: Pageset, on_dead=None):
        self.membership = membership
        self.zone = zone_service
        self.drainer = drainer
        self.pageset = pageset
        self.on_dead = on_dead  # called with (cpu, base pages reclaimed), for metrics
        self.deaths = 0

    async def run(self, interval: float) -> None:
        clock = self.membership.clock
        while True:
            await self.reap()  # may wait long for pcpu_drain_mutex: that is no stall
            before = clock()
            await asyncio.sleep(interval)
            late = clock() - before - interval
            if excused(late, interval, self.membership.failure_timeout):
                self.membership.excuse(late)

    async def reap(self) -> list[int]:
        """Declare every overdue member dead (coordinator.reaper_rule's round); returns their CPUs."""
        control = Control(self.membership, self.membership.clock)
        control.reaper = self  # the round's DeclareDead is this reaper's kill
        return await WallDriver(control).run(reaper_rule.reap(self.membership, self.drainer.pcpu_drain_mutex))

    async def kill(self, member) -> int:
        """Declare `member` dead and take its pages back (page_alloc_cpu_dead), then recompute
        high for the CPUs left (zone_pcp_update). Caller holds pcpu_drain_mutex."""
        self.membership.declare_dead(member)
        self.pageset.zone_pcp_update(self.membership.alive())  # one step with the death, as GetState sees it
        pages = await self.zone.locked(self.zone.cpu_dead, member.cpu)
        self.deaths += 1
        log.warning(
            "cpu%d declared dead: %d base pages back to the zone, high now %d", member.cpu, pages, self.pageset.high
        )
        if self.on_dead is not None:
            self.on_dead(member.cpu, pages)
        return pages
