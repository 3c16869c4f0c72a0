"""A coordinator process under virtual time: the rules coordinator.__main__ builds for a wall
coordinator, built on the whole cluster's queue and network (coordinator.tools.virtual_cluster).

Each coordinator process of a run is one VirtualCoordinator: the first, one restarted after a kill
(a new instance, with nothing of the old one's memory but the state directory, `disk`), and a second
started beside a stopped first (both then run, the first fenced by its older epoch). Its parts:
- its store on the state directory, and the epoch it begins there;
- membership (MembershipRule), Control, and the drainer's view of them (DrainerSettings);
- the drain driver (coordinator.drain.virtual.VirtualDriver) and pcpu_drain_mutex;
- recovery (twice the dead timeout, or until every CPU has registered: none under static membership),
  the pageset, the membership service with its reaper (coordinator.virtual_members) and the range
  operations (coordinator.contig_rule).
Starting one makes it the coordinator the CPUs' zone requests reach: the zone's epoch and its fence
are this coordinator's from then on, as the wall nodes' requests reach whichever process serves.
"""

from collections.abc import Callable
from dataclasses import dataclass

from coordinator import contig_rule
from coordinator.drain.control import Control
from coordinator.drain.record import DrainRecord
from coordinator.drain.strategy import FLUSH_TIMEOUT_MS, GP_TIMEOUT_MS, LEASE_MS
from coordinator.drain.virtual import VirtualDriver, VirtualMutex
from coordinator.membership_rule import DEAD_TIMEOUT_MS, FAILURE_TIMEOUT_MS, Member, MembershipRule
from coordinator.pageset import Pageset
from coordinator.recovery import Recovery, recovery_window
from coordinator.store import Memory, Store
from coordinator.tools.virtual_peer import CoordinatorZone, NodePeer
from coordinator.virtual_members import VirtualMembers
from node.api.errors import FailedPrecondition, NotFound, status_of
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.zone_rules import Refused
from node.shared.cpulist import nohz_full
from node.shared.timebase import TIME_SCALE
from node.sim.sigstop import Sigstop
from node.virtual.run import VirtualCluster


@dataclass
class DrainerSettings:
    """The drainer as a strategy sees it (coordinator.drain.strategy.DrainerView), with the coordinator's defaults."""

    clock: Callable[[], float]
    membership: MembershipRule
    control: Control
    lease_ms: int = LEASE_MS
    flush_timeout_ms: int = FLUSH_TIMEOUT_MS
    gp_timeout_ms: int = GP_TIMEOUT_MS


@dataclass(frozen=True)
class Members:
    """Rule-driven membership and the coordinator's flags, as a chaos run's cluster has them (the
    coordinator's --lease-ms, --failure-timeout-ms, --dead-timeout-ms, --flush-timeout-ms and the node's
    --unsafe-skip-fencing), in the rules' seconds: `scale` of them per virtual second."""

    lease_ms: int = LEASE_MS
    failure_timeout_ms: int = FAILURE_TIMEOUT_MS
    dead_timeout_ms: int = DEAD_TIMEOUT_MS
    flush_timeout_ms: int = FLUSH_TIMEOUT_MS
    fencing: bool = True
    epochs: bool = True  # False: requests carry no epoch (the coordinator's --unsafe-no-epoch, tests only)
    retake: bool = True  # False: a restarted coordinator forgets the stored ranges (--unsafe-forget-ranges, tests only)
    declare_dead_on_lost_commit: bool = False  # the coordinator's --unsafe-declare-dead-on-lost-commit (tests only)
    register_once: bool = False  # the node's --unsafe-register-once (tests only)
    scale: float = TIME_SCALE


def _zone_fence(membership: MembershipRule) -> Callable[[int, str], None]:
    """coordinator.server's fencing of a zone request (_check_zone_caller, _as_live): a CPU this
    coordinator does not know as `incarnation` (never registered with it, declared dead, replaced)
    changes nothing; its refusal as the zone's (Refused), with the wall reply's code."""

    def live(cpu: int, incarnation: str) -> None:
        try:
            membership.live(cpu, incarnation)
        except (NotFound, FailedPrecondition) as err:
            raise Refused(str(err), status_of(err).name) from None

    return live


class VirtualCoordinator:
    """One coordinator process (see the module docstring). `settings` None: static membership."""

    def __init__(
        self,
        nodes: VirtualCluster,
        settings: Members | None,
        disk: Memory,
        rule_clock: Callable[[], float],
        peers: dict[int, NodePeer],
        zone: CoordinatorZone,
        trace: list[str],
        scale: float,
        reclaim_strategy: pb.Strategy,
        contig_done: Callable[[DrainRecord], None],
    ) -> None:
        m, n = settings, len(nodes.roles)
        self.settings = settings
        self.store = Store.on(disk)  # this coordinator's, as coordinator.__main__ opens it
        self.epoch = self.store.begin_epoch()
        isolated = nohz_full(nodes.roles)  # the machine's nohz_full=, as `cluster up` gives the wall coordinator
        if m is None:
            self.membership = MembershipRule(n, rule_clock, nohz_full=isolated)
            self.control = Control(self.membership, rule_clock, self.epoch)
            self.view = DrainerSettings(rule_clock, self.membership, self.control)
        else:
            self.membership = MembershipRule(
                n,
                rule_clock,
                failure_timeout=m.failure_timeout_ms / 1e3,
                dead_timeout=m.dead_timeout_ms / 1e3,
                nohz_full=isolated,
            )
            self.control = Control(self.membership, rule_clock, self.epoch)
            self.control.declare_dead_on_lost_commit = m.declare_dead_on_lost_commit
            self.view = DrainerSettings(
                rule_clock, self.membership, self.control, m.lease_ms, m.flush_timeout_ms, GP_TIMEOUT_MS
            )
        self.membership.graveyard = self.store  # the processes declared dead, kept across restarts
        # Its SIGSTOP (node.sim.sigstop): its programs, its reaper and its zone service share it.
        self.sigstop = zone.sigstop = nodes.zone.sigstop = Sigstop(nodes.queue)
        # Its own records: a first coordinator resumed beside a second declares dead in its own.
        self.driver = VirtualDriver(
            self.control,
            nodes.queue,
            nodes.zone.net,
            peers,
            zone,
            self._declare_dead,
            scale=scale,
            sigstop=self.sigstop,
        )
        self.driver.trace = trace
        self.driver.epoch = nodes.zone.epoch = self.epoch if m is not None and m.epochs else 0
        self.mutex = VirtualMutex()  # pcpu_drain_mutex
        buddy = nodes.zone.zone
        # Every coordinator starts recovering (coordinator.__main__): for its recovery window, or until
        # every CPU has registered; static membership has every CPU from the start.
        window = 0.0 if m is None else recovery_window(self.membership.dead_timeout)
        recovery = self.recovery = Recovery(self.membership, window, rule_clock, self.store.rebuilt_zone)
        self.pageset = Pageset(buddy, buddy.zone_batchsize(), n)
        self.members = VirtualMembers(
            self.membership,
            self.driver,
            self.mutex,
            self.pageset,
            epoch=self.epoch,
            recovering=lambda: recovery.active,
            zone=buddy,
        )
        self.contig = contig_rule.Contig(
            buddy,
            rule_clock,
            self.membership,
            self.view,
            self.mutex,
            reclaim_strategy,
            self.pageset,
            self.store,
            contig_done,
            wall_s=scale / TIME_SCALE,  # the wall engine's seconds in the rules' (see Contig.wall_s)
        )
        if m is not None:
            nodes.zone.live = _zone_fence(self.membership)  # the zone this coordinator serves from now
            self.members.start_reaper(self.membership.reaper_interval())

    def _declare_dead(self, member: Member) -> int:
        if self.settings is None:
            raise RuntimeError(f"cpu {member.cpu} declared dead: static membership has no reaper")
        return self.members.kill(member)
