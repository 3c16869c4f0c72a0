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
"""

import asyncio
from dataclasses import dataclass

import grpc

from node.api import validate
from node.api.errors import FailedPrecondition, InvalidArgument, NotFound
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared import security
from node.shared.config import split_host_port
from node.shared.reply_stream import AioReplyStream
from node.shared.timebase import lease_clock

# Bound on one message's round trip on a member's control stream; a drain request
# passes the lease as its own, longer bound.
CONTROL_TIMEOUT_S = 5.0
# How much longer than its lease the coordinator waits before it counts a node's lease as
# over. The node measures its lease from when it sent a heartbeat, the coordinator from
# when it received it, so the two clocks only need to agree on how long a lease lasts.
# On one host (one CLOCK_BOOTTIME) the margin covers lateness: a node that checked its
# lease just before it ran out and was then descheduled before it touched its lists (a
# loaded 2-core machine delays a thread by tens of milliseconds). Across hosts it must
# also cover clock-rate drift over one lease (NTP keeps it within 500 ppm: 0.5 ms a second).
LEASE_MARGIN_S = 0.25


@dataclass
class Member:
    cpu: int
    address: str
    role: int
    channel: grpc.aio.Channel
    stub: pb_grpc.NodeStub
    last_heartbeat: float
    pcp_count: int = 0
    registrations: int = 1
    metrics_address: str = ""  # the node's /metrics host:port, empty if it serves none
    control: AioReplyStream | None = None  # the remote drainer's PcpControl stream
    incarnation: str = ""  # the node process's random id (RegisterRequest.incarnation)
    dead: bool = False  # declared dead: its pages went back to the zone
    revoked: bool = False  # its lease is no longer renewed (its heartbeats are refused): see module docstring
    resumed: bool = False  # registered with resume=true and its holdings were claimed
    cpu_offline: bool = False  # taken offline by CPU hotplug (coordinator.cpu_hotplug): alive, not online


MAX_NAME = 255  # characters: a DNS name, an address, an incarnation


def _check_address(what: str, address: str) -> None:
    """A dialable HOST:PORT of sane length (the coordinator opens a channel to it)."""
    try:
        if len(address) > MAX_NAME:
            raise ValueError(f"{len(address)} characters, limit {MAX_NAME}")
        if split_host_port(address)[1] == 0:
            raise ValueError("port 0")
    except ValueError as err:
        raise InvalidArgument(f"{what} {address[:64]!r} is not a dialable host:port: {err}") from None


class Membership:
    def __init__(
        self,
        nr_cpus: int,
        clock=lease_clock,
        failure_timeout: float = 1.0,
        dead_timeout: float = 3.0,
        lease: float | None = None,
        sec: security.Security = security.INSECURE,
        heartbeat_budget: float = 256.0,
    ):
        if heartbeat_budget <= 0:
            raise InvalidArgument(f"heartbeat budget {heartbeat_budget}/s must be positive")
        self.heartbeat_budget = heartbeat_budget
        if dead_timeout <= failure_timeout:
            raise InvalidArgument(f"dead timeout {dead_timeout}s must exceed the failure timeout {failure_timeout}s")
        self.nr_cpus = nr_cpus
        self.security = sec  # how the coordinator dials its nodes (TLS, operator token)
        self.clock = clock
        self.failure_timeout = failure_timeout
        self.dead_timeout = dead_timeout
        # The node's lease: the failure timeout, so a node that is down in the coordinator's
        # eyes soon stops using its pcp, well before dead_timeout.
        self.lease = failure_timeout if lease is None else lease
        if self.lease >= dead_timeout:
            raise InvalidArgument(f"lease {self.lease}s must be shorter than the dead timeout {dead_timeout}s")
        self.members: dict[int, Member] = {}
        self._closing: set[asyncio.Future[None]] = set()  # old channels closing (see register)

    def check_registration(
        self, cpu: int, address: str, role: int, metrics_address: str = "", incarnation: str = ""
    ) -> None:
        validate.cpu(cpu, self.nr_cpus)
        if len(incarnation) > MAX_NAME:
            raise InvalidArgument(f"incarnation of {len(incarnation)} characters, limit {MAX_NAME}")
        _check_address("address", address)
        if metrics_address:
            _check_address("metrics_address", metrics_address)
        if role not in pb.Role.values() or role == pb.ROLE_UNSPECIFIED:
            raise InvalidArgument(f"unknown role {role}")

    def register(self, cpu: int, address: str, role: int, metrics_address: str = "", incarnation: str = "") -> Member:
        self.check_registration(cpu, address, role, metrics_address)
        old = self.members.get(cpu)
        channel = security.aio_channel(address, self.security)
        member = Member(
            cpu,
            address,
            role,
            channel,
            pb_grpc.NodeStub(channel),
            self.clock(),
            registrations=old.registrations + 1 if old else 1,
            metrics_address=metrics_address,
        )
        member.incarnation = incarnation
        member.control = AioReplyStream(member.stub.PcpControl, CONTROL_TIMEOUT_S, f"cpu{cpu}-pcp-control")
        self.members[cpu] = member
        if old is not None:
            # A restarted node: the old channel points at a dead process.
            if old.control:
                old.control.close()
            # The loop holds tasks weakly: keep this one until it is done.
            closing = asyncio.ensure_future(old.channel.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return member

    def live(self, cpu: int, incarnation: str) -> Member:
        """The member a heartbeat or zone request of `cpu` from `incarnation` speaks for:
        NotFound if this coordinator never heard of the CPU (it restarted); FailedPrecondition
        if the CPU was declared dead or another incarnation replaced the sender (fencing)."""
        validate.cpu(cpu, self.nr_cpus)
        member = self.members.get(cpu)
        if member is None:
            raise NotFound(f"cpu {cpu} has not registered with this coordinator")
        if member.dead:
            raise FailedPrecondition(f"cpu {cpu} was declared dead and its pages taken back")
        if member.revoked:
            raise FailedPrecondition(
                f"cpu {cpu}'s lease was revoked (its control stream did not answer a drain): "
                "its pages are taken back once the lease has run out"
            )
        if incarnation != member.incarnation:
            raise FailedPrecondition(
                f"cpu {cpu} incarnation {incarnation or '(none)'} was replaced by {member.incarnation}"
            )
        return member

    def heartbeat(self, cpu: int, pcp_count: int, incarnation: str) -> Member:
        member = self.live(cpu, incarnation)
        member.last_heartbeat = self.clock()
        member.pcp_count = pcp_count
        return member

    def heartbeat_interval(self) -> float:
        """Seconds between a node's heartbeats: the members share the budget, and three beats
        fit in the failure timeout whatever the budget."""
        return min(len(self.members) / self.heartbeat_budget, self.failure_timeout / 4)

    def is_up(self, member: Member) -> bool:
        return not member.dead and not member.revoked and self.clock() - member.last_heartbeat < self.failure_timeout

    def lease_expired(self, member: Member) -> bool:
        """Whether `member`'s membership lease has run out as this coordinator can prove it: the
        node stopped using its pages no later than `lease` after it sent the last heartbeat we
        acknowledged, which was before we received it; LEASE_MARGIN_S covers lateness and drift.
        The only rule by which a living member's pages may be taken back."""
        return self.clock() - member.last_heartbeat >= self.lease + LEASE_MARGIN_S

    def revoke(self, member: Member) -> None:
        """Stop renewing `member`'s lease: its heartbeats are refused from now on, so
        lease_expired becomes true within a lease (plus the margin)."""
        member.revoked = True

    def is_current(self, member: Member) -> bool:
        """Still the CPU's registered, living member (not replaced, not dead)."""
        return self.members.get(member.cpu) is member and not member.dead

    def online(self) -> list[Member]:
        """Members whose heartbeats are current and whose CPU is online (not hotplugged out), by CPU number."""
        return [m for m in self.present() if not m.cpu_offline]

    def present(self) -> list[Member]:
        """Members whose heartbeats are current, online or not (what holds pages), by CPU number."""
        return [m for _, m in sorted(self.members.items()) if self.is_up(m)]

    def alive(self) -> int:
        """CPUs registered, not dead and not hotplugged out (the kernel's online CPUs, for pcp->high)."""
        return sum(1 for m in self.members.values() if not m.dead and not m.cpu_offline)

    def overdue(self) -> list[Member]:
        """Living members silent for longer than dead_timeout, whose lease has provably run out."""
        now = self.clock()
        return [
            m
            for m in self.members.values()
            if not m.dead and now - m.last_heartbeat >= self.dead_timeout and self.lease_expired(m)
        ]

    def excuse(self, seconds: float) -> None:
        """Do not count `seconds` this coordinator could not hear anyone against the members."""
        now = self.clock()
        for member in self.members.values():
            member.last_heartbeat = min(now, member.last_heartbeat + seconds)

    def declare_dead(self, member: Member) -> None:
        member.dead = True
        member.pcp_count = 0
        if member.control:
            member.control.close()

    async def close(self) -> None:
        for member in self.members.values():
            if member.control:
                member.control.close()
            await member.channel.close()
