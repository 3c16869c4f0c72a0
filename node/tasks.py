"""What runs on a simulated CPU: latency-sensitive tasks, housekeeping churn, IRQs.

Each source has `next_wake`, `rt` (whether it runs ahead of queued work) and
`step(cpu)`, called by the CPU thread once `next_wake` has passed.

LatencyTask is cyclictest with a job: it wakes every `period` at an absolute
programmed time, records lateness = actual wake - programmed wake, then allocates a
few pages, stays busy for `busy` and frees them. Its deadline is `deadline` after the
programmed wake. At the end of each period it attributes the time other activity took
from its window [programmed wake, completion] to causes, osnoise-style: `workqueue`
(kworker items), `irq`, `pcp_lock` (buddy fallbacks after a failed pcp trylock),
`zone_lock` (its own refills and frees queued for zone->lock behind other CPUs: every CPU
whose lists a drain emptied at once refills at once; osnoise would not see it, as the time
is the task's own, but its deadline does), and `other` (wake-up lateness above a threshold
that nothing logged on the CPU explains).
A preemptible task (SCHED_OTHER-like) reaches a preemption point every `slice`, where
queued work runs; an RT task (SCHED_FIFO-like) runs its busy phase without yielding. The busy
phase may be split by sleeps (an rt-app task set's run and sleep events, node.rtapp): while the
task sleeps, queued work runs on its CPU whatever its policy. A task given `loops` stops after
that many periods, as an rt-app thread does.

Housekeeping is the CPU's ordinary allocation churn: in each period it does `ops`
allocations or frees (steered toward a working-set target, a mix of orders and
migratetypes, sometimes a batched free of a run of pages), with user time between
them and a preemption point after each.

IrqSource raises simulated device interrupts at Poisson times: each handler occupies
the CPU for irq_us (kernel time) and allocates an atomic page, which the housekeeping
task later frees (a received packet's buffer).

VmstatRefresh is vmstat_update, which vmstat_shepherd queues on the CPU every
sysctl_stat_interval; from v6.7 its refresh_cpu_vm_stats decays pcp->high
(node.mm.pcp.decay_pcp_high). At the default time scale one kernel second lasts minutes of
wall time, so a quick run sees none: its effect is pinned by tests/unit/test_pcp_high.py.
"""

import bisect
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from node.eventlog import EventLog
from node.mm.constants import HPAGE_PMD_ORDER, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE

# The causes a latency task attributes stolen time to (see the header).
NOISE_CAUSES = ("workqueue", "irq", "pcp_lock", "zone_lock", "other")
# A missed period nothing stole from: the task's own work did not fit (see LatencyTask.step).
NO_CAUSE = "none"

# The workload's defaults, in wall seconds (user-space tasks: node.shared.timebase). One value each for
# both engines: the wall node's flags and TaskConfig default to them, and the virtual engine divides them
# by TIME_SCALE (node.virtual.run), so the two cannot drift apart (as the zone size once did).
HOUSEKEEPING_PERIOD_S = 5e-3
HOUSEKEEPING_USER_S = 0.25e-3
WORKING_SET = 1500  # pages a housekeeping CPU holds
IRQ_HZ = 200.0  # a housekeeping CPU's IRQ rate
PREEMPT_SLICE_S = 0.5e-3  # a preemptible task's busy phase runs in slices, a preemption point after each
# Unexplained wake-up lateness above this (kernel µs) is noise of cause `other`; osnoise likewise counts
# noise above a threshold. Both drivers pass it in their time (CostModel.wall).
NOISE_THRESHOLD_US = 5.0

# sysctl_stat_interval = HZ: vmstat_shepherd's period (mm/vmstat.c), in kernel microseconds.
STAT_INTERVAL_US = 1_000_000


class _Never:
    """What a sleeping task waits on (Cpu.wait_for): an event nobody sets, so only its timeout wakes it."""

    def is_set(self) -> bool:
        return False


_NEVER = _Never()


class Rng(Protocol):
    """The draws the sources make, of a seeded node.sim.rng.Stream the driver hands in (a rule module makes
    no generator of its own; a Stream's draws are the same bits on every machine: docs/engine.md)."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...

    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...

    def expovariate(self, lambd: float) -> float: ...


@dataclass
class TaskCounters:
    """A latency task's runs, misses and noise by cause, osnoise-style."""

    runs: int = 0
    deadline_misses: int = 0
    stolen_s: dict = field(default_factory=dict)  # cause -> seconds
    noise_events: dict = field(default_factory=dict)  # cause -> events
    max_single_noise_s: float = 0.0
    misses_by_cause: dict = field(default_factory=dict)  # cause (or NO_CAUSE) -> deadline misses

    def missed(self, cause: str, periods: int) -> None:
        self.deadline_misses += periods
        self.misses_by_cause[cause] = self.misses_by_cause.get(cause, 0) + periods

    def noise(self, cause: str, seconds: float) -> None:
        self.stolen_s[cause] = self.stolen_s.get(cause, 0.0) + seconds
        self.noise_events[cause] = self.noise_events.get(cause, 0) + 1
        self.max_single_noise_s = max(self.max_single_noise_s, seconds)


class LatencyTask:
    def __init__(
        self,
        kind: str,
        period: float,
        busy: float,
        deadline: float,
        allocs: int,
        alloc,
        clock,
        rt: bool,
        slice_s: float = PREEMPT_SLICE_S,
        noise_threshold_s: float = NOISE_THRESHOLD_US * 250e-6,  # at TIME_SCALE 250 (test_cost_model checks)
        segments: tuple[tuple[str, float], ...] = (),
        loops: int | None = None,
    ):
        """`segments`: ("run" | "sleep", seconds) in order after each wake-up (default: one run of
        `busy`); `loops`: periods to run (None: until stopped)."""
        self.kind = kind
        # Wake-up lateness that no logged activity explains, above this, is noise of
        # cause `other` (the machine, the simulator): NOISE_THRESHOLD_US.
        self.noise_threshold_s = noise_threshold_s
        self.period = period
        self.busy = busy
        self.deadline = deadline
        self.allocs = allocs
        self.alloc = alloc
        self.rt = rt
        self.slice = slice_s
        self.segments = segments or (("run", busy),)
        self.loops_left = loops
        self.next_wake = clock() + period
        # Two sets of the same counters: `totals` since start (never reset, so metrics built
        # on them are monotonic) and `window` since the last GetStats(reset).
        self.totals = TaskCounters()
        self._stolen: dict[str, float] = {}  # the period under way's stolen time by cause (_account)
        # Each activation, wake-up to completion (allocations, run and sleep phases, frees), for
        # the timeline of a drain window.
        self.activations = EventLog()
        # Called with each wake-up's lateness (seconds), once per period; metrics observe it here.
        self.on_wake: Callable[[float], None] | None = None
        self.reset_stats()

    def reset_stats(self) -> None:
        self.wake_latency: list[float] = []
        self.window = TaskCounters()

    def rebase(self, now: float) -> None:
        """After a pause: resume the period from now instead of counting the pause as lateness."""
        if self.next_wake < now:
            self.next_wake = now + self.period

    def step(self, cpu) -> None:
        programmed = self.next_wake
        self._stolen = {}
        start = cpu.clock()
        self.wake_latency.append(start - programmed)
        if self.on_wake is not None:
            self.on_wake(start - programmed)
        explained = sum(d for _, d in cpu.noise.overlap(programmed, start))
        unexplained = start - programmed - explained
        if unexplained > self.noise_threshold_s:
            self._account([("other", unexplained)])
        alloc = self.alloc
        contention0, waited0 = alloc.lock_contention_s, alloc.zone_lock_wait_s
        pages = [alloc.alloc_pages(0, MIGRATE_MOVABLE) for _ in range(self.allocs)]
        # Its own refills' and frees' waits only: a work item or IRQ run in the busy phase has its own cause.
        zone_wait = alloc.zone_lock_wait_s - waited0
        for kind, seconds in self.segments:
            if kind == "sleep":
                cpu.wait_for(_NEVER, seconds)
            else:
                self._run(cpu, seconds)
        waited0 = alloc.zone_lock_wait_s
        for pfn in pages:
            if pfn is not None:
                alloc.free_pages(pfn)
        zone_wait += alloc.zone_lock_wait_s - waited0
        done = cpu.clock()
        self.activations.add(start, done, "task")
        counters = (self.window, self.totals)
        for c in counters:
            c.runs += 1
        self._account(cpu.noise.overlap(programmed, done))
        contention = alloc.lock_contention_s - contention0
        if contention > 0:
            self._account([("pcp_lock", contention)])
        if zone_wait > 0:
            self._account([("zone_lock", zone_wait)])
        # Absolute periods, like cyclictest; periods overrun entirely are skipped and missed.
        missed = 1 if done - programmed > self.deadline else 0
        self.next_wake = programmed + self.period
        while self.next_wake <= done:
            self.next_wake += self.period
            missed += 1
        if missed:
            # The miss goes to the cause that stole the most of this period (ties: the first by name).
            stolen = self._stolen
            cause = max(sorted(stolen), key=stolen.__getitem__) if any(stolen.values()) else NO_CAUSE
            for c in counters:
                c.missed(cause, missed)
        if self.loops_left is not None:
            self.loops_left -= 1
            if self.loops_left == 0:
                self.next_wake = float("inf")  # done: the CPU idles from now on

    def _run(self, cpu, seconds: float) -> None:
        # The busy phase is user code on a NOHZ_FULL CPU: an extended quiescent state for RCU.
        if self.rt:
            cpu.user(seconds)
            return
        left = seconds
        while left > 0:
            chunk = min(self.slice, left)
            cpu.user(chunk)
            left -= chunk
            cpu.preempt_point()

    def _account(self, noise: list[tuple[str, float]]) -> None:
        for cause, seconds in noise:
            self.window.noise(cause, seconds)
            self.totals.noise(cause, seconds)
            self._stolen[cause] = self._stolen.get(cause, 0.0) + seconds


# Orders and migratetypes housekeeping allocates, with weights: mostly order-0 movable
# (anonymous and page-cache pages), some unmovable/reclaimable kernel allocations,
# a few high-order ones and rare THPs (the pcp list for HPAGE_PMD_ORDER).
ORDERS = ((0, 85), (1, 5), (2, 4), (3, 5), (HPAGE_PMD_ORDER, 1))
MIGRATETYPES = ((MIGRATE_MOVABLE, 70), (MIGRATE_UNMOVABLE, 20), (MIGRATE_RECLAIMABLE, 10))


class Weighted:
    """``rng.choices(population, weights)[0]`` with the cumulative weights summed once: the same
    arithmetic (random.Random.choices, Python 3.11) on the same single ``rng.random()`` draw, so the
    same pick from the same seeded stream, without choices' per-call list building (~5% of a
    virtual run's CPU time)."""

    __slots__ = ("population", "cum_weights", "total", "hi")

    def __init__(self, pairs: Sequence[tuple[int, int]]) -> None:
        self.population = [value for value, _ in pairs]
        self.cum_weights = list(itertools.accumulate(weight for _, weight in pairs))
        self.total = self.cum_weights[-1] + 0.0
        self.hi = len(pairs) - 1

    def draw(self, rng: Rng) -> int:
        return self.population[bisect.bisect(self.cum_weights, rng.random() * self.total, 0, self.hi)]


class Housekeeping:
    rt = False

    def __init__(
        self,
        alloc,
        rng: Rng,
        clock,
        period: float = HOUSEKEEPING_PERIOD_S,
        ops: int = 4,
        user_s: float = HOUSEKEEPING_USER_S,
        working_set: int = WORKING_SET,
        batch_free: int = 31,
    ):
        self.alloc = alloc
        self.rng = rng
        self.period = period
        self.ops = ops
        self.user_s = user_s
        self.working_set = working_set
        self.batch_free = batch_free
        self.held: list[int] = []
        self._orders = Weighted(ORDERS)
        self._mts = Weighted(MIGRATETYPES)
        self.next_wake = clock() + period

    def rebase(self, now: float) -> None:
        if self.next_wake < now:
            self.next_wake = now + self.period

    def hold(self, pfn: int) -> None:
        """Take over a page allocated elsewhere on this CPU (an IRQ's buffer)."""
        self.held.append(pfn)

    def step(self, cpu) -> None:
        rng = self.rng
        for _ in range(self.ops):
            if rng.random() < 0.05 and len(self.held) > self.batch_free:
                self._free_batch()
            elif len(self.held) < self.working_set * rng.uniform(0.5, 1.5):
                order = self._orders.draw(rng)
                pfn = self.alloc.alloc_pages(order, self._mts.draw(rng))
                if pfn is not None:
                    self.held.append(pfn)
            elif self.held:
                self._free_one()
            cpu.occupy(self.user_s)
            cpu.preempt_point()
        self.next_wake += self.period
        now = cpu.clock()
        if self.next_wake < now:
            self.next_wake = now

    def _free_one(self) -> None:
        i = self.rng.randrange(len(self.held))
        self.held[i], self.held[-1] = self.held[-1], self.held[i]
        self.alloc.free_pages(self.held.pop())

    def _free_batch(self) -> None:
        """A run of pages freed together (free_unref_page_list), e.g. an unmapped range."""
        start = self.rng.randrange(len(self.held) - self.batch_free)
        run = self.held[start : start + self.batch_free]
        del self.held[start : start + self.batch_free]
        self.alloc.free_pages_list(run)


class IrqSource:
    rt = False

    def __init__(self, alloc, housekeeping: Housekeeping, rng: Rng, clock, rate_hz: float, handler_s: float):
        self.alloc = alloc
        self.housekeeping = housekeeping
        self.rng = rng
        self.rate_hz = rate_hz
        self.handler_s = handler_s
        self.count = 0
        self.next_wake = clock() + rng.expovariate(rate_hz)

    def rebase(self, now: float) -> None:
        if self.next_wake < now:
            self.next_wake = now + self.rng.expovariate(self.rate_hz)

    def step(self, cpu) -> None:
        start = cpu.clock()
        cpu.occupy(self.handler_s)
        pfn = self.alloc.alloc_pages(0, MIGRATE_UNMOVABLE)  # GFP_ATOMIC skb-like buffer
        if pfn is not None:
            self.housekeeping.hold(pfn)
        self.count += 1
        cpu.noise.add(start, cpu.clock(), "irq")
        self.next_wake += self.rng.expovariate(self.rate_hz)


class VmstatRefresh:
    """vmstat_update run on this CPU every `interval_s` (wall): `refresh` is the CPU's
    refresh_cpu_vm_stats pcp work. The runtime gives it only to CPUs vmstat_shepherd visits
    (since v6.5, "vmstat: skip periodic vmstat update for isolated CPUs", not isolated ones).
    Every CPU's runs fall at the same instants; the kernel's round_jiffies_relative puts each CPU
    3 jiffies from the next (docs/kernel-facts.md §20: not modelled, no HZ here)."""

    rt = False

    def __init__(self, refresh: Callable[[], object], clock, interval_s: float):
        self.refresh = refresh
        self.interval_s = interval_s
        self.runs = 0
        self.next_wake = clock() + interval_s

    def rebase(self, now: float) -> None:
        if self.next_wake < now:
            self.next_wake = now + self.interval_s

    def step(self, cpu) -> None:
        start = cpu.clock()
        self.refresh()
        self.runs += 1
        cpu.noise.add(start, cpu.clock(), "workqueue")
        self.next_wake += self.interval_s
