"""Membership's rules, which decide and do no I/O (docs/engine.md, rule 6): who is up, whose lease has
provably run out, whom the reaper declares dead at a given instant, fencing by incarnation, lease
revocation, the heartbeat pacing, and what a registration does (accept a retry, replace a previous
process, claim a resuming node's holdings). coordinator.membership explains the rules and is their wall
driver (a gRPC channel and control stream per member, the reaper's sleep loop: coordinator.hotplug);
coordinator.virtual_members is the virtual one (node.sim's event queue, the reaper a timer event). The
clock is injected: lease_clock in the wall driver, node.sim's virtual clock in the other.

A member's link (the channel, the stub of its Node service, its PcpControl stream) is whatever the
driver attaches to it; the rules never touch it.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from node.api import validate
from node.api.errors import FailedPrecondition, InvalidArgument, NotFound
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.config import split_host_port
from node.shared.cpulist import NOHZ_FULL_ROLES, role_label

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
MAX_NAME = 255  # characters: a DNS name, an address, an incarnation


@dataclass
class Member:
    cpu: int
    address: str
    role: int
    channel: Any  # the driver's link: a grpc.aio.Channel in the wall driver, None in the virtual one
    stub: Any  # the node's Node service on that channel (pb_grpc.NodeStub), or None
    last_heartbeat: float
    pcp_count: int = 0
    registrations: int = 1
    metrics_address: str = ""  # the node's /metrics host:port, empty if it serves none
    control: Any = None  # the remote drainer's PcpControl stream (node.shared.reply_stream.AioReplyStream)
    incarnation: str = ""  # the node process's random id (RegisterRequest.incarnation)
    dead: bool = False  # declared dead: its pages went back to the zone
    revoked: bool = False  # its lease is no longer renewed (its heartbeats are refused): coordinator.membership
    resumed: bool = False  # registered with resume=true and its holdings were claimed
    cpu_offline: bool = False  # taken offline by CPU hotplug (coordinator.cpu_hotplug): alive, not online


def _check_address(what: str, address: str) -> None:
    """A dialable HOST:PORT of sane length (the coordinator opens a channel to it)."""
    try:
        if len(address) > MAX_NAME:
            raise ValueError(f"{len(address)} characters, limit {MAX_NAME}")
        if split_host_port(address)[1] == 0:
            raise ValueError("port 0")
    except ValueError as err:
        raise InvalidArgument(f"{what} {address[:64]!r} is not a dialable host:port: {err}") from None


@dataclass(frozen=True)
class Admission:
    """What registering a CPU's process does (coordinator.registration)."""

    retry: bool  # the same living process asking again: it keeps what it had (`resumed` included)
    unchanged: bool  # a retry from the same address, role and metrics address, its lease not revoked
    reclaim: bool  # a previous process is gone or dead: its pages go back to the zone first
    claim: bool  # a node resuming while the coordinator recovers: the zone claims its holdings for it


def admit(
    old: Member | None,
    incarnation: str,
    resume: bool,
    recovering: Callable[[], bool],
    link: tuple[str, int, str],
) -> Admission:
    """Registration's decision for a CPU whose current member is `old`, asked from `link` (address,
    role, metrics address). `recovering` is read only when it matters (Recovery.active latches once
    the window is over)."""
    if old is not None and old.incarnation == incarnation and not old.dead:
        same = (old.address, old.role, old.metrics_address) == link and not old.revoked
        return Admission(retry=True, unchanged=same, reclaim=False, claim=False)
    return Admission(
        retry=False, unchanged=False, reclaim=old is not None, claim=resume and old is None and recovering()
    )


def excused(late: float, interval: float, failure_timeout: float) -> bool:
    """Whether the reaper woke so late (`late` seconds past its interval) that this process did not run
    (stopped, starved): the nodes' silence meanwhile is its own, not theirs, and is excused. Nothing
    unsafe either way: a node that was really gone is declared dead that much later."""
    return late > max(4 * interval, failure_timeout / 2)


class ZoneState(Protocol):
    """What a heartbeat reply tells a node of the zone (node.mm.zone.Zone)."""

    free_pages: int
    reclaim_active: bool
    below_high: bool


class PagesetState(Protocol):
    """pcp->high, high_max and batch for every CPU (coordinator.pageset.Pageset)."""

    high: int
    batch: int

    @property
    def high_max(self) -> int: ...


# The coordinator's defaults for its --failure-timeout-ms and --dead-timeout-ms.
FAILURE_TIMEOUT_MS = 1000
DEAD_TIMEOUT_MS = 3000


class Graveyard(Protocol):
    """Where the processes declared dead are kept beyond this coordinator (coordinator.store.Store)."""

    def declare_dead(self, cpu: int, incarnation: str) -> None: ...  # durable when it returns; may raise

    def declared_dead(self, cpu: int, incarnation: str) -> bool: ...

    def rebuilt_since(self, epoch: int) -> int: ...


class MembershipRule:
    # The store of this and earlier coordinators (None: this process's memory only, as in unit tests):
    # a declaration of death outlives the coordinator that made it (coordinator.store says why).
    graveyard: Graveyard | None = None

    def __init__(
        self,
        nr_cpus: int,
        clock: Callable[[], float],
        failure_timeout: float = FAILURE_TIMEOUT_MS / 1000,
        dead_timeout: float = DEAD_TIMEOUT_MS / 1000,
        lease: float | None = None,
        heartbeat_budget: float = 256.0,
        nohz_full: Iterable[int] = (),
    ):
        if heartbeat_budget <= 0:
            raise InvalidArgument(f"heartbeat budget {heartbeat_budget}/s must be positive")
        self.heartbeat_budget = heartbeat_budget
        if dead_timeout <= failure_timeout:
            raise InvalidArgument(f"dead timeout {dead_timeout}s must exceed the failure timeout {failure_timeout}s")
        self.nr_cpus = nr_cpus
        self.clock = clock
        self.failure_timeout = failure_timeout
        self.dead_timeout = dead_timeout
        # The node's lease: the failure timeout, so a node that is down in the coordinator's
        # eyes soon stops using its pcp, well before dead_timeout.
        self.lease = failure_timeout if lease is None else lease
        if self.lease >= dead_timeout:
            raise InvalidArgument(f"lease {self.lease}s must be shorter than the dead timeout {dead_timeout}s")
        self.members: dict[int, Member] = {}
        # The machine's nohz_full= boot parameter, as the coordinator was started with it: which CPUs are
        # isolated is known before any registers and after a restart (qpw's key reads it). Empty: not
        # given, and only the registered roles say.
        self.nohz_full = frozenset(nohz_full)
        for cpu in self.nohz_full:
            validate.cpu(cpu, nr_cpus)

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
        if self.nohz_full and (cpu in self.nohz_full) != (role in NOHZ_FULL_ROLES):
            raise InvalidArgument(
                f"cpu {cpu} registers as {role_label(role)}, and this machine's nohz_full CPUs are "
                f"{','.join(map(str, sorted(self.nohz_full)))}"
            )

    def enrol(
        self, cpu: int, address: str, role: int, metrics_address: str, incarnation: str
    ) -> tuple[Member, Member | None]:
        """Make a new member the CPU's, its link not attached yet; returns it and the member it replaced."""
        old = self.members.get(cpu)
        member = Member(
            cpu,
            address,
            role,
            None,
            None,
            self.clock(),
            registrations=old.registrations + 1 if old else 1,
            metrics_address=metrics_address,
        )
        member.incarnation = incarnation
        self.members[cpu] = member
        return member, old

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

    def renew(self, member: Member) -> None:
        """A retried registration that changes nothing is a sign of life, as a heartbeat is."""
        member.last_heartbeat = self.clock()

    def reaper_interval(self) -> float:
        """Seconds between the reaper's rounds: four in a failure timeout."""
        return self.failure_timeout / 4

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
        """Members whose heartbeats are current, online or not, by CPU number."""
        return [m for _, m in sorted(self.members.items()) if self.is_up(m)]

    def holding(self) -> list[Member]:
        """Members the zone may record pages for, by CPU number: every one not declared dead, online or not,
        its heartbeats current or not (a late or revoked member keeps its pages until page_alloc_cpu_dead
        takes them back)."""
        return [m for _, m in sorted(self.members.items()) if not m.dead]

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

    def reapable(self, member: Member) -> bool:
        """The reaper's decision for one member of overdue(), re-checked with no drain in flight (under
        pcpu_drain_mutex): a heartbeat or a new registration may have come meanwhile."""
        return self.is_current(member) and member in self.overdue()

    def excuse(self, seconds: float) -> None:
        """Do not count `seconds` this coordinator could not hear anyone against the members."""
        now = self.clock()
        for member in self.members.values():
            member.last_heartbeat = min(now, member.last_heartbeat + seconds)

    def declare_dead(self, member: Member) -> None:
        """Declare `member` dead, before its pages go back to the zone. The graveyard is written first,
        so a coordinator fenced there (coordinator.store.StoreFenced) changes nothing."""
        self.bury(member)
        member.dead = True
        member.pcp_count = 0

    def bury(self, member: Member) -> None:
        """Keep `member`'s process as dead beyond this coordinator, before the zone takes its pages back
        (declared dead, or replaced by a new process of its CPU)."""
        if self.graveyard is not None and not member.dead:
            self.graveyard.declare_dead(member.cpu, member.incarnation)

    def was_declared_dead(self, cpu: int, incarnation: str) -> bool:
        """Whether this or an earlier coordinator took back the pages of `incarnation` of `cpu`."""
        return self.graveyard is not None and self.graveyard.declared_dead(cpu, incarnation)

    def rebuilt_since(self, epoch: int) -> int:
        """A coordinator epoch after `epoch` that rebuilt its zone, so counted free the pages a CPU kept
        from `epoch` without claiming them there (coordinator.store.Store.rebuilt_since); 0 if none, or
        if `epoch` is 0 (unknown: a node of a cluster whose coordinators send no epoch)."""
        return self.graveyard.rebuilt_since(epoch) if self.graveyard is not None and epoch else 0


def answer_heartbeat(
    rule: MembershipRule,
    request: pb.HeartbeatRequest,
    zone: ZoneState,
    pageset: PagesetState,
    recovering: bool,
    epoch: int,
) -> pb.HeartbeatReply:
    """A Heartbeat, in both drivers (coordinator.server, coordinator.virtual_members): the sender's
    lease renewed (fenced by incarnation: `MembershipRule.live`), and what the node learns back, which
    node.agent applies: the zone's free pages, ZONE_RECLAIM_ACTIVE and ZONE_BELOW_HIGH (which its pcp
    paths read between zone replies), the pageset, whether this coordinator is recovering, the heartbeat pace and
    its epoch."""
    rule.heartbeat(request.cpu, request.pcp_count, request.incarnation)
    return pb.HeartbeatReply(
        free_pages=zone.free_pages,
        reclaim_active=zone.reclaim_active,
        below_high=zone.below_high,
        high=pageset.high,
        high_max=pageset.high_max,
        batch=pageset.batch,
        recovering=recovering,
        heartbeat_interval_ms=round(rule.heartbeat_interval() * 1000),
        coordinator_epoch=epoch,
    )
