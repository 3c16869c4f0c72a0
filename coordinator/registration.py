"""A CPU's process joining the cluster: what registering changes besides membership.

- A retried registration of the same process (same incarnation) changes nothing but
  its address; one from the same address is answered without waiting for a drain
  (coordinator.registration_rule.register says why).
- A CPU whose previous process is gone or was declared dead gets its pages back to the
  zone first, as the kernel's CPU-hotplug path does (page_alloc_cpu_dead).
- While the coordinator recovers (coordinator.recovery), a node that lost its
  coordinator registers with `resume` and its holdings, which the zone claims back for it;
  holdings the zone refuses make the node start afresh.
- pcp->high follows the new count of online CPUs (zone_pcp_update).
No drain may be in flight while a CPU's pages change hands: all of it runs under
pcpu_drain_mutex. The caller validates the request first (Membership.check_registration),
so a refused registration changes nothing. The steps are coordinator.registration_rule's program
(the decision: coordinator.membership_rule.admit); this is its wall driver.
"""

from coordinator import registration_rule
from coordinator.drain.wall import WallDriver


class Registration:
    def __init__(self, membership, zone_service, drainer, pageset, recovery):
        self.membership = membership
        self.zone = zone_service
        self.drainer = drainer
        self.pageset = pageset  # coordinator.pageset.Pageset
        self.recovery = recovery  # coordinator.recovery.Recovery

    async def register(
        self,
        cpu: int,
        address: str,
        role: int,
        metrics_address: str,
        incarnation: str,
        resume: bool,
        holdings: list,
        holdings_epoch: int,
    ) -> tuple[int, bool]:
        """Register `cpu`'s process; returns (base pages of a previous process reclaimed,
        whether its holdings were claimed for it)."""
        m = self.membership
        program = registration_rule.register(
            m,
            self.drainer.pcpu_drain_mutex,
            cpu,
            incarnation,
            resume,
            holdings,
            holdings_epoch,
            lambda: self.recovery.active,
            lambda: m.register(cpu, address, role, metrics_address, incarnation),
            self.pageset.zone_pcp_update,
            (address, role, metrics_address),
        )
        return await WallDriver(None, self.zone).run(program)
