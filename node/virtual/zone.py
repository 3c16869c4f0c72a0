"""The zone as a virtual CPU sees it: node.mm's Zone in this process, over the simulated network.

The wall engine's CPU sends each zone operation to the coordinator (node.zone_client) and blocks on
the reply; the coordinator runs the operations one at a time in arrival order under zone->lock, each
holding it for CostModel.zone_hold (coordinator.zone_service). Here the same happens in virtual time:
the CPU's fiber waits one network latency (node.sim.net) for its request to arrive, queues FIFO for
zone->lock (ZoneLock), applies the operation to the shared node.mm.zone.Zone, holds the lock for the
modeled cost, and waits one more latency for the reply. The pcp code in node.mm calls this object
through ZoneOps exactly as it calls the gRPC client.

Not yet here (docs/engine.md, next steps): the zone service's own rules (ownership records,
idempotency slots, refusal at the min watermark, ZONE_RECLAIM_ACTIVE updates) live in
coordinator.zone_service mixed with its thread and sleeps; until they are a rule module both
drivers call, this zone never refuses, so `watermark_failed` stays False and no CPU enters
direct reclaim.
"""

import collections
from collections.abc import Callable
from typing import TypeVar

from node.mm.constants import Page
from node.mm.zone import Zone
from node.shared.timebase import CostModel
from node.sim.net import SimNetwork
from node.virtual.cpu import VirtualCpu

R = TypeVar("R")


class ZoneLock:
    """zone->lock in virtual time: one holder, waiters served in the order they arrived."""

    def __init__(self) -> None:
        self.holder: VirtualCpu | None = None
        self.waiters: collections.deque[VirtualCpu] = collections.deque()
        self.acquisitions = 0
        self.contended = 0

    def acquire(self, cpu: VirtualCpu) -> None:
        if self.holder is not None:
            self.contended += 1
            self.waiters.append(cpu)
            cpu.wait_resumed()  # `release` resumes it as the holder
        else:
            self.holder = cpu
        self.acquisitions += 1

    def release(self) -> None:
        if self.waiters:
            self.holder = self.waiters.popleft()
            self.holder.resume_soon()
        else:
            self.holder = None


class SharedZone:
    """The one zone every virtual CPU reaches: the model, its lock and its costs (in kernel time)."""

    def __init__(self, zone: Zone, cost: CostModel, net: SimNetwork) -> None:
        self.zone = zone
        self.cost = cost
        self.net = net
        self.lock = ZoneLock()


class LocalZone:
    """One CPU's ZoneOps (node.mm.pcp.ZoneOps), like node.zone_client.ZoneClient is one node's."""

    def __init__(self, shared: SharedZone, cpu: VirtualCpu) -> None:
        self.shared = shared
        self.cpu = cpu
        self.watermark_failed = False  # never: see the module docstring
        self.calls = 0
        self._out = (cpu.cpu, "zone")  # the node's zone stream, one link each way
        self._back = ("zone", cpu.cpu)

    @property
    def reclaim_active(self) -> bool:
        return self.shared.zone.reclaim_active

    def _round_trip(self, op: Callable[[], R], pages: Callable[[R], int]) -> R:
        """op() applied under zone->lock one network latency after now, holding the lock for the cost
        of moving pages(result) pages; returns once the reply is back, one more latency later."""
        shared, cpu = self.shared, self.cpu
        self.calls += 1
        cpu.wait_until(shared.net.arrival(self._out))
        shared.lock.acquire(cpu)
        try:
            result = op()
            cpu.wait_until(cpu.clock() + shared.cost.zone_hold(pages(result)))
        finally:
            shared.lock.release()
        cpu.wait_until(shared.net.arrival(self._back))
        return result

    def rmqueue_bulk(self, order: int, count: int, migratetype: int) -> list[int]:
        zone = self.shared.zone
        return self._round_trip(lambda: zone.rmqueue_bulk(order, count, migratetype), len)

    def rmqueue_buddy(self, order: int, migratetype: int) -> int | None:
        zone = self.shared.zone
        return self._round_trip(lambda: zone.rmqueue_buddy(order, migratetype), lambda pfn: pfn is not None)

    def free_pcppages_bulk(self, pages: list[Page]) -> None:
        if pages:
            batch = list(pages)
            zone = self.shared.zone
            self._round_trip(lambda: zone.free_pcppages_bulk(batch), lambda _: len(batch))

    def free_one_page(self, pfn: int, order: int, migratetype: int) -> None:
        self.free_pcppages_bulk([(pfn, order, migratetype)])
