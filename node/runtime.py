"""One simulated CPU assembled: pcp, CPU thread, zone client, allocator, tasks.

The role decides what runs on the CPU:
- housekeeping: allocation churn plus simulated IRQs;
- isolated-preemptible: a SCHED_OTHER-like latency task (queued work preempts it);
- isolated-rt: a SCHED_FIFO-like latency task (queued work waits for its busy phase);
- idle: nothing (benchmarks, tests).

The pcp design follows the coordinator's default strategy (RegisterReply.strategy):
STRATEGY_RCU_SWAP gives two list sets behind a pointer (node.mm.pcp_rcu, drained by
node.rcu_drain), anything else the v6.0 pcp spinlock (node.mm.pcp, node.remote_lock).
Workqueue drains work with both: they run on the CPU itself.
"""

import threading
from dataclasses import dataclass
from typing import Any

from node import rtapp
from node.alloc import PageAllocator, PcpOps
from node.api.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu import MEMBERSHIP, OPERATOR, Cpu
from node.cpu_report import counters, cpu_events, stats_since
from node.epoch import CoordinatorEpoch
from node.metrics import NodeMetrics
from node.mm import pcp as pcpmod
from node.mm import pcp_rcu
from node.mm import profile as profiles
from node.mm.lock import spin_locked
from node.rcu import RcuCpu
from node.rcu_drain import RcuDrain
from node.rcu_drain_rule import check_rcu_swap
from node.remote_lock import RemotePcpLock
from node.remote_lock_rule import check_remote_lock
from node.shared.timebase import CostModel, lease_clock
from node.shared.transfer_log import drain_ran
from node.sim.rng import Stream
from node.tasks import (
    IRQ_HZ,
    NOISE_THRESHOLD_US,
    STAT_INTERVAL_US,
    WORKING_SET,
    Housekeeping,
    IrqSource,
    LatencyTask,
    VmstatRefresh,
)
from node.wall_ids import WALL_IDS


@dataclass(frozen=True)
class TaskConfig:
    """Workload knobs (wall time: these are user-space tasks, see node.shared.timebase)."""

    period_s: float
    busy_s: float
    deadline_s: float
    allocs: int = 2
    working_set: int = WORKING_SET
    irq_hz: float = IRQ_HZ
    segments: tuple[tuple[str, float], ...] = ()  # run/sleep after each wake-up; (): one run of busy_s
    loops: int | None = None  # periods the latency task runs; None: until stopped

    @classmethod
    def for_task(cls, task: rtapp.RtTask) -> "TaskConfig":
        return cls(
            period_s=task.period_s,
            busy_s=task.busy_s,
            deadline_s=task.deadline_s,
            allocs=task.allocs,
            segments=task.segments,
            loops=task.loops,
        )

    @classmethod
    def for_role(cls, role: str) -> "TaskConfig":
        """The default task set's task of this role (node/workloads/default.json): the
        preemptible one's period (20 ms wall = 80 us kernel) is long against the few ms a buddy
        fallback can wait for zone->lock, as a real cyclictest period is against kernel lock
        noise, and short enough for >1000 wake-ups in a quick run; the RT task's 150 ms busy
        phase stands for a polling loop that holds its CPU."""
        return cls.for_task(rtapp.default_task(role))


class NodeRuntime:
    def __init__(
        self,
        cpu_id: int,
        role: str,
        high: int,
        batch: int,
        zone,
        coordinator_stub,
        seed: int,
        cost: CostModel,
        config: TaskConfig,
        clock,
        registry=None,
        fencing: bool = True,
        faults=None,
        strategy: int = pb.STRATEGY_REMOTE,
        kernel: str = profiles.DEFAULT_KERNEL,
        transfer_log=None,
        high_max: int | None = None,
    ):
        """`registry`: a prometheus_client CollectorRegistry to export this CPU's metrics to (None: none).
        `fencing` False is the checker's broken variant (node.remote_lock).
        `strategy`: the cluster's default drain strategy, which decides the pcp design (module docstring);
        `kernel`: the kernel profile (node.mm.profile) whose pcp semantics the spinlock design follows.
        `transfer_log`: node.shared.transfer_log.TransferLog (--transfer-log), or None.
        `high_max`: a v6.7+ profile's pcp->high_max, as registration answered it (the coordinator's
        coordinator.pageset.Pageset); None: `high`, no auto-tuning."""
        self.cpu_id = cpu_id
        self.transfer_log = transfer_log
        self.role = role
        self.cost = cost
        self.zone = zone
        self.clock = clock
        # Membership (node.agent): this process's id, and until when its lease lets it use its pcp,
        # on the lease clock (CLOCK_BOOTTIME: a suspended machine's lease runs out meanwhile).
        self.incarnation = WALL_IDS.incarnation()
        self.lease_clock = lease_clock
        self.epoch = CoordinatorEpoch()  # node.epoch: which coordinator epochs this node still obeys
        self.lease_until = float("inf")
        self.rejoins = 0
        self.cpu_offline = False  # hotplug: offline, so another CPU may drain its lists (remote_pcp_lock)
        rcu = RcuCpu()
        self.cpu = Cpu(cpu_id, clock=clock, rcu=rcu)
        self.profile = profiles.get(kernel)
        # remote_lock: the v6.0 pcp spinlock taken over RPC; rcu_drain: the rcu-swap drain. One of
        # them is None; remote_drain is the other (what reports and the audit read).
        self.pcp: pcpmod.PerCpuPages | pcp_rcu.RcuPerCpuPages
        self.pcp_ops: PcpOps
        self.remote_lock: RemotePcpLock | None
        self.rcu_drain: RcuDrain | None
        self.remote_drain: RemotePcpLock | RcuDrain
        if strategy == pb.STRATEGY_RCU_SWAP:
            self.pcp = pcp_rcu.RcuPerCpuPages(
                cpu_id,
                high=high,
                batch=batch,
                drain_lock=threading.Lock(),
                list_locks=(self.cpu.pcp_lock(), self.cpu.pcp_lock()),
            )
            self.pcp_ops = pcp_rcu
            self.remote_lock = None
            self.rcu_drain = self.remote_drain = RcuDrain(self.pcp, rcu, clock, transfer_log)
        else:
            self.pcp = pcpmod.PerCpuPages(cpu_id, high=high, batch=batch, lock=self.cpu.pcp_lock())
            self.pcp_ops = profiles.pcp_ops(self.profile)
            self.rcu_drain = None
            self.remote_lock = self.remote_drain = RemotePcpLock(
                self.pcp, clock, fencing=fencing, transfer_log=transfer_log, drain=self.profile.drain
            )
        profiles.set_up_pcp(self.pcp, self.profile, cost.data_slice_pages())
        self.set_pageset(high, batch, high if high_max is None else high_max)
        self.alloc = PageAllocator(
            self.cpu,
            self.pcp,
            zone,
            coordinator_stub,
            fenced=self.fenced,
            faults=faults,
            ops=self.pcp_ops,
            transfer_log=transfer_log,
        )
        self.housekeeping: Housekeeping | None = None
        self.task: LatencyTask | None = None
        self.irq: IrqSource | None = None
        rng = Stream(f"{seed}:{cpu_id}")  # the virtual CPU's kind of stream: the same draws by the same rules
        if role == "housekeeping":
            hk = self.housekeeping = Housekeeping(self.alloc, rng, clock, working_set=config.working_set)
            self.irq = IrqSource(self.alloc, hk, rng, clock, config.irq_hz, cost.wall(cost.irq_us))
            self.cpu.sources = [hk, self.irq]
        elif role in ("isolated-preemptible", "isolated-rt"):
            rt = role == "isolated-rt"
            self.task = LatencyTask(
                "rt" if rt else "preemptible",
                config.period_s,
                config.busy_s,
                config.deadline_s,
                config.allocs,
                self.alloc,
                clock,
                rt=rt,
                noise_threshold_s=cost.wall(NOISE_THRESHOLD_US),
                segments=config.segments,
                loops=config.loops,
            )
            self.cpu.sources = [self.task]
        self.vmstat: VmstatRefresh | None = None
        # vmstat_update is where v6.7+ decays pcp->high; vmstat_shepherd skips isolated CPUs (v6.5+).
        shepherded = not (role in ("isolated-preemptible", "isolated-rt") and self.profile.vmstat_skips_isolated)
        if self.profile.pcp_high_auto and shepherded:
            self.vmstat = VmstatRefresh(self._vmstat_update, clock, cost.wall(STAT_INTERVAL_US))
            self.cpu.sources = [*self.cpu.sources, self.vmstat]
        self.metrics: NodeMetrics | None = None
        if registry is not None:
            # Histograms are fed by hooks, once per period / work item / remote grant, never per page;
            # everything else is read at scrape time (node.metrics).
            self.metrics = NodeMetrics(registry, self)
            self.cpu.on_work_done = self.metrics.work_done
            if self.remote_lock is not None:
                self.remote_lock.on_wait = self.metrics.lock_wait.observe
                self.remote_lock.on_hold = self.metrics.lock_hold.observe
            if self.task is not None and self.metrics.task_wakeup is not None:  # both or neither
                self.task.on_wake = self.metrics.task_wakeup.observe
        self._base: dict[str, Any] = {}  # _counters(): counts (int) and busy seconds (float)
        self._reset_base()

    def start(self, paused: bool = False) -> None:
        """`paused`: parked for the agent until the coordinator has rebuilt its zone."""
        self.cpu.start(paused, by=MEMBERSHIP)

    def stop(self) -> None:
        self.cpu.stop()

    # ------------------------------------------------------------- membership
    def fenced(self) -> bool:
        """The membership lease has run out: no allocation may use the pcp or the zone."""
        return self.lease_clock() > self.lease_until

    def lease_left(self) -> float:
        return self.lease_until - self.lease_clock()

    def set_pageset(self, high: int, batch: int, high_max: int) -> None:
        """pageset_update: plain stores the fast path reads racily (WRITE_ONCE in the kernel). `high` is
        the zone's high (high_min from v6.7); `high_max` the zone's for the same online CPUs (ignored
        before v6.7)."""
        self.pcp_ops.pageset_update(self.pcp, high, high_max, batch)

    def holdings(self) -> list:
        """Every page this CPU holds: on its lists, held by its tasks, taken by a remote drainer
        that has not committed. Call with the CPU paused."""
        return self.pcp.pages() + self.alloc.pages() + self.remote_drain.inflight()

    def discard(self) -> None:
        """This CPU was declared dead and the zone took its pages back: forget them all, and
        take a new incarnation to register with. Call with the CPU paused."""
        self.remote_drain.discard()
        with spin_locked(self.pcp.lock):
            self.pcp.discard()
        self.alloc.discard()
        if self.housekeeping is not None:
            self.housekeeping.held.clear()
        self.incarnation = WALL_IDS.incarnation()
        self.zone.incarnation = self.incarnation
        if self.transfer_log is not None:
            self.transfer_log.write("discard")
            self.transfer_log.fixed["inc"] = self.incarnation
        self.rejoins += 1

    def set_run_state(self, paused: bool, cpu_offline: bool) -> bool:
        """SetRunState: hold the CPU paused for the operator (audits, tests, hotplug) or let it go,
        and mark it offline or online. Blocks until the CPU reaches a safe point; returns whether
        the operator held it paused before."""
        if cpu_offline and not paused:
            raise InvalidArgument("cpu_offline is only for pausing")
        # Callers of this RPC share one hold; the agent's own (a node rejoining) is apart from it.
        was_paused = self.cpu.held_paused_by(OPERATOR)
        if not self.cpu.set_paused(paused):
            raise DeadlineExceeded("the CPU did not reach a safe point in time; this pause was undone")
        if cpu_offline or not paused:
            self.cpu_offline = cpu_offline
        return was_paused

    # ------------------------------------------------------------- remote drains
    def remote_pcp_lock(self) -> RemotePcpLock:
        """The pcp lock a drainer on another CPU takes, if this CPU's pcp design and kernel profile
        let it (node.remote_lock_rule.check_remote_lock)."""
        check_remote_lock(self.cpu_id, self.remote_lock is not None, self.profile, self.cpu_offline)
        assert self.remote_lock is not None  # checked above: the v6.0 pcp lock
        return self.remote_lock

    def rcu_swap(self) -> RcuDrain:
        """The rcu-swap drain of this CPU's RCU list sets, if its pcp has them."""
        check_rcu_swap(self.cpu_id, self.rcu_drain is not None)
        assert self.rcu_drain is not None  # checked above
        return self.rcu_drain

    def rcu_grants(self) -> RcuDrain:
        """Where this CPU's rcu-swap grants are released, if it can have any."""
        if self.rcu_drain is None:
            raise FailedPrecondition(f"cpu {self.cpu_id} has no rcu-swap grants")
        return self.rcu_drain

    def set_cost_factor(self, factor: float) -> None:
        """A slow CPU (chaos): every modeled stretch of work on it takes `factor` times longer."""
        self.cpu.slowdown = factor

    def queue_drain_work(self):
        """queue_work_on(cpu, mm_percpu_wq, drain_local_pages_wq)."""
        return self.cpu.queue_work("workqueue", self._drain_local_pages)

    def _vmstat_update(self) -> None:
        """vmstat_update's pcp part: refresh_cpu_vm_stats -> decay_pcp_high, run by a kworker here."""
        self.cpu.occupy(self.cost.wall(self.cost.workqueue_dispatch_us))
        self.pcp_ops.decay_pcp_high(self.zone, self.pcp)

    def _drain_local_pages(self) -> int:
        # The kworker's wake-up and the switches to it and back cost this CPU too.
        self.cpu.occupy(self.cost.wall(self.cost.workqueue_dispatch_us))
        pages = self.pcp_ops.drain_pages_zone(self.zone, self.pcp)
        drain_ran(self.transfer_log, "work", pages)  # before FlushWork can answer
        return pages

    def check_pcp(self) -> list:
        """The pcp consistency findings (node.mm.audit.check_pcp) of whichever design runs here."""
        return self.pcp_ops.check_pcp(self.pcp)

    # ------------------------------------------------------------- statistics
    def _counters(self) -> dict[str, Any]:
        return counters(self.pcp.stats, self.alloc, self.cpu)

    def _reset_base(self) -> None:
        self._base = self._counters()
        self.cpu.drain_wait_max_s = 0.0
        if self.task:
            self.task.reset_stats()

    def stats(self, reset: bool = False) -> pb.NodeStats:
        now, base = self._counters(), self._base
        msg = stats_since(self.cpu_id, self.role, now, base, self.cpu.drain_wait_max_s, self.task)
        if reset:
            self._reset_base()
        return msg

    def events(self, start: float, end: float) -> list[pb.CpuEvent]:
        """This CPU's logged events overlapping [start, end] (cpu_events)."""
        return cpu_events(self.cpu, self.alloc, self.task, self.remote_drain, start, end, self.clock())
