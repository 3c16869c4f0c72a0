"""The whole cluster in one process under virtual time: the CPUs' node halves and the coordinator's rules, joined.

One event queue, one RngTree from one seed, one simulated network (docs/engine.md, step 5):
- the CPUs are node.virtual.run.VirtualCluster's: VirtualCpus running the unchanged tasks and pcp
  code, each pcp->lock a VirtualPcpLock (or the RCU list sets under rcu-swap), each CPU's quiescent
  states a VirtualRcuCpu, the zone's rules (node.mm.zone_rules) behind a virtual zone->lock;
- the coordinator's drain rules (coordinator.drain: the strategies, Control, drain_all_pages) and the
  audit (coordinator.audit_rule) run on coordinator.drain.virtual's driver, whose Peers are
  coordinator.tools.virtual_peer's NodePeers: each joins a request that arrives over the simulated
  network to the node half the wall node's interconnect (node.server) would call, so a drain takes
  pages off a CPU's lists under its lock at exact virtual instants;
- membership is static: every CPU registered at time 0 and alive, its heartbeat a timer event that
  reports its pcp count (cpus_with_pcps), paced as a wall node's (MembershipRule.heartbeat_interval, in
  kernel time). The zone operations the drain rules run under zone->lock (ZoneLocked: the drained
  pages' free) apply at the instant the effect runs, without waiting for or holding the virtual
  zone->lock (a difference from the wall coordinator, whose zone service thread holds it).

coordinator.tools.virtual_peer joins the two sides; coordinator.tools.virtual_phase runs a compare
phase on it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coordinator import audit_rule
from coordinator.drain import drain_all
from coordinator.drain.control import Control
from coordinator.drain.record import DrainRecord
from coordinator.drain.virtual import VirtualDriver, VirtualMutex
from coordinator.membership_rule import Member, MembershipRule
from coordinator.tools.virtual_peer import INCARNATION, CoordinatorZone, NodePeer
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import audit as mm_audit
from node.runtime import ROLES
from node.virtual.run import VirtualCluster, kernel_s

# The coordinator's defaults (coordinator.__main__: --lease-ms, --flush-timeout-ms, --rcu-gp-timeout-ms).
LEASE_MS, FLUSH_TIMEOUT_MS, GP_TIMEOUT_MS = 2000, 10_000, 2000
PAGES_PER_CPU = 4096  # the zone grows with the CPUs: housekeeping holds a working set of 1,500 pages


def compare_roles(n: int) -> list[str]:
    """compare's default layout (coordinator.tools.cluster.DEFAULT_ROLES) at n CPUs: the first half
    housekeeping, a quarter isolated-preemptible, the rest isolated-rt (4 CPUs: exactly the default)."""
    if n < 4:
        raise ValueError(f"a compare layout needs at least 4 CPUs, got {n}")
    hk, pre = n // 2, n // 4
    return ["housekeeping"] * hk + ["isolated-preemptible"] * pre + ["isolated-rt"] * (n - hk - pre)


@dataclass
class DrainerSettings:
    """The drainer as a strategy sees it (coordinator.drain.strategy.DrainerView), with the coordinator's defaults."""

    clock: Callable[[], float]
    membership: MembershipRule
    control: Control
    lease_ms: int = LEASE_MS
    flush_timeout_ms: int = FLUSH_TIMEOUT_MS
    gp_timeout_ms: int = GP_TIMEOUT_MS


class WholeCluster:
    """The CPUs and the coordinator in one process, on one queue (see the module docstring)."""

    def __init__(
        self,
        roles: Sequence[str],
        seed: int,
        rcu_swap: bool = False,
        keep_log: bool = True,
        strategy: pb.Strategy | None = None,  # the coordinator's default, for direct reclaim (None: the design's)
    ) -> None:
        self.nodes = VirtualCluster(
            roles, seed, zone_pages=max(1 << 14, PAGES_PER_CPU * len(roles)), rcu_swap=rcu_swap, keep_log=keep_log
        )
        self.queue = self.nodes.queue
        clock = self.queue.clock
        self.membership = MembershipRule(len(roles), clock)
        for n, role in enumerate(roles):
            member = Member(n, f"virtual:{n}", ROLES[role], None, None, 0.0, incarnation=INCARNATION)
            self.membership.members[n] = member
        self.control = Control(self.membership, clock)
        self.view = DrainerSettings(clock, self.membership, self.control)
        self.peers = {n: NodePeer(self.nodes, n) for n in range(len(roles))}
        # The coordinator's messages share the CPUs' network (one queue, one stream of latencies).
        self.driver = VirtualDriver(
            self.control, self.queue, self.nodes.zone.net, self.peers, CoordinatorZone(self.nodes), self._declare_dead
        )
        self.mutex = VirtualMutex()  # pcpu_drain_mutex
        self.heartbeat_s = kernel_s(self.membership.heartbeat_interval())
        self.queue.at(0.0, self._beat)
        # A CPU's direct reclaim asks for drain_all_pages (node.virtual.zone.DrainAllPages), with the default strategy.
        self.reclaim_strategy = strategy or (pb.STRATEGY_RCU_SWAP if rcu_swap else pb.STRATEGY_REMOTE)
        self.reclaim_drains: list[DrainRecord] = []  # apart: the wall DrainHistory lists them with demand drains
        self.nodes.zone.drain_all_pages = self._reclaim

    def _beat(self) -> None:
        """Every CPU's heartbeat: its lease renewed, its pcp count reported (cpus_with_pcps reads it)."""
        for n, pcp in enumerate(self.nodes.pcps):
            self.membership.heartbeat(n, pcp.count, INCARNATION)
        self.queue.after(self.heartbeat_s, self._beat)

    def _declare_dead(self, member: Member) -> int:
        raise RuntimeError(f"cpu {member.cpu} declared dead: static membership has no reaper yet")

    def drain(self, strategy: pb.Strategy, done: Callable[[DrainRecord | None, BaseException | None], None]) -> None:
        """drain_all_pages (demand, cpus_with_pcps) from now; done(record, error) when it ends."""
        self.driver.start(drain_all.drain_all_pages(self.view, self.mutex, strategy, False, pb.TRIGGER_DEMAND), done)

    def _reclaim(self, answer: Callable[[], None]) -> None:
        def done(record: DrainRecord | None, _error: BaseException | None) -> None:
            self.reclaim_drains += [record] if record else []
            answer()

        self.driver.start(
            drain_all.drain_all_pages(self.view, self.mutex, self.reclaim_strategy, False, pb.TRIGGER_RECLAIM), done
        )

    def audit(self, bound_s: float = 1.0) -> mm_audit.AuditReport:
        """The stop-the-world audit (coordinator.audit_rule) from now; an error if it has not ended within bound_s."""
        report: mm_audit.AuditReport = self.driver.run(
            audit_rule.audit(self.membership, self.mutex), self.queue.clock() + bound_s
        )
        return report

    def close(self) -> None:
        for peer in self.peers.values():
            peer.close()
        self.nodes.close()

    def trace_text(self) -> str:
        """The drain driver's trace: one line per step of every drain and the audit."""
        return "".join(line + "\n" for line in self.driver.trace)
