"""CPU hotplug of a living CPU: taking it offline and bringing it back (kernel/cpu.c, mm/page_alloc.c v6.1).

Offline, in the kernel's order: the CPU stops running tasks (here its node is paused with
cpu_offline set; the pages its tasks hold stay allocated, as a migrated task's memory does),
then on a surviving CPU page_alloc_cpu_dead() -> drain_pages(cpu) frees its pcp lists and
zone_pcp_update() recomputes pcp->high for the CPUs left online (coordinator.hotplug's
Pageset, the same path a dead CPU takes). The drain runs from the coordinator directly, never
by queueing work on the offline CPU: a remote lock drain on the spinlock design (allowed even
under 5.19, whose drain_pages_zone may touch "the current processor ... or a processor that is
not online"), an rcu-swap on the RCU design (the parked CPU is quiescent, so the grace period ends
at once). It is recorded like any drain_all_pages, with trigger cpu_hotplug and that one CPU marked.
Deviation: page_alloc_cpu_dead takes no pcpu_drain_mutex (v6.1, torvalds/linux at dac22531bbd4); here
the offline holds it so that no drain of this coordinator's is in flight against the CPU meanwhile.

Online: the CPU runs again and high is recomputed for one more CPU. The offline CPU is left
out of drains (for_each_online_cpu) but not out of the audit: its tasks still hold pages.
Nodes learn the new high with their next heartbeat reply, as for a dead CPU.
"""

from coordinator.drain.record import DrainRecord
from node.api.errors import FailedPrecondition
from node.api.v1 import pcpsim_pb2 as pb


class CpuHotplug:
    def __init__(self, membership, drainer, pageset, clock):
        self.membership = membership
        self.drainer = drainer
        self.pageset = pageset  # coordinator.pageset.Pageset
        self.clock = clock

    def _member(self, cpu: int):
        member = self.membership.members.get(cpu)
        if member is None or not self.membership.is_up(member):
            raise FailedPrecondition(f"cpu {cpu} is not a live member")
        return member

    async def set_online(self, cpu: int, online: bool) -> DrainRecord | None:
        """Take `cpu` offline (returns the drain of its lists) or bring it online (returns None)."""
        member = self._member(cpu)
        if member.cpu_offline != online:
            raise FailedPrecondition(f"cpu {cpu} is already {'online' if online else 'offline'}")
        if not online and self.membership.alive() <= 1:
            raise FailedPrecondition("the last online CPU cannot go offline")
        async with self.drainer.pcpu_drain_mutex:  # no drain in flight against it meanwhile
            if online:
                await member.stub.SetRunState(pb.RunStateRequest(cpu=cpu, paused=False), timeout=10.0)
                member.cpu_offline = False
                self.pageset.zone_pcp_update(self.membership.alive())
                return None
            await member.stub.SetRunState(pb.RunStateRequest(cpu=cpu, paused=True, cpu_offline=True), timeout=10.0)
            member.cpu_offline = True
            record = await self.drainer.drain_pages(member, pb.TRIGGER_CPU_HOTPLUG)
            self.pageset.zone_pcp_update(self.membership.alive())
        return record
