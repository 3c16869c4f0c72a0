"""The whole cluster in one process under virtual time: the CPUs' node halves and the coordinator's rules, joined.

One event queue, one RngTree from one seed, one simulated network (docs/engine.md, step 5):
- the CPUs are node.virtual.run.VirtualCluster's: VirtualCpus running the unchanged tasks and pcp
  code, each pcp->lock a VirtualPcpLock (or the RCU list sets under rcu-swap), each CPU's quiescent
  states a VirtualRcuCpu, the zone's rules (node.mm.zone_rules) behind a virtual zone->lock;
- the coordinator's drain rules (coordinator.drain: the strategies, Control, drain_all_pages) and the
  audit (coordinator.audit_rule) run on coordinator.drain.virtual's driver, whose Peers are the
  NodePeers below: each joins a request that arrives over the simulated network to the node half the
  wall node's interconnect (node.server) would call, so a drain takes pages off a CPU's lists under
  its lock at exact virtual instants. Whatever waits (the pcp lock, a grace period) runs on a Strand;
  a flush waits for the work item on the CPU; SetRunState answers once the CPU has parked;
- membership is static: every CPU registered at time 0 and alive, its heartbeat a timer event that
  reports its pcp count (cpus_with_pcps), paced as a wall node's (Membership.heartbeat_interval, in
  kernel time). The zone operations the drain rules run under zone->lock (ZoneLocked: the drained
  pages' free) apply at the instant the effect runs, without waiting for or holding the virtual
  zone->lock (a difference from the wall coordinator, whose zone service thread holds it).

`run_phase` is one phase of `pcpsim compare` under virtual time: the same layout, warm-up, seeded drain
schedule and audit, the wall engine's user-space figures divided by TIME_SCALE (node.virtual.run), and
its results shaped like a compare results file (coordinator.tools.report reads them; `time_scale` 1.0:
every time in them is kernel time). Only demand drains yet: cma and offline events need the contiguous
range rules (coordinator.contig) under virtual time.
"""

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from coordinator import audit_rule
from coordinator.drain import drain_all
from coordinator.drain.control import Control
from coordinator.drain.record import STRATEGIES, DrainRecord
from coordinator.drain.virtual import Answer, Later, VirtualDriver, VirtualMutex
from coordinator.membership import Member, Membership
from coordinator.tools.cluster import DEFAULT_ROLES
from coordinator.tools.compare import HIST_BUCKET_KERNEL_US, CompareConfig, summarize_phase
from coordinator.tools.schedule import drain_schedule
from node.api import validate
from node.api.errors import DOMAIN_ERRORS, FailedPrecondition, status_of
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu import OPERATOR, WorkItem
from node.mm import audit as mm_audit
from node.mm import pcp_rcu
from node.mm import profile as profiles
from node.mm.constants import Page
from node.mm.zone_rules import Refused, ZoneReply
from node.runtime import ROLES, counters, stats_since
from node.tasks import LatencyTask
from node.virtual.drain import VirtualRcuDrain, VirtualRemotePcpLock
from node.virtual.run import VirtualCluster, kernel_s
from node.virtual.strand import Strand

INCARNATION = "0"  # node.virtual.zone.LocalZone's until incarnations come from the RNG tree
# The coordinator's defaults (coordinator.__main__: --lease-ms, --flush-timeout-ms, --rcu-gp-timeout-ms).
LEASE_MS, FLUSH_TIMEOUT_MS, GP_TIMEOUT_MS = 2000, 10_000, 2000
PAGES_PER_CPU = 4096  # the zone grows with the CPUs: housekeeping holds a working set of 1,500 pages
DRAIN_BOUND_S = 1.0  # virtual time the drains still running at the end of measurement get to finish


def compare_roles(n: int) -> list[str]:
    """compare's default layout (coordinator.tools.cluster.DEFAULT_ROLES) at n CPUs: the first half
    housekeeping, a quarter isolated-preemptible, the rest isolated-rt (4 CPUs: exactly the default)."""
    if n < 4:
        raise ValueError(f"a compare layout needs at least 4 CPUs, got {n}")
    hk, pre = n // 2, n // 4
    return ["housekeeping"] * hk + ["isolated-preemptible"] * pre + ["isolated-rt"] * (n - hk - pre)


def _refusal(err: Exception) -> pb.PcpControlReply:
    """A node half's domain error as the wall node's stream answers it (node.shared.interceptors)."""
    return pb.PcpControlReply(code=status_of(err).name, error=str(err))


class NodePeer:
    """One virtual CPU as the drain driver reaches it (coordinator.drain.virtual.Peer): each request,
    on arrival, goes where node.server sends the wall node's."""

    def __init__(self, cluster: VirtualCluster, cpu: int) -> None:
        self.cluster = cluster
        self.cpu = cpu
        self.work: dict[int, WorkItem] = {}  # queued, not yet flushed (node.workqueue.WorkItems)
        self.strands: dict[int, Strand] = {}  # requests being served, by number
        self._served = 0

    def control(self, message: Any) -> Answer | Later:
        op = message.WhichOneof("op")
        request = getattr(message, op)
        drain = self.cluster.drains[self.cpu]
        try:
            if op == "lock_drain":
                return self._serve(lambda strand: self._lock_drain(strand, drain, request))
            if op == "rcu_swap":
                return self._serve(lambda strand: self._rcu_swap(strand, drain, request))
            if op == "unlock" and isinstance(drain, VirtualRemotePcpLock):
                drain.unlock(validate.token(request.token), request.commit)
                return Answer(pb.PcpControlReply(unlocked=pb.Empty()))
            if op == "rcu_release" and isinstance(drain, VirtualRcuDrain):
                drain.release(validate.token(request.token), request.commit)
                return Answer(pb.PcpControlReply(rcu_released=pb.Empty()))
            raise FailedPrecondition(f"cpu {self.cpu}: {op} does not apply to its pcp design")
        except DOMAIN_ERRORS as err:
            return Answer(_refusal(err))

    def _serve(self, handle: Callable[[Strand], pb.PcpControlReply]) -> Later:
        """Run handle(strand) on a Strand from now (node.server's handler awaiting its executor) and
        give its reply, or its refusal, once it has done its waiting."""
        later = Later()
        number = self._served
        self._served += 1

        def main(strand: Strand) -> None:
            try:
                later.give(handle(strand))
            except DOMAIN_ERRORS as err:
                later.give(_refusal(err))
            finally:
                del self.strands[number]

        queue = self.cluster.queue
        strand = self.strands[number] = Strand(queue, f"cpu{self.cpu}-rpc{number}", main)
        strand.start(queue.clock())
        return later

    def _lock_drain(self, strand: Strand, drain: Any, request: pb.PcpLockDrainRequest) -> pb.PcpControlReply:
        if not isinstance(drain, VirtualRemotePcpLock):
            raise FailedPrecondition(f"cpu {self.cpu} keeps its pcp lists behind an RCU pointer: no pcp lock")
        lease = validate.count(request.lease_ms, validate.MAX_LEASE_MS, "lease_ms") / 1000.0
        token, pages, wait = drain.lock_and_take(strand, lease, wait_timeout=lease)
        grant = pb.PcpLockDrainReply(token=token, pages=validate.to_page_list(pb.PageList, pages), lock_wait_s=wait)
        return pb.PcpControlReply(lock_drain=grant)

    def _rcu_swap(self, strand: Strand, drain: Any, request: pb.RcuSwapRequest) -> pb.PcpControlReply:
        if not isinstance(drain, VirtualRcuDrain):
            raise FailedPrecondition(f"cpu {self.cpu} runs the v6.0 pcp spinlock, not RCU list sets")
        gp_timeout = validate.count(request.gp_timeout_ms, validate.MAX_LEASE_MS, "gp_timeout_ms") / 1000.0
        lease = validate.count(request.lease_ms, validate.MAX_LEASE_MS, "lease_ms") / 1000.0
        token, pages, gp_s, gp_ok = drain.swap_and_take(strand, lease, gp_timeout)
        swap = pb.RcuSwapReply(
            token=token, pages=validate.to_page_list(pb.PageList, pages), grace_period_s=gp_s, gp_ok=gp_ok
        )
        return pb.PcpControlReply(rcu_swap=swap)

    def call(self, method: str, request: Any) -> Answer | Later:
        cluster, n = self.cluster, self.cpu
        if method == "QueueWork":
            item = cluster.queue_drain_work(n)
            self.work[item.id] = item
            return Answer(pb.QueueWorkReply(work_id=item.id))
        if method == "FlushWork":
            return self._flush(self.work.pop(request.work_id), request.timeout_ms / 1000.0)
        if method == "SetRunState":
            cpu = cluster.cpus[n]
            reply = pb.RunStateReply(was_paused=cpu.held_paused_by(OPERATOR))
            cpu.set_paused(request.paused)
            if not request.paused:
                return Answer(reply)
            later = Later()
            cpu.when_parked(lambda: later.give(reply))
            return later
        if method == "Snapshot":
            return Answer(self._snapshot())
        raise ValueError(f"cpu {n}: the virtual cluster does not serve {method}")

    def _flush(self, item: WorkItem, timeout_s: float) -> Later:
        """flush_work: the reply once the item has run on the CPU, or `timeout_s` from now."""
        later = Later()
        queue = self.cluster.queue

        def ran(it: WorkItem) -> None:
            later.give(
                pb.FlushWorkReply(
                    done=it.error is None,
                    queue_delay_s=it.started_at - it.queued_at,
                    run_s=it.finished_at - it.started_at,
                    pages=it.result if isinstance(it.result, int) else 0,
                )
            )

        item.add_done_callback(ran)
        if not item.done:
            self.work[item.id] = item  # a flush that times out leaves it queued, as node.workqueue does
            queue.after(
                timeout_s,
                lambda: later.give(pb.FlushWorkReply(done=False, queue_delay_s=queue.clock() - item.queued_at)),
            )
        return later

    def _snapshot(self) -> pb.NodeSnapshot:
        cluster, n = self.cluster, self.cpu
        pcp, running = cluster.pcps[n], not cluster.cpus[n].parked
        errors = (
            []
            if running
            else (pcp_rcu.check_pcp(pcp) if isinstance(pcp, pcp_rcu.RcuPerCpuPages) else mm_audit.check_pcp(pcp))
        )
        return pb.NodeSnapshot(
            cpu=n,
            pcp_pages=validate.to_page_list(pb.PageList, pcp.pages()),
            allocated=validate.to_page_list(pb.PageList, cluster.allocs[n].pages()),
            inflight=validate.to_page_list(pb.PageList, cluster.drains[n].inflight()),
            errors=errors,
            running=running,
            incarnation=INCARNATION,
        )

    def close(self) -> None:
        for strand in list(self.strands.values()):
            strand.close()


class CoordinatorZone:
    """The zone service as the drain rules' ZoneLocked effects and the audit's check call it
    (coordinator.zone_service.ZoneService's free_pages, holdings, zone), over the virtual zone's rules."""

    def __init__(self, cluster: VirtualCluster) -> None:
        self.rules = cluster.zone.rules
        self.zone = cluster.zone.zone

    def free_pages(self, cpu: int, pages: list[Page], transfer_id: str, incarnation: str, stream: str) -> ZoneReply:
        try:
            return self.rules.free_pages(cpu, pages, transfer_id, incarnation, stream).value
        except Refused as err:
            raise FailedPrecondition(str(err)) from None

    def holdings(self) -> dict[int, list]:
        return self.rules.holdings()


@dataclass
class DrainerSettings:
    """The drainer as a strategy sees it (coordinator.drain.strategy.DrainerView), with the coordinator's defaults."""

    clock: Callable[[], float]
    membership: Membership
    control: Control
    lease_ms: int = LEASE_MS
    flush_timeout_ms: int = FLUSH_TIMEOUT_MS
    gp_timeout_ms: int = GP_TIMEOUT_MS


class WholeCluster:
    """The CPUs and the coordinator in one process, on one queue (see the module docstring)."""

    def __init__(self, roles: Sequence[str], seed: int, rcu_swap: bool = False, keep_log: bool = True) -> None:
        self.nodes = VirtualCluster(
            roles, seed, zone_pages=max(1 << 14, PAGES_PER_CPU * len(roles)), rcu_swap=rcu_swap, keep_log=keep_log
        )
        self.queue = self.nodes.queue
        clock = self.queue.clock
        self.membership = Membership(len(roles), clock)
        for n, role in enumerate(roles):
            member = Member(n, f"virtual:{n}", ROLES[role], None, None, 0.0, incarnation=INCARNATION)  # type: ignore[arg-type]
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


def node_stats(nodes: VirtualCluster, n: int, base: dict[str, Any]) -> pb.NodeStats:
    """A CPU's statistics since `base` (its counters then), as GetStats answers (node.runtime.NodeRuntime.stats)."""
    cpu = nodes.cpus[n]
    task = next((s for s in cpu.sources if isinstance(s, LatencyTask)), None)
    return stats_since(n, nodes.roles[n], _counters(nodes, n), base, cpu.drain_wait_max_s, task)


def _counters(nodes: VirtualCluster, n: int) -> dict[str, Any]:
    return counters(nodes.pcps[n].stats, nodes.allocs[n], nodes.cpus[n])


def reset_stats(nodes: VirtualCluster) -> list[dict[str, Any]]:
    """GetStats(reset=True) on every CPU: the latency tasks' windows start over; returns the baselines."""
    for cpu in nodes.cpus:
        cpu.drain_wait_max_s = 0.0
        for source in cpu.sources:
            if isinstance(source, LatencyTask):
                source.reset_stats()
    return [_counters(nodes, n) for n in range(len(nodes.cpus))]


@dataclass
class PhaseRun:
    results: dict
    cluster: WholeCluster

    def results_json(self) -> str:
        return json.dumps(self.results, indent=2, sort_keys=True) + "\n"

    def log_digest(self) -> str:
        """SHA-256 of the event log: the CPUs' log and summary, then the drain driver's trace."""
        return hashlib.sha256((self.cluster.nodes.digest() + "\n" + self.cluster.trace_text()).encode()).hexdigest()


def run_phase(config: CompareConfig, keep_log: bool = True) -> PhaseRun:
    """One strategy phase of compare (config.strategies names exactly one) under virtual time: warm up,
    reset the counters, drain on compare's seeded schedule, let the last drains end, collect, audit."""
    if len(config.strategies) != 1:
        raise ValueError(f"a virtual phase runs one strategy, got {', '.join(config.strategies)}")
    (name,) = config.strategies
    if name == "qpw":
        raise ValueError("qpw under virtual time is not joined yet: run workqueue, remote or rcu-swap")
    if config.workload or config.cost_model or config.kernel != profiles.DEFAULT_KERNEL:
        raise ValueError("the virtual cluster runs the default tasks, costs and kernel profile only")
    if any(trigger != "demand" for trigger, weight in config.trigger_mix if weight):
        raise ValueError("the virtual cluster runs demand drains only (cma and offline need coordinator.contig)")
    strategy = STRATEGIES[name]
    cluster = WholeCluster(config.roles, config.seed, rcu_swap=name == "rcu-swap", keep_log=keep_log)
    queue, nodes = cluster.queue, cluster.nodes
    try:
        warmup, measure = kernel_s(config.warmup_s), kernel_s(config.measure_s)
        nodes.run(warmup)
        base = reset_stats(nodes)
        history: list[DrainRecord] = []
        errors: list[str] = []
        offsets = drain_schedule(config.seed, kernel_s(config.drain_interval_s), measure)
        pending = [len(offsets)]

        def done(record: DrainRecord | None, error: BaseException | None) -> None:
            pending[0] -= 1
            if record is not None:
                history.append(record)
            else:
                errors.append(f"demand: {type(error).__name__}: {error}")

        for offset in offsets:
            queue.at(warmup + offset, cluster.drain, strategy, done)
        nodes.run(warmup + measure)
        bound = queue.clock() + DRAIN_BOUND_S
        while pending[0] and (queue.next_time() or bound) <= bound:
            queue.step()
        if pending[0]:
            raise RuntimeError(f"{pending[0]} drains had not ended {DRAIN_BOUND_S}s after the measurement")
        stats = {n: node_stats(nodes, n, base[n]) for n in range(len(nodes.cpus))}
        report = cluster.audit()
    finally:
        cluster.close()
    history.sort(key=lambda r: r.started_at)
    phase = summarize_phase(stats, [r.to_pb() for r in history], report, errors, time_scale=1.0)
    results = {
        "engine": "virtual",
        "seed": config.seed,
        "kernel": config.kernel,
        "time_scale": 1.0,  # every time here is kernel time
        "hist_bucket_kernel_us": HIST_BUCKET_KERNEL_US,
        "phases": {name: {"cpus": phase.pop("cpus")}},
        "config": {
            "measure_s": config.measure_s,
            "warmup_s": config.warmup_s,
            "drain_interval_s": config.drain_interval_s,
            "kernel_measure_s": measure,
            "roles": list(config.roles),
            "strategies": [name],
        },
        "strategies": {name: phase},
        "events": queue.executed,
    }
    return PhaseRun(results, cluster)


def default_config(strategy: str, seed: int = 1, nr_cpus: int = len(DEFAULT_ROLES), **kw: Any) -> CompareConfig:
    """compare's quick configuration for one strategy at nr_cpus CPUs (compare_roles)."""
    return CompareConfig(seed=seed, roles=tuple(compare_roles(nr_cpus)), strategies=(strategy,), **kw)
