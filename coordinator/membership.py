"""Membership: which CPUs are online, how to reach them, and their last reported pcp count.

A node registers with its address and role and then sends heartbeats carrying its
pcp count; drain_all_pages builds cpus_with_pcps from these counts, a racy read like
the kernel's (a count may have changed since it was sent). Each member keeps one
long-lived channel.

Liveness is two bounds on the time since a node's last heartbeat:
- `failure_timeout`: the node is down; drains skip it;
- `dead_timeout`: the node is dead. The coordinator takes its pages back (the hotplug
  path, coordinator.hotplug) and refuses its heartbeats and zone requests from then on
  (fencing by incarnation), so it must discard its pages and register afresh.
Heartbeat pacing: every reply tells the node the interval to beat at, N CPUs /
`heartbeat_budget` (heartbeats per second the coordinator takes in all), at most a
quarter of the failure timeout (so three may be lost before a node counts as down). At
64 CPUs and 50 ms heartbeats the coordinator took 1,280 a second on a 2-core machine
already busy with 64 node processes; heartbeat round trips then grew to a second at
times and a node's age passed the failure timeout (`pcpsim bench`, scale figure).
The node holds a membership lease of `lease` from the moment it *sent* each
acknowledged heartbeat and stops using its pcp when the lease runs out. A heartbeat is
received after it is sent, so the coordinator can prove the lease over once `lease` plus
LEASE_MARGIN_S has passed since it *received* the last heartbeat it acknowledged
(`lease_expired`, the one place this rule lives). Nothing takes a member's pages back
before that: neither the reaper (`overdue`: silent for dead_timeout, and the lease
provably over) nor a drain whose commit goes unanswered (coordinator.drain.control).
Both processes read leases on CLOCK_BOOTTIME (node.shared.timebase.lease_clock), which
counts on while a machine is suspended.

A member can also be `revoked`: a drain that cannot get an answer from its control
stream while its heartbeats still come stops renewing its lease (its heartbeats are
refused from then on, as a dead member's are), so that the lease runs out and the drain
can take its pages back after all, within a bound (coordinator.drain.control).

The rules live in coordinator.membership_rule; this module is their wall driver: it gives each
member its gRPC channel and control stream, and closes them when the member is replaced or dies.
"""

import asyncio
from collections.abc import Iterable

from coordinator.membership_rule import CONTROL_TIMEOUT_S as CONTROL_TIMEOUT_S
from coordinator.membership_rule import LEASE_MARGIN_S as LEASE_MARGIN_S
from coordinator.membership_rule import Member, MembershipRule
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import security
from node.shared.reply_stream import AioReplyStream
from node.shared.timebase import lease_clock


class Membership(MembershipRule):
    def __init__(
        self,
        nr_cpus: int,
        clock=lease_clock,
        failure_timeout: float = 1.0,
        dead_timeout: float = 3.0,
        lease: float | None = None,
        sec: security.Security = security.INSECURE,
        heartbeat_budget: float = 256.0,
        nohz_full: Iterable[int] = (),
    ):
        super().__init__(nr_cpus, clock, failure_timeout, dead_timeout, lease, heartbeat_budget, nohz_full)
        self.security = sec  # how the coordinator dials its nodes (TLS, the token toward each: register)
        self._closing: set[asyncio.Future[None]] = set()  # old channels closing (see register)

    def register(self, cpu: int, address: str, role: int, metrics_address: str = "", incarnation: str = "") -> Member:
        self.check_registration(cpu, address, role, metrics_address)
        # Not the operator's secret: a node registers the address dialled, so it sees what is presented.
        dial = security.toward_cpu(self.security, cpu)
        channel = security.aio_channel(address, dial)
        member, old = self.enrol(cpu, address, role, metrics_address, incarnation)
        member.channel = channel
        member.stub = pb_grpc.NodeStub(channel)
        control = security.stream_opener(member.stub.PcpControl, dial)
        member.control = AioReplyStream(control, CONTROL_TIMEOUT_S, f"cpu{cpu}-pcp-control")
        if old is not None:
            # A restarted node: the old channel points at a dead process.
            if old.control:
                old.control.close()
            # The loop holds tasks weakly: keep this one until it is done.
            closing = asyncio.ensure_future(old.channel.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return member

    def declare_dead(self, member: Member) -> None:
        super().declare_dead(member)
        if member.control:
            member.control.close()

    async def close(self) -> None:
        for member in self.members.values():
            if member.control:
                member.control.close()
            await member.channel.close()
