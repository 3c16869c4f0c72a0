"""The whole cluster in one process under virtual time: the CPUs' node halves and the coordinator's rules, joined.

One event queue, one RngTree from one seed, one simulated network (docs/engine.md, step 5):
- the CPUs are node.virtual.run.VirtualCluster's: VirtualCpus running the unchanged tasks and pcp
  code, each pcp->lock a VirtualPcpLock (or the RCU list sets under rcu-swap), each CPU's quiescent
  states a VirtualRcuCpu, the zone's rules (node.mm.zone_rules) behind a virtual zone->lock;
- the coordinator's drain rules (coordinator.drain: the strategies, Control, drain_all_pages) and the
  audit (coordinator.audit_rule) run on coordinator.drain.virtual's driver, built with the rest of a
  coordinator process's rules by coordinator.tools.virtual_coordinator (one per process: `coordinator`,
  replaced by a restart, beside `first`'s driver while a second runs), whose Peers are
  coordinator.tools.virtual_peer's NodePeers: each joins a request that arrives over the simulated
  network to the node half the wall node's interconnect (node.server) would call, so a drain takes
  pages off a CPU's lists under its lock at exact virtual instants;
- membership is static unless a `Members` is given: every CPU registered at time 0 and alive, its
  heartbeat a timer event that reports its pcp count (cpus_with_pcps), paced as a wall node's
  (MembershipRule.heartbeat_interval, in kernel time). With `Members` (a chaos run), membership is the
  rules': each CPU's node.virtual.agent registers (parked until answered), beats, fences its
  allocations by its lease and rejoins, over SimNetwork.request; the coordinator answers through
  coordinator.virtual_members (registration and the reaper's round under pcpu_drain_mutex, DeclareDead
  its kill), with the scenario's timeouts, and incarnations drawn from the run's RngTree. Those rules'
  seconds are the wall engine's (`Members.scale`: TIME_SCALE), the CPUs' kernel time.
- the zone operations the drain rules run under zone->lock (ZoneLocked: the drained pages' free, a
  cpu_dead, a claim) wait for the virtual zone->lock behind the CPUs' zone requests and hold it for
  the rules' hold (coordinator.tools.virtual_peer.CoordinatorZone), as the wall coordinator's zone
  service thread does.
- the drain triggers that take a PFN range (coordinator.contig_rule: alloc_contig_range, offline_pages
  and the release) run on the same driver, their drains in `contig_drains`; the ranges taken are kept
  in `disk`, a coordinator.store.Memory that outlives a coordinator as the wall one's state directory
  does, each coordinator's `store` its own view of it (its epoch begun there, so a replaced one still
  running is fenced from it as on the wall), and a restarted or second coordinator takes them out of
  its new zone again (retake).
  Under static membership each heartbeat carries the pageset to its CPU once it has changed (offline's
  zone_pcp_disable), as a heartbeat reply does.

The faults that are more than messages (coordinator.tools.chaos.virtual_nemesis.Hooks) are
WholeCluster's methods: kill and restart a CPU's process (its agent ends and its code stops where it
waits, writing nothing more; the new process is built afresh, with nothing of the old one's memory or
call stack, and its agent registers with a new incarnation), stop and continue it (its agent and CPU
run nothing meanwhile, the network holds what reaches it), its cost factor, and the coordinator's trap.
coordinator.tools.virtual_peer joins the two sides; coordinator.tools.virtual_host is each CPU's process
as its agent sees it; coordinator.tools.virtual_phase runs a compare phase on it.
"""

from collections.abc import Callable, Sequence
from typing import Any

from coordinator import audit_rule, contig_rule
from coordinator.drain import drain_all
from coordinator.drain.record import DrainRecord
from coordinator.drain.virtual import COORDINATOR, VirtualDriver
from coordinator.membership_rule import Member, answer_heartbeat
from coordinator.store import Memory
from coordinator.tools.virtual_coordinator import Members, VirtualCoordinator
from coordinator.tools.virtual_host import NodeHost
from coordinator.tools.virtual_peer import INCARNATION, CoordinatorZone, NodePeer
from node.agent_rule import HEARTBEAT_S, beat_interval
from node.api.errors import Unavailable
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu_report import ROLES
from node.identity import Ids
from node.mm import audit as mm_audit
from node.mm.zone import DEFAULT_ZONE_PAGES, Zone, zone_pages
from node.mm.zone_rules import ZoneRules
from node.virtual.agent import VirtualAgent
from node.virtual.run import DEFAULTS, Options, VirtualCluster, kernel_s
from node.virtual.zone_rpc import ZoneRpc

PAGES_PER_CPU = 4096  # the zone grows with the CPUs: housekeeping holds a working set of 1,500 pages
FIRST = "coordinator-1"  # the first coordinator's endpoint once a second has its address
Done = Callable[[Any, BaseException | None], None]  # an operation's end: done(result, None) or done(None, error)


def machine_zone_pages(nr_cpus: int) -> int:
    """The zone of a machine of `nr_cpus` CPUs: the wall cluster's (node.mm.zone.DEFAULT_ZONE_MB) up to 64
    CPUs, PAGES_PER_CPU a CPU from there."""
    return max(DEFAULT_ZONE_PAGES, PAGES_PER_CPU * nr_cpus)


MACHINE_MIN_CPUS = 32  # the least machine_roles lays out: one CPU of each latency task
# The most: the largest machine run (docs/engine.md: 1,024 CPUs, 100 to 150 s and 313 to 414 MB a
# compare), and the wall cluster's and the bulk-free storm's bound. Past it a typo is a zone of
# hundreds of millions of pages that ends in MemoryError, not a run.
MACHINE_MAX_CPUS = 1024


def machine_roles(n: int) -> list[str]:
    """compare's layout on a large nohz_full machine of n CPUs (`pcpsim compare --cpus N`): one CPU in
    sixteen housekeeping (the wall scale figure's share: coordinator.tools.bench.scale.scale_roles), one
    in thirty-two running the preemptible latency task, one in thirty-two the RT task, the rest isolated
    and idle (their pcp lists empty, so cpus_with_pcps leaves them out). compare's own layout scaled up
    (half housekeeping: the bench's scale figure until 2026-12-03) would not fit such a machine: at
    1,024 CPUs its 512 housekeeping CPUs saturate the one zone->lock, and a remote drain's phase no
    longer ends (docs/engine.md, step 5). The shares are a choice, not a measured machine's."""
    if n < MACHINE_MIN_CPUS:
        raise ValueError(
            f"a machine layout needs at least {MACHINE_MIN_CPUS} CPUs (one of each latency task), got {n}; "
            "a smaller layout is a --workload task set's"
        )
    if n > MACHINE_MAX_CPUS:
        raise ValueError(f"a machine layout has at most {MACHINE_MAX_CPUS} CPUs, got {n}")
    hk, pre, rt = n // 16, n // 32, n // 32
    return (
        ["housekeeping"] * hk + ["isolated-preemptible"] * pre + ["isolated-rt"] * rt + ["idle"] * (n - hk - pre - rt)
    )


class EpochLines:
    """A coordinator's lines in the one coordinator transfer log, each with its epoch (chaos.transfers)."""

    def __init__(self, log: Any, epoch: int) -> None:
        self.log = log
        self.epoch = epoch

    def write(self, ev: str, **fields: Any) -> None:
        self.log.write(ev, **fields, epoch=self.epoch)


class WholeCluster:
    """The CPUs and the coordinator in one process, on one queue (see the module docstring)."""

    def __init__(
        self,
        roles: Sequence[str],
        seed: int,
        rcu_swap: bool = False,
        keep_log: bool = True,
        strategy: pb.Strategy | None = None,  # the coordinator's default, for direct reclaim (None: the design's)
        members: Members | None = None,
        options: Options = DEFAULTS,  # the CPUs' kernel profile, costs, task set and noise (node.virtual.run)
        zone_mb: int | None = None,  # the zone (a chaos scenario's); None: machine_zone_pages
        zone_used: float = 0.0,  # the share of it the rest of the system holds (the coordinator's --zone-used)
    ) -> None:
        self.nodes = VirtualCluster(
            roles,
            seed,
            zone_pages=machine_zone_pages(len(roles)) if zone_mb is None else zone_pages(zone_mb),
            rcu_swap=rcu_swap,
            keep_log=keep_log,
            options=options,
        )
        self.queue = self.nodes.queue
        self.net = self.nodes.zone.net  # the coordinator's messages share the CPUs' network
        self.settings = members
        self.scale = 1.0 if members is None else members.scale
        fencing = members is None or members.fencing
        self.hosts = [NodeHost(self.nodes, n, self.rule_clock, fencing) for n in range(len(roles))]
        self.peers = {n: NodePeer(self.nodes, n, self.scale, host) for n, host in enumerate(self.hosts)}
        self.zone_used = zone_used
        self.zone = CoordinatorZone(self.nodes)
        self.disk = Memory()  # the state directory: the epoch and ranges, kept across the coordinator's restarts
        self.contig_drains: list[DrainRecord] = []  # the range operations' drains, in the order they ended
        self.trace: list[str] = []  # the drivers' and the agents' steps, one line each, in event order
        self.agents: dict[int, VirtualAgent] = {}
        self._ids = {n: Ids(self.nodes.rng.stream(f"cpu{n}/ids")) for n in range(len(roles))}
        # The coordinator's default strategy: a CPU's direct reclaim asks for drain_all_pages with it
        # (node.virtual.zone.DrainAllPages), and the range operations drain with it.
        self.reclaim_strategy = strategy or (pb.STRATEGY_RCU_SWAP if rcu_swap else pb.STRATEGY_REMOTE)
        self.drivers: list[VirtualDriver] = []  # every coordinator's, the killed ones' too
        self._start_coordinator()
        self.reclaim_drains: list[DrainRecord] = []  # apart: the wall DrainHistory lists them with demand drains
        self.nodes.zone.drain_all_pages = self._reclaim
        if members is None:
            for n, role in enumerate(roles):
                member = Member(n, f"virtual:{n}", ROLES[role], None, None, 0.0, incarnation=INCARNATION)
                self.coordinator.membership.members[n] = member
            # The wall node's beat: its own interval or the coordinator's pace, the longer.
            self.heartbeat_s = kernel_s(beat_interval(HEARTBEAT_S, self.coordinator.membership.heartbeat_interval()))
            pageset = self.coordinator.pageset
            # The CPUs' own, as VirtualCluster sizes them.
            self._pageset_sent = (pageset.high, pageset.batch, pageset.high_max)
            self.queue.at(0.0, self._beat)
            return
        self.nodes.zone.rpc = ZoneRpc(
            self.net, COORDINATOR, members.scale, self._zone_refusal, lambda n: self.nodes.allocs[n].fenced()
        )
        for n in range(len(roles)):
            self._start_agent(n)

    def rule_clock(self) -> float:
        """The rules' clock: virtual time in the rules' seconds."""
        return self.queue.clock.now * self.scale

    def _start_coordinator(self) -> None:
        """A coordinator process (coordinator.tools.virtual_coordinator), the one that serves from now."""
        self.coordinator = VirtualCoordinator(
            self.nodes,
            self.settings,
            self.disk,
            self.rule_clock,
            self.peers,
            self.zone,
            self.trace,
            self.scale,
            self.reclaim_strategy,
            self.contig_drains.append,
        )
        self.drivers.append(self.coordinator.driver)

    def preallocate(self) -> None:
        """The coordinator's start (coordinator.__main__): `zone_used` of the zone to the rest of the
        system, before any CPU's request; its owner to call once the zone's transfer log is attached."""
        zone = self.nodes.zone
        zone.rules.preallocate(int(zone.zone.managed_pages * self.zone_used))

    def _new_zone(self) -> None:
        """A restarted coordinator's zone: built afresh (its "start" in the transfer log), the rules the
        CPUs' zone requests reach from now on; then the stored ranges are taken out of it again, before
        any node's holdings are claimed (coordinator.__main__'s start)."""
        shared, old = self.nodes.zone, self.nodes.zone.zone
        shared.zone = Zone(
            old.start_pfn, old.spanned_pages, old.nr_cpus, pcppage_migratetype_cached=old.pcppage_migratetype_cached
        )
        log = shared.rules.transfer_log
        if log is not None:  # the same log, each line with the new coordinator's epoch (the old rules keep theirs)
            log = EpochLines(
                getattr(log, "log", log), self.coordinator.epoch + 1
            )  # _start_coordinator's, which follows
        shared.rules = ZoneRules(shared.zone, shared.cost, log)
        self.zone = CoordinatorZone(self.nodes)
        self.preallocate()  # the same blocks as at the first start
        if self.settings is None or self.settings.retake:
            contig_rule.retake(self.zone, list(self.disk.read().ranges))

    def _start_agent(self, n: int) -> None:
        """A node process on CPU n: its agent registers with a new incarnation, the CPU parked until then."""
        role = self.nodes.roles[n]
        request = pb.RegisterRequest(cpu=n, address=f"virtual-cpu{n}:1", role=ROLES[role])  # a dialable host:port
        agent = VirtualAgent(
            self.queue,
            self.net,
            self.hosts[n],
            self,
            request,
            self._ids[n],
            HEARTBEAT_S,  # the node's own interval, as a wall node's --heartbeat-ms
            self.trace,
            self.scale,
            register_once=self.settings is not None and self.settings.register_once,
            sigstop=self.nodes.cpus[n].sigstop,
        )
        self.agents[n] = agent
        self.hosts[n].epoch = self.nodes.zones[n].registration = agent.epoch
        agent.start()

    def _zone_refusal(self) -> str | None:
        """Why the zone answers UNAVAILABLE unapplied now (coordinator.server's check), or None."""
        try:
            self.coordinator.recovery.check_over()
        except Unavailable as err:
            return str(err)
        return None

    def handle(self, method: str, request: Any, reply: Callable[[Any], None]) -> None:
        """A node's membership request reaching the coordinator (node.virtual.agent.Coordinator)."""
        self.coordinator.members.handle(method, request, reply)

    def _beat(self) -> None:
        """Static membership: every CPU's heartbeat, its lease renewed, its pcp count reported, the
        reply's zone state applied, and its pageset when it has changed since the last (offline's
        zone_pcp_disable and zone_pcp_enable; otherwise the CPUs keep their own, which are the same)."""
        c = self.coordinator
        pageset = (c.pageset.high, c.pageset.batch, c.pageset.high_max)
        for n, pcp in enumerate(self.nodes.pcps):
            request = pb.HeartbeatRequest(cpu=n, pcp_count=pcp.count, incarnation=INCARNATION)
            reply = answer_heartbeat(c.membership, request, self.nodes.zone.zone, c.pageset, c.recovery.active, c.epoch)
            self.hosts[n].zone_heard(reply.free_pages, reply.reclaim_active, reply.below_high)
            if pageset != self._pageset_sent:
                self.hosts[n].set_pageset(*pageset)
        self._pageset_sent = pageset
        self.queue.after(self.heartbeat_s, self._beat)

    # ------------------------------------------------------------------ a second coordinator
    def start_second(self) -> dict:
        """A second coordinator process on the same address while the first is stopped (its trap, or
        a plain stop: the driver's `stop`): the first runs on once continued, as endpoint FIRST
        with its own membership, epoch and zone (its own memory, which no CPU reaches any more), its
        requests carrying its epoch; the second, the next epoch, starts as a restarted coordinator
        does (a new zone it rebuilds while it recovers) and is the coordinator every node and the
        workload reach from now on (the nodes find it as the wall nodes' reconnections do: their next
        heartbeat is refused by it, and they register again, resuming)."""
        first = self.coordinator.driver
        first.endpoint = FIRST
        self.net.move_serving(COORDINATOR, FIRST)  # the calls the first took are its connections still
        if self.net.stopped(COORDINATOR):
            self.net.resume(COORDINATOR)  # what waited for the stopped first reaches the second
        old = self.coordinator.epoch
        self.first = first
        self._new_zone()
        self._start_coordinator()
        return {"old_epoch": old, "new_epoch": self.coordinator.epoch}

    def end_first(self) -> dict:
        """The heal: each node's epochs, and its answer to a request of the first's epoch, then the
        first is killed (coordinator.tools.chaos.nemesis's record of the heal)."""
        old = self.coordinator.epoch - 1
        nodes = {}
        for n, host in enumerate(self.hosts):
            rule = host.epoch
            if rule is None:
                continue
            refused = host.fence(old)  # the wall nemesis's probe: a QueueWork with the first's epoch
            nodes[str(n)] = {
                "seen": rule.highest,
                "registered": rule.registered,
                "stale_requests_refused": rule.stale_requests_refused,
                "stale_replies_ignored": rule.stale_replies_ignored,
                "probe": "ok" if refused is None else f"FAILED_PRECONDITION: {refused}",
            }
        self.first.kill()
        self.net.kill(FIRST)  # its callers' connections are reset
        return {"nodes": nodes}

    # ------------------------------------------------------------------ the nemesis's hooks
    def kill(self, endpoint: object) -> None:
        """SIGKILL: a CPU's agent ends and its process's code stops where it waits (node.virtual.run's
        kill), its transfer log detached first, so the stack's unwinding writes nothing, as a killed
        wall process writes nothing; the coordinator's programs, timers and zone service end (its
        Sigstop's kill): a request its zone was serving or had queued for zone->lock is never applied."""
        if endpoint == COORDINATOR:
            self.coordinator.driver.kill()
            return
        assert isinstance(endpoint, int)
        self.agents[endpoint].stop()
        self.hosts[endpoint].detach()
        self.nodes.kill(endpoint)

    def restart(self, endpoint: object) -> None:
        """A new process: a CPU's built afresh (node.virtual.run's restart), its agent registering; a new coordinator
        starts with empty membership, the next epoch and a new zone, every page free, which it rebuilds
        from the nodes' reports while it recovers (coordinator.recovery)."""
        if endpoint == COORDINATOR:
            self._new_zone()
            self._start_coordinator()
            return
        assert isinstance(endpoint, int)
        self.nodes.restart(endpoint)
        self.hosts[endpoint].attach()
        self._start_agent(endpoint)

    def stop(self, endpoint: object) -> None:
        """SIGSTOP of a CPU's process: its CPU, its agent, its request handlers and its grants' lease timers
        run nothing until `cont` (node.sim.sigstop)."""
        assert isinstance(endpoint, int), "the coordinator stops only through its trap"
        self.nodes.cpus[endpoint].sigstop.stop()

    def cont(self, endpoint: object) -> None:
        """SIGCONT: what fell due meanwhile runs from now, before the messages held for the process (the
        nemesis resumes a CPU's endpoint after this; the coordinator, stopped by its trap, resumes its own)."""
        if endpoint == COORDINATOR:
            self.coordinator.driver.cont()
            return
        assert isinstance(endpoint, int)
        self.nodes.cpus[endpoint].sigstop.cont()

    def set_cost_factor(self, cpu: int, factor: float) -> None:
        self.nodes.cpus[cpu].slowdown = factor

    def arm_trap(self) -> None:
        self.coordinator.driver.arm_trap()

    def disarm_trap(self) -> None:
        self.coordinator.driver.disarm_trap()

    # ------------------------------------------------------------------ the coordinator's operations
    def drain(
        self,
        strategy: pb.Strategy,
        done: Callable[[DrainRecord | None, BaseException | None], None],
        force_all_cpus: bool = False,
    ) -> None:
        """drain_all_pages (demand) from now; done(record, error) when it ends (Unavailable at once while
        the coordinator recovers: coordinator.server's check)."""
        if self._refused_recovering(done):
            return
        program = drain_all.drain_all_pages(
            self.coordinator.view, self.coordinator.mutex, strategy, force_all_cpus, pb.TRIGGER_DEMAND
        )
        self.coordinator.driver.start(program, done)

    def alloc_contig_range(self, start_pfn: int, nr_pages: int, timeout_ms: int, done: Done) -> None:
        """AllocContigRange from now (coordinator.contig_rule; timeout_ms the wall engine's); done(result,
        error) when it ends, the result a ContigResult; Unavailable at once while the coordinator recovers
        (its drain would hold pcpu_drain_mutex against the registrations recovery waits for, and its take
        hand out pages of a zone not rebuilt yet)."""
        if self._refused_recovering(done):
            return
        self.coordinator.driver.start(
            contig_rule.alloc_contig_range(self.coordinator.contig, start_pfn, nr_pages, timeout_ms), done
        )

    def offline_pages(self, start_pfn: int, nr_pages: int, timeout_ms: int, done: Done) -> None:
        """OfflinePages from now, as alloc_contig_range."""
        if self._refused_recovering(done):
            return
        self.coordinator.driver.start(
            contig_rule.offline_pages(self.coordinator.contig, start_pfn, nr_pages, timeout_ms), done
        )

    def _refused_recovering(self, done: Done) -> bool:
        """coordinator.server's check_over: done(None, Unavailable) and True while the coordinator recovers."""
        try:
            self.coordinator.recovery.check_over()
        except Unavailable as err:
            done(None, err)
            return True
        return False

    def release_range(self, start_pfn: int, nr_pages: int, done: Done) -> None:
        """ReleaseRange from now: done(owner's name, error)."""
        self.coordinator.driver.start(contig_rule.release(self.coordinator.contig, start_pfn, nr_pages), done)

    def _reclaim(self, answer: Callable[[], None]) -> None:
        def done(record: DrainRecord | None, _error: BaseException | None) -> None:
            self.reclaim_drains += [record] if record else []
            answer()

        self.coordinator.driver.start(
            drain_all.drain_all_pages(
                self.coordinator.view, self.coordinator.mutex, self.reclaim_strategy, False, pb.TRIGGER_RECLAIM
            ),
            done,
        )

    def audit(self, bound_s: float = 1.0) -> mm_audit.AuditReport:
        """The stop-the-world audit (coordinator.audit_rule) from now; an error if it has not ended within bound_s."""
        report: mm_audit.AuditReport = self.coordinator.driver.run(
            audit_rule.audit(self.coordinator.membership, self.coordinator.mutex),
            self.queue.clock() + bound_s,
            "the audit",
        )
        return report

    def close(self) -> None:
        for driver in self.drivers:
            driver.close()
        for peer in self.peers.values():
            peer.close()
        self.nodes.close()

    def trace_text(self) -> str:
        """The drain driver's trace: one line per step of every drain and the audit."""
        return "".join(line + "\n" for line in self.trace)
