"""A few CPUs with their tasks and IRQs on one zone, in virtual time, with an event log.

The same sources as a node's (node.tasks, built as node.runtime builds them, with the same
defaults), the same allocator (node.alloc) and pcp code (node.mm.pcp), on VirtualCpus that share one
in-process zone (node.virtual.zone). Virtual time is kernel time: the wall engine's user-space
figures (periods, busy phases, the IRQ rate; node.shared.timebase) are divided by its TIME_SCALE,
and modeled costs occupy exactly their kernel time (CostModel at scale 1). Every random draw comes
from one RngTree: per CPU a subtree, and in it one stream per source, so an IRQ source drawing more
never shifts the housekeeping churn (the wall node shares one generator between them).

Each CPU's pcp->lock is a VirtualPcpLock and its RCU quiescent states a VirtualRcuCpu, so a drainer
elsewhere reaches it through its node half (`drains`: node.virtual.drain's VirtualRemotePcpLock, or
VirtualRcuDrain over the RCU list sets with `rcu_swap`, as node.runtime picks the design by the
cluster's strategy) and through `queue_drain_work` (queue_work_on), at exact virtual instants.

The log has one line per decision a CPU acts on (a source's step, a work item), stamped with the
virtual time as repr(float), which is exact; then a summary of each CPU and the zone. One seed gives
the same bytes on every run (tests/unit/test_virtual.py). A large run may keep only the log's
running digest (`keep_log=False`): the digest is the same either way.
"""

import hashlib
from collections.abc import Sequence

from node import rtapp
from node.alloc import PageAllocator
from node.cpu import WorkItem
from node.mm import pcp as pcpmod
from node.mm import pcp_rcu
from node.mm.zone import Zone
from node.shared.timebase import TIME_SCALE, CostModel
from node.sim.clock import EventQueue
from node.sim.net import LOOPBACK_ZONE_RTT_US, Latency, SimNetwork
from node.sim.rng import RngTree
from node.tasks import Housekeeping, IrqSource, LatencyTask
from node.virtual.cpu import VirtualCpu
from node.virtual.drain import VirtualRcuCpu, VirtualRcuDrain, VirtualRemotePcpLock
from node.virtual.pcp_lock import VirtualPcpLock
from node.virtual.zone import CoordinatorStub, LocalZone, SharedZone

KERNEL = CostModel(time_scale=1.0)  # its wall(us) is then kernel seconds: virtual time is kernel time
ZONE_START_PFN = 1 << 20  # as the coordinator's zone (coordinator.__main__)
# The wall engine's defaults (node.runtime.TaskConfig, node.tasks), in wall seconds.
HOUSEKEEPING_PERIOD_S = 5e-3
HOUSEKEEPING_USER_S = 0.25e-3
IRQ_HZ = 200.0
WORKING_SET = 1500
PREEMPT_SLICE_S = 0.5e-3


def kernel_s(wall_s: float) -> float:
    """The kernel time a wall-engine figure stands for."""
    return wall_s / TIME_SCALE


class VirtualCluster:
    def __init__(
        self,
        roles: Sequence[str],
        seed: int,
        zone_pages: int = 1 << 14,
        rcu_swap: bool = False,
        keep_log: bool = True,
    ) -> None:
        self.seed = seed
        self.queue = EventQueue()
        self.clock = self.queue.clock
        self.rng = RngTree(seed)
        net = SimNetwork(
            self.queue, self.rng.stream("net"), Latency.scaled(LOOPBACK_ZONE_RTT_US, 1e-6 / 2 / TIME_SCALE)
        )
        zone = Zone(ZONE_START_PFN, zone_pages, len(roles))
        self.zone = SharedZone(zone, KERNEL, net)
        batch = zone.zone_batchsize()
        high = zone.zone_highsize(batch, len(roles))
        self.log: list[str] = []
        self.keep_log = keep_log
        self._digest = hashlib.sha256()  # of the log's lines so far, each with its newline
        self._started = False
        self.roles = list(roles)
        self.ops = pcp_rcu if rcu_swap else pcpmod  # the pcp design's operations (node.alloc.PcpOps)
        self.cpus: list[VirtualCpu] = []
        self.pcps: list[pcpmod.PerCpuPages | pcp_rcu.RcuPerCpuPages] = []
        self.drains: list[VirtualRemotePcpLock | VirtualRcuDrain] = []
        self.zones: list[LocalZone] = []
        self.allocs: list[PageAllocator] = []
        for n, role in enumerate(roles):
            cpu = VirtualCpu(n, self.queue)
            cpu.on_event = self._event
            # Cpu builds the wall RcuCpu; its loop calls only what both have (node.rcu_gp.QuiescentStates).
            rcu = cpu.rcu = VirtualRcuCpu(self.queue)  # type: ignore[assignment]
            pcp: pcpmod.PerCpuPages | pcp_rcu.RcuPerCpuPages
            drain: VirtualRemotePcpLock | VirtualRcuDrain
            if rcu_swap:
                pcp = pcp_rcu.RcuPerCpuPages(n, high=high, batch=batch)
                drain = VirtualRcuDrain(pcp, rcu, self.queue)
            else:
                # Fibers share one thread: a threading.Lock's blocking acquire would hang it (node.virtual.fiber).
                pcp = pcpmod.PerCpuPages(n, high=high, batch=batch, lock=VirtualPcpLock(self.queue, cpu))
                drain = VirtualRemotePcpLock(pcp, self.queue)
            local = LocalZone(self.zone, cpu)
            # Direct reclaim's DrainAllPages reaches the coordinator's end of the zone (node.virtual.zone).
            alloc = PageAllocator(cpu, pcp, local, coordinator_stub=CoordinatorStub(self.zone, cpu), ops=self.ops)
            cpu.sources = self._sources(role, alloc, self.rng.subtree(f"cpu{n}"))
            self.cpus.append(cpu)
            self.pcps.append(pcp)
            self.drains.append(drain)
            self.zones.append(local)
            self.allocs.append(alloc)

    def _sources(self, role: str, alloc: PageAllocator, rng: RngTree) -> list:
        clock = self.clock
        if role == "housekeeping":
            hk = Housekeeping(
                alloc,
                rng.stream("housekeeping"),
                clock,
                period=kernel_s(HOUSEKEEPING_PERIOD_S),
                user_s=kernel_s(HOUSEKEEPING_USER_S),
                working_set=WORKING_SET,
            )
            irq = IrqSource(alloc, hk, rng.stream("irq"), clock, IRQ_HZ * TIME_SCALE, KERNEL.wall(KERNEL.irq_us))
            return [hk, irq]
        if role in (rtapp.ROLE_PREEMPTIBLE, rtapp.ROLE_RT):
            task = rtapp.default_task(role)
            return [
                LatencyTask(
                    "rt" if task.rt else "preemptible",
                    kernel_s(task.period_s),
                    kernel_s(task.busy_s),
                    kernel_s(task.deadline_s),
                    task.allocs,
                    alloc,
                    clock,
                    rt=task.rt,
                    slice_s=kernel_s(PREEMPT_SLICE_S),
                    noise_threshold_s=KERNEL.wall(5.0),
                    segments=tuple((kind, kernel_s(s)) for kind, s in task.segments),
                    loops=task.loops,
                )
            ]
        if role == "idle":
            return []
        raise ValueError(f"unknown role {role!r}: housekeeping, {rtapp.ROLE_PREEMPTIBLE}, {rtapp.ROLE_RT} or idle")

    def queue_drain_work(self, n: int) -> WorkItem:
        """queue_work_on(n, mm_percpu_wq, drain_local_pages_wq), as node.runtime queues it: the kworker's
        dispatch costs the CPU, then it drains its own lists under its own lock."""
        cpu, pcp, local = self.cpus[n], self.pcps[n], self.zones[n]

        def drain_local_pages() -> int:
            cpu.occupy(KERNEL.wall(KERNEL.workqueue_dispatch_us))
            return self.ops.drain_pages_zone(local, pcp)

        return cpu.queue_work("workqueue", drain_local_pages)

    def note(self, line: str) -> None:
        """One line of the event log, stamped with the virtual time."""
        line = f"{self.clock()!r} {line}"
        self._digest.update(line.encode() + b"\n")
        if self.keep_log:
            self.log.append(line)

    def _event(self, cpu: int, what: str, detail: str) -> None:
        self.note(f"cpu{cpu} {what} {detail}")

    def run(self, until: float) -> None:
        """Start the CPUs (the first time) and run every event up to virtual time `until`."""
        if not self._started:
            self._started = True
            for cpu in self.cpus:
                cpu.start()
        self.queue.run(until)

    def close(self) -> None:
        for cpu in self.cpus:
            cpu.stop()

    def summary(self) -> list[str]:
        out = []
        for cpu, pcp, alloc, local in zip(self.cpus, self.pcps, self.allocs, self.zones, strict=True):
            line = (
                f"cpu{cpu.cpu} busy {cpu.busy_s!r} work {cpu.work_run} errors {cpu.step_errors} "
                f"allocs {alloc.allocs} frees {alloc.frees} pcp {pcp.count} zone_calls {local.calls}"
            )
            for source in cpu.sources:
                if isinstance(source, LatencyTask):
                    t = source.totals
                    line += (
                        f" runs {t.runs} misses {t.deadline_misses} wake_max {max(source.wake_latency, default=0.0)!r}"
                    )
            out.append(line)
        lock = self.zone.lock
        out.append(
            f"zone free {self.zone.zone.free_pages} lock {lock.acquisitions} contended {lock.contended} "
            f"events {self.queue.executed}"
        )
        return out

    def text(self) -> str:
        if not self.keep_log:
            raise ValueError("this cluster keeps only its log's digest (keep_log=False)")
        return "\n".join(self.log + self.summary()) + "\n"

    def digest(self) -> str:
        """SHA-256 of text(), kept or not."""
        digest = self._digest.copy()
        for line in self.summary():
            digest.update(line.encode() + b"\n")
        return digest.hexdigest()
