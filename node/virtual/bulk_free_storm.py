"""The bulk-free storm: many CPUs flush large pcp frees into the one zone at once, in virtual time.

The many-CPU half of `pcpsim replay bulk-free` (node.mm.bugs.bulk_free is the one-CPU half): Joshua
Hahn's report (docs/kernel-facts.md, section 7; "mm/page_alloc: Batch callers of free_pcppages_bulk",
v1 cover: 1 TB, 316 CPUs, "the lock in free_pcppages_bulk was being held for a long time, even being
held while 2k+ pages were being freed") is a cost paid by the *other* CPUs: while one CPU frees
2,016 pages under zone->lock, every CPU that wants the lock spins for it with IRQs off. Here it is
run on the virtual engine (node.virtual.run.VirtualCluster: the node's allocator and pcp code on
virtual CPUs, the zone's rules behind the virtual zone->lock, holds of CostModel.zone_hold_us):

1. fill: every CPU but CPU 0 allocates high_max + 2 * batch order-0 MOVABLE pages and keeps them.
   Under v6.7+ auto-tuning each refill raises pcp->high (nr_pcp_alloc), up to high_max.
2. storm, at one instant t0 (all fills done): those CPUs free every page they hold (a parallel job
   exiting on all CPUs). Each pushes count to high, and with free_count at batch << 5 its flush
   frees nr_pcp_free() = 2,016 pages: under 6.12 in one free_pcppages_bulk, one zone->lock hold;
   under 6.19 (free_high_batched) in pcp->batch chunks, each its own hold, the pcp lock dropped
   between them. Their requests reach the zone within one network latency and queue, FIFO, on
   zone->lock.
3. probe: STORM_PROBE_DELAY_S after t0, CPU 0 (its pcp empty) allocates one page, so it refills
   pcp->batch pages from the zone behind the queue: its allocation latency is what the storm costs a
   bystander.

Under a profile with a fixed pcp->high (5.19 to 6.6) high stays at high_min and a flush frees at
most high - batch pages (189 with batch 63): less, but still more than pcp->batch under one hold.

Measured from t0 (the fill's refills are set-up, and are reported apart): the longest zone->lock hold
of a free (pages and kernel µs), the longest wait of any CPU for zone->lock (the IRQs-off spin the
RCU stall detector sees), the probe's allocation latency and the storm's length. The check fails if
a hold frees more than pcp->batch pages (the bound the series sets) or a wait exceeds the FIFO bound
under that rule: a waiter waits at most for one acquisition of every other CPU, and each moves at
most pcp->batch pages, so (N - 1) * max(zone_hold_us(batch), rmqueue_hold_us(batch)). Then the audit:
every page of the zone exactly once (free, on a pcp list, or held by a CPU).

Deviations (docs/kernel-facts.md, sections 7 and 12): the zone is sized so that high_max is 2,560 pages a CPU
(24.7 GiB at 316 CPUs), not the reported 1 TB, so that high saturates after a few refills and a free
burst reaches it (on 1 TB high_max is ~106k pages a CPU, and filling it would take 33 M pages; the
flush is capped at batch << 5 by free_count either way); one zone, one burst, no
memory pressure (the reported 10.5 s stall was under sustained pressure, with many more flushes);
zone->lock is a FIFO queue (the kernel's qspinlock is roughly FIFO); the CPUs' own work between zone
calls takes no virtual time. So the run shows the mechanism and the ratio, not 10 s.
"""

import hashlib
from collections.abc import Callable

from node.cpu import WorkItem
from node.mm import bugs
from node.mm import profile as profiles
from node.mm.audit import audit
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.zone_rules import Held, ZoneRules
from node.shared.timebase import CostModel
from node.virtual.cpu import VirtualCpu
from node.virtual.run import Options, VirtualCluster
from node.virtual.zone import ZoneLock

# pcp->high_max a CPU (zone_highsize with MIN_PERCPU_PAGELIST_HIGH_FRACTION: managed pages / 8 / CPUs):
# room for one whole flush (batch << 5 = 2,016 pages) above batch, and little more, so a CPU's high
# saturates after a few refills; the zone is sized from it (the module's deviations).
STORM_HIGH_MAX = 2560
STORM_MIN_ZONE_PAGES = 1 << 18  # 1 GiB: zone_batchsize gives pcp->batch its largest value, 63, from here
STORM_PROBE_DELAY_S = 5e-6  # after t0: every flusher's first request has reached the zone by then
STORM_STEP_S = 0.01  # run the engine in steps this long until a phase is done
STORM_HORIZON_S = 0.9  # a phase must end before this (and before the first vmstat_update, at 1 s)
STORM_MAX_CPUS = 1024  # about 1 MB and 0.05 s of CPU time a CPU, under each profile


class TimedZoneLock(ZoneLock):
    """zone->lock, recording each acquisition's wait in virtual seconds (acquired from a CPU's fiber)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[tuple[float, int, float]] = []  # (request time, cpu, wait)

    def acquire(self, cpu: VirtualCpu) -> None:
        t0 = self.clock()
        super().acquire(cpu)
        self.waits.append((t0, cpu.cpu, self.clock() - t0))


class HoldLog:
    """The zone's rules, recording each refill and free applied: (time, cpu, kind, pages, hold_us)."""

    def __init__(self, rules: ZoneRules, clock: Callable[[], float]) -> None:
        self._rules = rules
        self.clock = clock
        self.holds: list[tuple[float, int, str, int, float]] = []

    def __getattr__(self, name: str):
        return getattr(self._rules, name)

    def rmqueue(self, cpu: int, order: int, migratetype: int, count: int, *args, **kw) -> Held:
        held = self._rules.rmqueue(cpu, order, migratetype, count, *args, **kw)
        self.holds.append((self.clock(), cpu, "refill", len(held.value.pfns) << order, held.hold_us))
        return held

    def free_pages(self, cpu: int, pages, *args, **kw) -> Held:
        held = self._rules.free_pages(cpu, pages, *args, **kw)
        self.holds.append((self.clock(), cpu, "free", sum(1 << order for _, order, *_ in pages), held.hold_us))
        return held


def check_storm(kernel: str, nr_cpus: int) -> None:
    """ValueError unless the storm can run: 2 to STORM_MAX_CPUS CPUs, a known SMP profile."""
    if not 2 <= nr_cpus <= STORM_MAX_CPUS:
        raise ValueError(f"the storm runs on 2 to {STORM_MAX_CPUS} CPUs (a bystander and the flushers), got {nr_cpus}")
    if not profiles.get(kernel).smp:
        raise ValueError(f"{kernel} is a CONFIG_SMP=n profile: it has one CPU, and the storm needs many")


def storm_zone_pages(nr_cpus: int) -> int:
    """The zone whose high_max is STORM_HIGH_MAX pages a CPU (more below 13 CPUs: at least 1 GiB)."""
    return max(nr_cpus * 8 * STORM_HIGH_MAX, STORM_MIN_ZONE_PAGES)


def wait_bound_us(nr_cpus: int, batch: int, cost: CostModel) -> float:
    """The longest FIFO wait for zone->lock when no acquisition moves more than pcp->batch pages: one
    acquisition of each of the other nr_cpus - 1 CPUs (one request outstanding a CPU)."""
    return (nr_cpus - 1) * max(cost.zone_hold_us(batch), cost.rmqueue_hold_us(batch))


def _digest(cluster: VirtualCluster, lock: TimedZoneLock, log: HoldLog) -> str:
    """The first 16 hex digits of a SHA-256 of the cluster's event log and summary, then of every wait
    and hold at zone->lock (times as repr(float), which is exact): the same seed, the same digest."""
    digest = hashlib.sha256(cluster.digest().encode())
    for record in (*lock.waits, *log.holds):
        digest.update(repr(record).encode() + b"\n")
    return digest.hexdigest()[:16]


def _run_until(cluster: VirtualCluster, done: Callable[[], bool], phase: str, items: list[WorkItem]) -> None:
    """Run the engine until done(); a work item's error (Cpu keeps it on the item) ends the run loudly."""
    while not done():
        failed = next((item for item in items if item.error is not None), None)
        if failed is not None:
            raise RuntimeError(f"bulk-free storm: the {phase} phase failed: {failed.error}") from failed.error
        if cluster.clock() >= STORM_HORIZON_S:
            raise RuntimeError(f"bulk-free storm: the {phase} phase had not ended at {STORM_HORIZON_S} s (virtual)")
        cluster.run(cluster.clock() + STORM_STEP_S)


def bulk_free_storm(kernel: str, nr_cpus: int, seed: int = 1) -> bugs.Replay:
    """Run the storm on `nr_cpus` virtual CPUs under the profile `kernel`, and check it (module docstring)."""
    check_storm(kernel, nr_cpus)
    cluster = VirtualCluster(
        ["idle"] * nr_cpus, seed, zone_pages=storm_zone_pages(nr_cpus), keep_log=False, options=Options(kernel=kernel)
    )
    shared, clock, cost, batch = cluster.zone, cluster.clock, cluster.cost, cluster.batch
    lock = shared.lock = TimedZoneLock(clock)
    log = HoldLog(shared.rules, clock)
    shared.rules = log  # type: ignore[assignment]  # read at each request (node.virtual.zone.LocalZone)
    flushers = range(1, nr_cpus)
    fill_pages = cluster.high_max + 2 * batch
    kept: dict[int, list[int]] = {n: [] for n in flushers}
    ended: dict[int, float] = {}
    probe: list[float] = []

    def fill(n: int) -> Callable[[], None]:
        def work() -> None:
            alloc = cluster.allocs[n]
            for _ in range(fill_pages):
                pfn = alloc.alloc_pages(0, MIGRATE_MOVABLE)
                if pfn is None:
                    raise RuntimeError(f"cpu {n}: allocation {len(kept[n]) + 1} of {fill_pages} failed")
                kept[n].append(pfn)

        return work

    def free(n: int) -> Callable[[], None]:
        def work() -> None:
            alloc = cluster.allocs[n]
            for pfn in kept.pop(n):
                alloc.free_pages(pfn)
            ended[n] = clock()

        return work

    def probe_alloc() -> None:
        start = clock()
        pfn = cluster.allocs[0].alloc_pages(0, MIGRATE_MOVABLE)
        if pfn is None:
            raise RuntimeError("cpu 0: the probe's allocation failed")
        probe.append(clock() - start)

    items = [cluster.cpus[n].queue_work("fill", fill(n)) for n in flushers]
    _run_until(cluster, lambda: all(len(kept[n]) == fill_pages for n in flushers), "fill", items)
    t0 = clock()
    high = max(cluster.pcps[n].high for n in flushers)  # where the fill left pcp->high (high_max on 6.7+)
    fill_waits, fill_holds = len(lock.waits), len(log.holds)
    items = [cluster.cpus[n].queue_work("storm", free(n)) for n in flushers]
    cluster.queue.at(t0 + STORM_PROBE_DELAY_S, lambda: items.append(cluster.cpus[0].queue_work("probe", probe_alloc)))
    _run_until(cluster, lambda: len(ended) == len(flushers) and bool(probe), "storm", items)

    us = 1e6
    waits, holds = lock.waits[fill_waits:], log.holds[fill_holds:]
    frees = [h for h in holds if h[2] == "free"]
    longest = max(frees, key=lambda h: h[3])
    worst = max(waits, key=lambda w: w[2])
    bound = wait_bound_us(nr_cpus, batch, cost)
    out = bugs.Replay(kernel)
    out.facts = {
        "cpus": nr_cpus,
        "seed": seed,
        "batch": batch,
        "high": high,
        "storm_frees": len(frees),
        "storm_freed_pages": sum(h[3] for h in frees),
        "longest_hold_pages": longest[3],
        "longest_hold_us": round(longest[4], 2),
        "longest_wait_us": round(worst[2] * us, 2),
        "wait_bound_us": round(bound, 2),
        "probe_alloc_us": round(probe[0] * us, 2),
        "storm_us": round((max(ended.values()) - t0) * us, 2),
        "fill_longest_wait_us": round(max((w[2] for w in lock.waits[:fill_waits]), default=0.0) * us, 2),
        "digest": _digest(cluster, lock, log),
    }
    if longest[3] > batch:
        out.findings.append(
            f"cpu {longest[1]} freed {longest[3]} pages under one zone->lock hold of {longest[4]:.2f} µs "
            f"(pcp->batch is {batch}): the hold Hahn's series splits into pcp->batch chunks"
        )
    if worst[2] * us > bound:
        out.findings.append(
            f"cpu {worst[1]} waited {worst[2] * us:.2f} µs for zone->lock in one acquisition, spinning with IRQs "
            f"off: above {bound:.2f} µs, the FIFO wait when no acquisition moves more than pcp->batch pages "
            f"({nr_cpus - 1} other CPUs, one acquisition each)"
        )
    holders = {f"cpu{n}": [*cluster.pcps[n].pages(), *cluster.allocs[n].pages()] for n in range(nr_cpus)}
    out.findings += audit(shared.zone, holders).errors
    cluster.close()
    return out
