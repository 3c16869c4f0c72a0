"""pcp->high, high_max and batch for every CPU of the zone, as the online count sets them; both engines'
coordinators hold one (coordinator.hotplug's reaper and coordinator.cpu_hotplug update it in wall time,
coordinator.virtual_members under virtual time).

Memory offline disables the pcp lists meanwhile (mm/page_alloc.c, v6.1, read in torvalds/linux at
dac22531bbd4): zone_pcp_disable takes pcp_batch_high_lock and sets high 0, batch 1; zone_pcp_update takes
the same mutex, so a CPU going away meanwhile recomputes nothing until zone_pcp_enable has restored
zone->pageset_high and pageset_batch and dropped it. Here that update is deferred to zone_pcp_enable
likewise. Deviation: a second offline's zone_pcp_disable waits for the first's enable in the kernel; here
both run with the lists disabled, and the last enable restores them.
"""

from node.mm import pcp_high


class Pageset:
    """pcp->high and pcp->batch for every CPU of the zone (zone_set_pageset_high_and_batch)."""

    def __init__(self, zone, batch: int, nr_cpus: int):
        self.zone = zone
        self.batch = batch
        self.nr_split_cpus = nr_cpus  # the CPUs both sizes split the zone among (zone_highsize's)
        self.high = zone.zone_highsize(batch, nr_cpus)
        self.disabled = 0  # offlines between zone_pcp_disable and zone_pcp_enable
        self._enabled_batch = batch  # zone->pageset_batch, what zone_pcp_enable gives back

    def zone_pcp_update(self, online: int) -> None:
        """zone_pcp_update: recompute high (and so high_max) for `online` CPUs (at least one); while the
        lists are disabled, only once zone_pcp_enable lets pcp_batch_high_lock go."""
        self.nr_split_cpus = max(online, 1)
        if not self.disabled:
            self.high = self.zone.zone_highsize(self.batch, self.nr_split_cpus)

    def zone_pcp_disable(self) -> None:
        """zone_pcp_disable's pageset: __zone_set_pageset_high_and_batch(zone, 0, 1) (v6.7+: high_min and
        high_max 0 too). Its drain, __drain_all_pages(zone, true), is the caller's (coordinator.contig_rule)."""
        if not self.disabled:
            self._enabled_batch = self.batch
        self.disabled += 1
        self.high, self.batch = 0, 1

    def zone_pcp_enable(self, online: int) -> None:
        """zone_pcp_enable: batch back, then high for the `online` CPUs (the update it held back)."""
        self.disabled -= 1
        if not self.disabled:
            self.batch = self._enabled_batch
            self.zone_pcp_update(online)

    @property
    def high_max(self) -> int:
        """pcp->high_max (v6.7+): zone_set_pageset_high_and_batch computes it with high_min, from the same
        online CPUs; 0 while zone_pcp_disable holds high at 0 (node.mm.pcp_high.pageset_high_max)."""
        return pcp_high.pageset_high_max(self.high, self.zone.managed_pages, self.batch, self.nr_split_cpus)
