"""pcp->high, high_max and batch for every CPU of the zone, as the online count sets them; both engines'
coordinators hold one (coordinator.hotplug's reaper and coordinator.cpu_hotplug update it in wall time,
coordinator.virtual_members under virtual time).
"""

from node.mm import pcp_high


class Pageset:
    """pcp->high and pcp->batch for every CPU of the zone (zone_set_pageset_high_and_batch)."""

    def __init__(self, zone, batch: int, nr_cpus: int):
        self.zone = zone
        self.batch = batch
        self.nr_split_cpus = nr_cpus  # the CPUs both sizes split the zone among (zone_highsize's)
        self.high = zone.zone_highsize(batch, nr_cpus)

    def zone_pcp_update(self, online: int) -> None:
        """zone_pcp_update: recompute high (and so high_max) for `online` CPUs (at least one)."""
        self.nr_split_cpus = max(online, 1)
        self.high = self.zone.zone_highsize(self.batch, self.nr_split_cpus)

    @property
    def high_max(self) -> int:
        """pcp->high_max (v6.7+): zone_set_pageset_high_and_batch computes it with high_min, from the same
        online CPUs; 0 while zone_pcp_disable holds high at 0 (node.mm.pcp_high.pageset_high_max)."""
        return pcp_high.pageset_high_max(self.high, self.zone.managed_pages, self.batch, self.nr_split_cpus)
