"""A few CPUs with their tasks and IRQs on one zone, in virtual time, with an event log.

The same sources as a node's (node.tasks, built as node.runtime builds them, with the same
defaults), the same allocator (node.alloc) and pcp code (node.mm.pcp), on VirtualCpus that share one
in-process zone (node.virtual.zone). Virtual time is kernel time: the wall engine's user-space
figures (periods, busy phases, the IRQ rate; node.shared.timebase) are divided by its TIME_SCALE,
and modeled costs occupy exactly their kernel time (CostModel at scale 1). Every random draw comes
from one RngTree: per CPU a subtree, and in it one stream per source, so an IRQ source drawing more
never shifts the housekeeping churn (the wall node shares one generator between them).

The log has one line per decision a CPU acts on (a source's step, a work item), stamped with the
virtual time as repr(float), which is exact; then a summary of each CPU and the zone. One seed gives
the same bytes on every run (tests/unit/test_virtual.py).
"""

import hashlib
from collections.abc import Sequence

from node import rtapp
from node.alloc import PageAllocator
from node.mm import pcp as pcpmod
from node.mm.zone import Zone
from node.shared.timebase import TIME_SCALE, CostModel
from node.sim.clock import EventQueue
from node.sim.net import LOOPBACK_ZONE_RTT_US, Latency, SimNetwork
from node.sim.rng import RngTree
from node.tasks import Housekeeping, IrqSource, LatencyTask
from node.virtual.cpu import VirtualCpu
from node.virtual.fiber import FiberLock
from node.virtual.zone import LocalZone, SharedZone

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
    def __init__(self, roles: Sequence[str], seed: int, zone_pages: int = 1 << 14) -> None:
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
        self._started = False
        self.cpus: list[VirtualCpu] = []
        self.pcps: list[pcpmod.PerCpuPages] = []
        self.zones: list[LocalZone] = []
        self.allocs: list[PageAllocator] = []
        for n, role in enumerate(roles):
            cpu = VirtualCpu(n, self.queue)
            cpu.on_event = self._event
            # Fibers share one thread: a threading.Lock's blocking acquire would hang it (node.virtual.fiber).
            pcp = pcpmod.PerCpuPages(n, high=high, batch=batch, lock=FiberLock(f"cpu{n} pcp->lock"))
            local = LocalZone(self.zone, cpu)
            # No coordinator: this zone never refuses, so direct reclaim (the stub's one use) never runs.
            alloc = PageAllocator(cpu, pcp, local, coordinator_stub=None)
            cpu.sources = self._sources(role, alloc, self.rng.subtree(f"cpu{n}"))
            self.cpus.append(cpu)
            self.pcps.append(pcp)
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

    def _event(self, cpu: int, what: str, detail: str) -> None:
        self.log.append(f"{self.clock()!r} cpu{cpu} {what} {detail}")

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
        return "\n".join(self.log + self.summary()) + "\n"

    def digest(self) -> str:
        return hashlib.sha256(self.text().encode()).hexdigest()
