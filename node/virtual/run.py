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

What a wall node is given besides its role (node.__main__), a run passes as `Options`: the kernel
profile (its pcp operations, pcp->high auto-tuning with its vmstat_update, free_high_batched, as
node.runtime.NodeRuntime builds them), the cost model (its figures at time scale 1), the rt-app task
set (each CPU's latency task: its task on that CPU, else the default set's of its role), and the
host-noise model (node.sim.noise: each timed wake-up's lateness, one stream per CPU; NONE by default,
so the golden digests hold only the model's own delays).

The log has one line per decision a CPU acts on (a source's step, a work item), stamped with the
virtual time as repr(float), which is exact; then a summary of each CPU and the zone. One seed gives
the same bytes on every run (tests/unit/test_virtual.py). A large run may keep only the log's
running digest (`keep_log=False`): the digest is the same either way.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node import rtapp
from node.alloc import PageAllocator
from node.cpu import WorkItem
from node.mm import pcp as pcpmod
from node.mm import pcp_high, pcp_rcu
from node.mm import profile as profiles
from node.mm.watermark import pageset_batch
from node.mm.zone import DEFAULT_ZONE_PAGES, ZONE_START_PFN, Zone
from node.shared.timebase import TIME_SCALE, CostModel
from node.shared.transfer_log import drain_ran
from node.sim import noise
from node.sim.clock import EventQueue
from node.sim.net import LOOPBACK_ZONE_RTT_US, Latency, SimNetwork
from node.sim.rng import RngTree
from node.tasks import (
    HOUSEKEEPING_PERIOD_S,
    HOUSEKEEPING_USER_S,
    IRQ_HZ,
    NOISE_THRESHOLD_US,
    PREEMPT_SLICE_S,
    STAT_INTERVAL_US,
    Housekeeping,
    IrqSource,
    LatencyTask,
    VmstatRefresh,
)
from node.virtual.cpu import VirtualCpu
from node.virtual.drain import VirtualRcuDrain, VirtualRemotePcpLock
from node.virtual.zone import CoordinatorStub, LocalZone, SharedZone

KERNEL = CostModel(time_scale=1.0)  # its wall(us) is then kernel seconds: virtual time is kernel time


def kernel_s(wall_s: float) -> float:
    """The kernel time a wall-engine figure stands for."""
    return wall_s / TIME_SCALE


@dataclass(frozen=True)
class Options:
    """What every CPU of the cluster runs with (the module docstring)."""

    kernel: str = profiles.DEFAULT_KERNEL  # a node.mm.profile name (the coordinator's --kernel)
    cost: CostModel = KERNEL  # at time_scale 1: its wall(us) is kernel seconds
    workload: rtapp.Workload | None = None  # None: the default task set's task of each role
    noise: str = noise.NONE  # one of node.sim.noise.NOISE

    def __post_init__(self) -> None:
        profiles.get(self.kernel)  # an unknown kernel is a ValueError here, before any CPU is built
        if self.noise not in noise.NOISE:
            raise ValueError(f"unknown noise model {self.noise!r}: one of {', '.join(noise.NOISE)}")
        if self.cost.time_scale != 1.0:
            raise ValueError(
                f"virtual time is kernel time: the cost model's time_scale must be 1, not {self.cost.time_scale}"
            )


_CHUNK_LINES = 4096  # log lines hashed at once (note)
DEFAULTS = Options()  # compare's defaults: kernel 6.1, the default costs and task set, no host noise


class VirtualCluster:
    def __init__(
        self,
        roles: Sequence[str],
        seed: int,
        zone_pages: int = DEFAULT_ZONE_PAGES,  # the wall cluster's zone unless told
        rcu_swap: bool = False,
        keep_log: bool = True,
        options: Options = DEFAULTS,
    ) -> None:
        self.seed = seed
        self.options = options
        self.cost = cost = options.cost
        profile = profiles.get(options.kernel)
        self.queue = EventQueue()
        self.clock = self.queue.clock
        self.rng = RngTree(seed)
        net = SimNetwork(
            self.queue, self.rng.stream("net"), Latency.scaled(LOOPBACK_ZONE_RTT_US, 1e-6 / 2 / TIME_SCALE)
        )
        zone = Zone(
            ZONE_START_PFN, zone_pages, len(roles), pcppage_migratetype_cached=profile.pcppage_migratetype_cached
        )
        self.zone = SharedZone(zone, cost, net)
        batch = pageset_batch(zone.managed_pages)  # as the wall coordinator's
        high = zone.zone_highsize(batch, len(roles))
        self._log: list[str] = []
        self.keep_log = keep_log
        self._digest = hashlib.sha256()  # of the log's lines so far, each with its newline
        self._pending: list[str] = []  # lines not yet in the digest (or the log): see note
        self._started = False
        self.roles = list(roles)
        # The pcp design's operations (node.alloc.PcpOps): the RCU list sets', or the profile's spinlock design.
        self.ops = pcp_rcu if rcu_swap else profiles.pcp_ops(profile)
        self.high, self.batch = high, batch
        self.high_max = pcp_high.pageset_high_max(high, zone.managed_pages, batch, len(roles))
        self.profile = profile
        self.rcu_swap = rcu_swap
        self.cpus: list[VirtualCpu] = []
        self.pcps: list[pcpmod.PerCpuPages | pcp_rcu.RcuPerCpuPages] = []
        self.drains: list[VirtualRemotePcpLock | VirtualRcuDrain] = []
        self.zones: list[LocalZone] = []
        self.allocs: list[PageAllocator] = []
        self._lives = [1] * len(roles)  # the processes each CPU has run, this one included
        self._killed: set[int] = set()
        for n in range(len(roles)):
            for parts, part in zip(self._parts(), self._build(n, self.rng.subtree(f"cpu{n}")), strict=True):
                parts.append(part)

    def _parts(self) -> tuple[list, ...]:
        return self.cpus, self.pcps, self.drains, self.zones, self.allocs

    def _build(self, n: int, rng: RngTree) -> tuple:
        """CPU n's process: its VirtualCpu with its sources, pcp, drain half, zone client and allocator."""
        profile, options, cost = self.profile, self.options, self.cost
        role = self.roles[n]
        cpu = VirtualCpu(n, self.queue, noise.wake_slack(options.noise, rng.stream("slack"), TIME_SCALE))
        cpu.on_event = self._event
        pcp: pcpmod.PerCpuPages | pcp_rcu.RcuPerCpuPages
        drain: VirtualRemotePcpLock | VirtualRcuDrain
        if self.rcu_swap:
            pcp = pcp_rcu.RcuPerCpuPages(n, high=self.high, batch=self.batch)
            drain = VirtualRcuDrain(pcp, cpu.rcu, self.queue, sigstop=cpu.sigstop)
        else:
            pcp = pcpmod.PerCpuPages(n, high=self.high, batch=self.batch, lock=cpu.pcp_lock())
            drain = VirtualRemotePcpLock(pcp, self.queue, drain=profile.drain, sigstop=cpu.sigstop)
        profiles.set_up_pcp(pcp, profile, cost.data_slice_pages())
        self.ops.pageset_update(pcp, self.high, self.high_max, self.batch)  # node.runtime.NodeRuntime.set_pageset
        local = LocalZone(self.zone, cpu)
        # Direct reclaim's DrainAllPages reaches the coordinator's end of the zone (node.virtual.zone).
        alloc = PageAllocator(cpu, pcp, local, coordinator_stub=CoordinatorStub(self.zone, cpu), ops=self.ops)
        cpu.sources = self._sources(n, role, alloc, rng)
        # vmstat_update is where v6.7+ decays pcp->high; vmstat_shepherd skips isolated CPUs from v6.5
        # (node.runtime.NodeRuntime, which cites both).
        shepherded = not (role in (rtapp.ROLE_PREEMPTIBLE, rtapp.ROLE_RT) and profile.vmstat_skips_isolated)
        if profile.pcp_high_auto and shepherded:
            refresh = VmstatRefresh(self._vmstat_update(cpu, pcp, local), self.clock, cost.wall(STAT_INTERVAL_US))
            cpu.sources = [*cpu.sources, refresh]
        return cpu, pcp, drain, local, alloc

    def kill(self, n: int) -> None:
        """SIGKILL of CPU n's process: its code ends where it waits (its fiber closed: FiberExit unwinds
        the stack, as the wall process's threads vanish), and its memory is never run again."""
        self.cpus[n].stop()
        self._killed.add(n)

    def restart(self, n: int) -> None:
        """A new process on CPU n after `kill`: every part built afresh (no page, no task state, no call
        stack of the old one), its random streams a new subtree, on the same CPU (its cost factor kept:
        a slow CPU stays slow); running from now if the cluster has started."""
        if n not in self._killed:
            raise RuntimeError(f"cpu {n}: restarted while its process still runs (kill it first)")
        self._killed.discard(n)
        old = self.cpus[n]
        life = self._lives[n]
        self._lives[n] += 1
        parts = self._build(n, self.rng.subtree(f"cpu{n}/life{life}"))
        for kind, part in zip(self._parts(), parts, strict=True):
            kind[n] = part
        cpu = self.cpus[n]
        cpu.slowdown = old.slowdown
        if self._started:
            cpu.start()

    def _sources(self, n: int, role: str, alloc: PageAllocator, rng: RngTree) -> list:
        clock, cost, workload = self.clock, self.cost, self.options.workload
        if role == "housekeeping":
            hk = Housekeeping(
                alloc,
                rng.stream("housekeeping"),
                clock,
                period=kernel_s(HOUSEKEEPING_PERIOD_S),
                user_s=kernel_s(HOUSEKEEPING_USER_S),
            )
            irq = IrqSource(alloc, hk, rng.stream("irq"), clock, IRQ_HZ * TIME_SCALE, cost.wall(cost.irq_us))
            return [hk, irq]
        if role in (rtapp.ROLE_PREEMPTIBLE, rtapp.ROLE_RT):
            # node.__main__.task_config: the task set's task on this CPU, else the default set's of its role.
            task = (workload.task_on(n) if workload is not None else None) or rtapp.default_task(role)
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
                    noise_threshold_s=cost.wall(NOISE_THRESHOLD_US),
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
            cpu.occupy(self.cost.wall(self.cost.workqueue_dispatch_us))
            pages = self.ops.drain_pages_zone(local, pcp)
            drain_ran(local.transfer_log, "work", pages)  # the CPU's transfer log (the zone client's)
            return pages

        return cpu.queue_work("workqueue", drain_local_pages)

    def _vmstat_update(
        self, cpu: VirtualCpu, pcp: pcpmod.PerCpuPages | pcp_rcu.RcuPerCpuPages, local: LocalZone
    ) -> Callable[[], None]:
        """vmstat_update's pcp part on a CPU (node.runtime.NodeRuntime._vmstat_update): a kworker's
        dispatch, then refresh_cpu_vm_stats -> decay_pcp_high."""

        def update() -> None:
            cpu.occupy(self.cost.wall(self.cost.workqueue_dispatch_us))
            self.ops.decay_pcp_high(local, pcp)

        return update

    def note(self, line: str) -> None:
        """One line of the event log, stamped with the virtual time."""
        pending = self._pending
        pending.append(f"{self.clock()!r} {line}")
        if len(pending) >= _CHUNK_LINES:
            self._take_pending()

    @property
    def log(self) -> list[str]:
        """The event log's lines so far (with keep_log; else empty)."""
        self._take_pending()
        return self._log

    def _event(self, cpu: int, what: str, detail: str) -> None:
        self.note(f"cpu{cpu} {what} {detail}")

    def _take_pending(self) -> None:
        """The pending lines into the digest, as one string (the same bytes as line by line, in a few
        calls where there were two encodes and an update per line), and into the log if it is kept."""
        pending = self._pending
        if pending:
            pending.append("")  # the last line's newline
            self._digest.update("\n".join(pending).encode())
            pending.pop()
            if self.keep_log:
                self._log.extend(pending)
            self._pending = []

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
        self._take_pending()
        digest = self._digest.copy()
        for line in self.summary():
            digest.update(line.encode() + b"\n")
        return digest.hexdigest()
