"""A CPU's process joining the cluster: what registering changes besides membership.

- A retried registration of the same process (same incarnation) changes nothing but
  its address.
- A CPU whose previous process is gone or was declared dead gets its pages back to the
  zone first, as the kernel's CPU-hotplug path does (page_alloc_cpu_dead).
- While the coordinator recovers (coordinator.recovery), a node that lost its
  coordinator registers with `resume` and its holdings, which the zone claims back for it;
  holdings the zone refuses make the node start afresh.
- pcp->high follows the new count of online CPUs (zone_pcp_update).
No drain may be in flight while a CPU's pages change hands: all of it runs under
pcpu_drain_mutex. The caller validates the request first (Membership.check_registration),
so a refused registration changes nothing. The decision is coordinator.membership_rule.admit;
this is its wall driver.
"""

import logging

from coordinator.membership_rule import admit
from node.api.errors import FailedPrecondition

log = logging.getLogger(__name__)


class Registration:
    def __init__(self, membership, zone_service, drainer, pageset, recovery):
        self.membership = membership
        self.zone = zone_service
        self.drainer = drainer
        self.pageset = pageset  # coordinator.hotplug.Pageset
        self.recovery = recovery  # coordinator.recovery.Recovery

    async def register(
        self, cpu: int, address: str, role: int, metrics_address: str, incarnation: str, resume: bool, holdings: list
    ) -> tuple[int, bool]:
        """Register `cpu`'s process; returns (base pages of a previous process reclaimed,
        whether its holdings were claimed for it)."""
        m = self.membership
        reclaimed = 0
        async with self.drainer.pcpu_drain_mutex:
            old = m.members.get(cpu)
            admission = admit(old, incarnation, resume, lambda: self.recovery.active)
            if admission.retry:
                assert old is not None
                resumed = old.resumed
            else:
                if admission.reclaim:
                    reclaimed = await self.zone.locked(self.zone.cpu_dead, cpu)
                    log.info(
                        "cpu%d replaced: %d base pages of its previous process back to the zone (page_alloc_cpu_dead)",
                        cpu,
                        reclaimed,
                    )
                resumed = False
                if admission.claim:
                    resumed = await self._claim(cpu, holdings)
            member = m.register(cpu, address, role, metrics_address, incarnation)
            member.resumed = resumed
            self.pageset.zone_pcp_update(m.alive())
        return reclaimed, resumed

    async def _claim(self, cpu: int, holdings: list) -> bool:
        try:
            pages = await self.zone.locked(self.zone.claim, cpu, holdings)
        except FailedPrecondition as err:
            log.warning("recovery: cpu%d's holdings refused, it starts afresh: %s", cpu, err)
            return False
        log.info("recovery: cpu%d resumed holding %d base pages", cpu, pages)
        return True
