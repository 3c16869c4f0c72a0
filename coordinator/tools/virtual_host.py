"""One CPU's process as its membership agent and the whole-cluster driver see it (node.virtual.agent.Host):
node.runtime.NodeRuntime's membership half over a node.virtual.run.VirtualCluster's parts at the CPU's
index, which a restart replaces (`attach` joins the new ones to the host's lease and transfer log)."""

import math
from collections.abc import Callable
from typing import Any

from node.cpu import MEMBERSHIP
from node.epoch_rule import EpochRule, stale_request
from node.virtual.run import VirtualCluster


class NodeHost:
    """One CPU as its agent sees it (node.virtual.agent.Host), node.runtime.NodeRuntime's membership
    half: its pcp count and pages, parking, the pageset, the lease that fences its allocations."""

    def __init__(self, cluster: VirtualCluster, cpu: int, rule_clock: Callable[[], float], fencing: bool) -> None:
        self.cluster = cluster
        self.cpu = cpu
        self.rule_clock = rule_clock
        self.fencing = fencing  # False: the node's --unsafe-skip-fencing (tests only)
        self.lease_until = math.inf
        self.epoch: EpochRule | None = None  # its agent's: the coordinator epochs it has seen
        self._transfer_log: Any = None  # node.shared.transfer_log.TransferLog's kind, or None
        self.attach()

    def attach(self) -> None:
        """Join the CPU's process (the cluster's parts at its index: a restart builds new ones) to this
        host: the lease fences its allocations, its parts write the transfer log."""
        c, n = self.cluster, self.cpu
        c.allocs[n].fenced = lambda: self.rule_clock() > self.lease_until
        if not self.fencing:
            c.drains[n].fencing = False  # type: ignore[union-attr]
        self._wire(self._transfer_log)

    def detach(self) -> None:
        """The process was killed: what its unwinding stack and its drains' leases still do writes nothing."""
        self._wire(None)

    def _wire(self, log: Any) -> None:
        c, n = self.cluster, self.cpu
        c.allocs[n].transfer_log = c.zones[n].transfer_log = c.drains[n].transfer_log = log

    @property
    def transfer_log(self) -> Any:
        return self._transfer_log

    @transfer_log.setter
    def transfer_log(self, log: Any) -> None:
        self._transfer_log = log
        self._wire(log)

    @property
    def parked(self) -> bool:
        return self.cluster.cpus[self.cpu].paused

    def pcp_count(self) -> int:
        return self.cluster.pcps[self.cpu].count

    def holdings(self) -> list[tuple[int, int, int]]:
        c, n = self.cluster, self.cpu
        return c.pcps[n].pages() + c.allocs[n].pages() + c.drains[n].inflight()

    def discard(self) -> None:
        """Declared dead: forget every page (node.runtime.NodeRuntime.discard)."""
        c, n = self.cluster, self.cpu
        if self.transfer_log is not None:
            self.transfer_log.write("discard")  # with the incarnation that held them
        c.drains[n].discard()
        c.pcps[n].discard()
        c.allocs[n].discard()
        for source in c.cpus[n].sources:
            held = getattr(source, "held", None)
            if held is not None:
                held.clear()

    def park(self, parked: bool) -> None:
        self.cluster.cpus[self.cpu].set_paused(parked, by=MEMBERSHIP)

    def when_parked(self, fn: Callable[[], object]) -> None:
        self.cluster.cpus[self.cpu].when_parked(fn)

    def fence(self, epoch: int) -> str | None:
        """node.epoch's check of a coordinator's request: why it is refused, or None."""
        if self.epoch is None or self.epoch.request(epoch) is None:
            return None
        return stale_request(epoch, self.epoch.highest)

    def zone_heard(self, free_pages: int, reclaim_active: bool, below_high: bool) -> None:
        """What a heartbeat reply says of the zone, which the CPU keeps until its next zone reply (as
        node.agent sets the wall node's ZoneClient): its free pages, ZONE_RECLAIM_ACTIVE, which the
        pcp free path reads (a flush of the whole batch while reclaim is active), and ZONE_BELOW_HIGH,
        which v6.7+'s pcp high auto-tuning reads."""
        zone = self.cluster.zones[self.cpu]
        zone.free_pages, zone.reclaim_active, zone.below_high = free_pages, reclaim_active, below_high

    def set_pageset(self, high: int, batch: int, high_max: int) -> None:
        """pageset_update, as node.runtime.NodeRuntime.set_pageset."""
        self.cluster.ops.pageset_update(self.cluster.pcps[self.cpu], high, high_max, batch)

    @property
    def incarnation(self) -> str:
        return self.cluster.zones[self.cpu].incarnation

    @incarnation.setter
    def incarnation(self, value: str) -> None:
        self.cluster.zones[self.cpu].incarnation = value  # the zone's requests carry it
        if self.transfer_log is not None:
            self.transfer_log.fixed["inc"] = value
