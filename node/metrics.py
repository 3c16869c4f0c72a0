"""The node's Prometheus metrics: one simulated CPU, its pcp, its tasks and its kworker.

Two kinds, chosen by cost (docs/monitoring.md: an observe costs ~1 us, the pcp fast path must not pay it):
- Scrape-time values (NodeCollector): counters and gauges read, when /metrics is
  scraped, from the counters the model keeps anyway (PcpStats, the allocator's, the
  CPU's, the lists' lengths). Zero cost on the fast path; a scrape is a racy read of
  plain ints, like the kernel's vmstat.
- Event histograms (NodeMetrics): observed through hooks the runtime installs, once per
  latency-task period, per work item and per remote lock grant; never per page.

Names follow the Prometheus guide: pcpsim_ prefix, base units (seconds, pages = 4 KiB
base pages), _total on counters. Labels are bounded: cpu (one value per process), kind,
cause, path, reason, holder, order, migratetype, role. Never a pfn.

Counters are lifetime values: GetStats(reset=True) resets the windows `pcpsim compare`
reads, not these (tasks keep never-reset `totals` for that).
"""

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from node.mm.constants import (
    MIGRATE_PCPTYPES,
    MIGRATETYPE_NAMES,
    NR_LOWORDER_PCP_LISTS,
    pageblock_order,
    pindex_to_order,
)
from node.mm.lock import spin_is_locked
from node.shared.buckets import LATENCY_BUCKETS, LONG_LATENCY_BUCKETS
from node.tasks import NO_CAUSE, NOISE_CAUSES  # always exported, so a dashboard sees 0 rather than no series


class NodeMetrics:
    """Event histograms of one node, children bound once; `NodeCollector` is registered alongside."""

    def __init__(self, registry, runtime):
        cpu = str(runtime.cpu_id)
        self._wakeup = Histogram(
            "pcpsim_task_wakeup_latency_seconds",
            "Latency task wake-up lateness (actual - programmed wake), once per period, like cyclictest.",
            ["cpu", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._queue_delay = Histogram(
            "pcpsim_workqueue_queue_delay_seconds",
            "Work item time from queue_work_on to start on this CPU.",
            ["cpu"],
            buckets=LONG_LATENCY_BUCKETS,
            registry=registry,
        ).labels(cpu)
        self._run = Histogram(
            "pcpsim_workqueue_run_seconds",
            "Work item run time on this CPU (the kworker's occupancy).",
            ["cpu"],
            buckets=LONG_LATENCY_BUCKETS,
            registry=registry,
        ).labels(cpu)
        # holder="remote": a drainer elsewhere (v6.0+ drain_pages_zone). Local holds happen per
        # page operation on the fast path and are not timed; see pcpsim_pcp_lock_contention_seconds_total.
        self.lock_wait = Histogram(
            "pcpsim_pcp_lock_wait_seconds",
            "Time a pcp lock holder waited to get the lock, once per grant.",
            ["cpu", "holder"],
            buckets=LONG_LATENCY_BUCKETS,
            registry=registry,
        ).labels(cpu, "remote")
        self.lock_hold = Histogram(
            "pcpsim_pcp_lock_hold_seconds",
            "Time the pcp lock was held, once per grant (until unlock or lease expiry).",
            ["cpu", "holder"],
            buckets=LONG_LATENCY_BUCKETS,
            registry=registry,
        ).labels(cpu, "remote")
        self.task_wakeup = self._wakeup.labels(cpu, runtime.task.kind) if runtime.task is not None else None
        registry.register(NodeCollector(runtime))

    def work_done(self, item) -> None:
        """Cpu.on_work_done hook: one observation of each histogram per work item."""
        self._queue_delay.observe(item.started_at - item.queued_at)
        self._run.observe(item.finished_at - item.started_at)


def _counter(name, doc, labels):
    return CounterMetricFamily(name, doc, labels=labels)


def _gauge(name, doc, labels):
    return GaugeMetricFamily(name, doc, labels=labels)


class NodeCollector(Collector):
    """Scrape-time counters and gauges of one node, read from the runtime's model objects."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.cpu = str(runtime.cpu_id)

    def describe(self):
        # Families without samples: lets the registry detect duplicate names at register time.
        return list(self._families().values())

    def collect(self):
        rt, cpu = self.runtime, self.cpu
        fams = self._families()
        fams["pcpsim_node_info"].add_metric([cpu, rt.role], 1)
        # The remote drainer's half here: the pcp spinlock's, or the rcu-swap drain's (same counters).
        remote = rt.remote_lock if rt.remote_lock is not None else rt.rcu_drain
        self._collect_pcp(fams, rt.pcp, remote, rt.alloc)
        c = rt.cpu
        fams["pcpsim_rcu_grace_periods_total"].add_metric([cpu], c.rcu.gp_waits)
        fams["pcpsim_rcu_grace_period_timeouts_total"].add_metric([cpu], c.rcu.gp_timeouts)
        fams["pcpsim_cpu_busy_seconds_total"].add_metric([cpu], c.busy_s)
        fams["pcpsim_cpu_step_errors_total"].add_metric([cpu], c.step_errors)
        fams["pcpsim_workqueue_items_queued_total"].add_metric([cpu], c.work_queued)
        fams["pcpsim_workqueue_items_run_total"].add_metric([cpu], c.work_run)
        fams["pcpsim_workqueue_pending_items"].add_metric([cpu], c.pending_work())
        a = rt.alloc
        fams["pcpsim_alloc_allocations_total"].add_metric([cpu], a.allocs)
        fams["pcpsim_alloc_frees_total"].add_metric([cpu], a.frees)
        fams["pcpsim_alloc_failures_total"].add_metric([cpu], a.alloc_failures)
        fams["pcpsim_alloc_direct_reclaims_total"].add_metric([cpu], a.reclaims)
        fams["pcpsim_alloc_fenced_refusals_total"].add_metric([cpu], a.fenced_refusals)
        fams["pcpsim_zone_lock_wait_seconds_total"].add_metric([cpu], rt.zone.lock_wait_s)
        fams["pcpsim_node_lease_remaining_seconds"].add_metric([cpu], max(-3600.0, min(3600.0, rt.lease_left())))
        fams["pcpsim_node_rejoins_total"].add_metric([cpu], rt.rejoins)
        held = list(a.allocated.values())  # one C-level copy: the CPU thread may be changing the dict
        fams["pcpsim_alloc_held_pages"].add_metric([cpu], sum(1 << order for order, _ in held))
        if rt.irq is not None:
            fams["pcpsim_irqs_total"].add_metric([cpu], rt.irq.count)
        if rt.task is not None:
            self._collect_task(fams, rt.task)
        return fams.values()

    def _collect_pcp(self, fams, pcp, remote_lock, alloc) -> None:
        cpu = self.cpu
        pages = fams["pcpsim_pcp_pages"]
        lists = pcp.lists
        for pindex in range(NR_LOWORDER_PCP_LISTS):
            order = pindex_to_order(pindex)
            pages.add_metric(
                [cpu, str(order), MIGRATETYPE_NAMES[pindex % MIGRATE_PCPTYPES]], len(lists[pindex]) << order
            )
        # The THP list mixes migratetypes (each page's is in thp_migratetype).
        thp_types = list(pcp.thp_migratetype.values())
        for mt in range(MIGRATE_PCPTYPES):
            pages.add_metric([cpu, str(pageblock_order), MIGRATETYPE_NAMES[mt]], thp_types.count(mt) << pageblock_order)
        fams["pcpsim_pcp_count_pages"].add_metric([cpu], pcp.count)
        fams["pcpsim_pcp_high_pages"].add_metric([cpu], pcp.high)
        fams["pcpsim_pcp_batch_pages"].add_metric([cpu], pcp.batch)
        fams["pcpsim_pcp_free_factor"].add_metric([cpu], pcp.free_factor)
        fams["pcpsim_pcp_locked"].add_metric([cpu], 1 if spin_is_locked(pcp.lock) else 0)
        s = pcp.stats
        fams["pcpsim_pcp_trylock_failures_total"].add_metric([cpu, "alloc"], s.trylock_fail_alloc)
        fams["pcpsim_pcp_trylock_failures_total"].add_metric([cpu, "free"], s.trylock_fail_free)
        fams["pcpsim_pcp_buddy_fallbacks_total"].add_metric([cpu, "alloc"], s.buddy_fallback_alloc)
        fams["pcpsim_pcp_buddy_fallbacks_total"].add_metric([cpu, "free"], s.buddy_fallback_free)
        fams["pcpsim_pcp_refills_total"].add_metric([cpu], s.refills)
        fams["pcpsim_pcp_refill_pages_total"].add_metric([cpu], s.refill_pages)
        fams["pcpsim_pcp_freed_pages_total"].add_metric([cpu, "high"], s.freed_high_pages)
        # Drained by either strategy: the kworker here (drain_pages_zone) or a remote drainer.
        fams["pcpsim_pcp_freed_pages_total"].add_metric([cpu, "drain"], s.freed_drain_pages + remote_lock.drained_pages)
        fams["pcpsim_pcp_drains_total"].add_metric([cpu, "local"], s.drains)
        fams["pcpsim_pcp_drains_total"].add_metric([cpu, "remote"], remote_lock.drains)
        fams["pcpsim_pcp_lock_contention_seconds_total"].add_metric([cpu], alloc.lock_contention_s)
        fams["pcpsim_pcp_lease_expiries_total"].add_metric([cpu], remote_lock.lease_expiries)
        fams["pcpsim_pcp_grants_abandoned_total"].add_metric([cpu], remote_lock.abandoned)
        fams["pcpsim_pcp_stale_commits_refused_total"].add_metric([cpu], remote_lock.stale_commits_refused)

    def _collect_task(self, fams, task) -> None:
        labels = [self.cpu, task.kind]
        t = task.totals
        fams["pcpsim_task_runs_total"].add_metric(labels, t.runs)
        fams["pcpsim_task_deadline_misses_total"].add_metric(labels, t.deadline_misses)
        fams["pcpsim_task_max_single_noise_seconds"].add_metric(labels, t.max_single_noise_s)
        stolen, events = dict(t.stolen_s), dict(t.noise_events)  # C-level copies, see above
        for cause in sorted(set(NOISE_CAUSES) | stolen.keys() | events.keys()):
            fams["pcpsim_task_stolen_seconds_total"].add_metric([*labels, cause], stolen.get(cause, 0.0))
            fams["pcpsim_task_noise_events_total"].add_metric([*labels, cause], events.get(cause, 0))
        misses = dict(t.misses_by_cause)
        for cause in sorted({*NOISE_CAUSES, NO_CAUSE} | misses.keys()):
            fams["pcpsim_task_deadline_misses_by_cause_total"].add_metric([*labels, cause], misses.get(cause, 0))

    @staticmethod
    def _families() -> dict:
        c, g = _counter, _gauge
        cpu, task, cause = ["cpu"], ["cpu", "kind"], ["cpu", "kind", "cause"]
        fams = [
            g("pcpsim_node_info", "Constant 1; labels say which role this simulated CPU runs.", ["cpu", "role"]),
            # pcp: struct per_cpu_pages, read racily at scrape time.
            g(
                "pcpsim_pcp_pages",
                "Base pages on each pcp list (order 9 is the THP list).",
                ["cpu", "order", "migratetype"],
            ),
            g("pcpsim_pcp_count_pages", "pcp->count: base pages on all lists.", cpu),
            g("pcpsim_pcp_high_pages", "pcp->high: the count at which a free flushes.", cpu),
            g("pcpsim_pcp_batch_pages", "pcp->batch: refill and flush chunk.", cpu),
            g("pcpsim_pcp_free_factor", "pcp->free_factor: flush size doubling exponent.", cpu),
            g("pcpsim_pcp_locked", "1 while the pcp lock is held (by the CPU or a remote drainer).", cpu),
            c(
                "pcpsim_pcp_trylock_failures",
                "Fast-path pcp trylocks that failed (lock held elsewhere).",
                ["cpu", "path"],
            ),
            c(
                "pcpsim_pcp_buddy_fallbacks",
                "Allocations or frees that went to the buddy instead of the pcp.",
                ["cpu", "path"],
            ),
            c("pcpsim_pcp_refills", "rmqueue_bulk calls refilling a pcp list.", cpu),
            c("pcpsim_pcp_refill_pages", "Base pages moved from the zone onto pcp lists.", cpu),
            c(
                "pcpsim_pcp_freed_pages",
                "Base pages freed from pcp lists to the zone: reason=high (count "
                "reached high) or drain (drain_pages_zone, local kworker or remote drainer).",
                ["cpu", "reason"],
            ),
            c(
                "pcpsim_pcp_drains",
                "Drains that found pages: holder=local (kworker) or remote (drainer).",
                ["cpu", "holder"],
            ),
            c(
                "pcpsim_pcp_lock_contention_seconds",
                "Time this CPU's tasks lost to a held pcp lock (buddy "
                "fallbacks after a failed trylock, spins of a batched free).",
                cpu,
            ),
            c("pcpsim_pcp_lease_expiries", "Remote pcp lock leases that lapsed and were released here.", cpu),
            c(
                "pcpsim_pcp_grants_abandoned",
                "Grants of this CPU's pages ended early because their drainer stopped waiting for the answer.",
                cpu,
            ),
            c(
                "pcpsim_pcp_stale_commits_refused",
                "Remote drainers' commits refused because their lease had run out (fencing).",
                cpu,
            ),
            # Membership (node.agent).
            g(
                "pcpsim_node_lease_remaining_seconds",
                "Membership lease left; negative: expired, allocations are refused (clamped to +-1 h).",
                cpu,
            ),
            c(
                "pcpsim_node_rejoins",
                "Times this CPU was declared dead, discarded its pages and registered afresh.",
                cpu,
            ),
            # RCU (rcu-swap drains): grace periods waited for on this CPU, and those it never ended.
            c("pcpsim_rcu_grace_periods", "Grace periods an rcu-swap drainer waited for on this CPU.", cpu),
            c(
                "pcpsim_rcu_grace_period_timeouts",
                "Grace periods this CPU did not end in time (no quiescent "
                "state: stuck in kernel work); each failed its drain.",
                cpu,
            ),
            # The CPU and its kworker.
            c("pcpsim_cpu_busy_seconds", "Wall time this CPU was occupied by modeled work.", cpu),
            c(
                "pcpsim_cpu_step_errors",
                "Task or IRQ steps that failed (e.g. the zone did not answer) and were skipped.",
                cpu,
            ),
            c("pcpsim_workqueue_items_queued", "Work items queued on this CPU (queue_work_on).", cpu),
            c("pcpsim_workqueue_items_run", "Work items run on this CPU.", cpu),
            g("pcpsim_workqueue_pending_items", "Work items queued and not started.", cpu),
            c("pcpsim_irqs", "Simulated device interrupts handled.", cpu),
            # The page allocator entry points.
            c("pcpsim_alloc_allocations", "Successful alloc_pages calls (blocks of any order).", cpu),
            c("pcpsim_alloc_frees", "Blocks freed by this CPU's tasks.", cpu),
            c("pcpsim_alloc_failures", "alloc_pages calls that failed after direct reclaim.", cpu),
            c("pcpsim_alloc_direct_reclaims", "Direct reclaims entered (each drains all pcp lists once).", cpu),
            c("pcpsim_alloc_fenced_refusals", "Allocations refused because the membership lease had run out.", cpu),
            c(
                "pcpsim_zone_lock_wait_seconds",
                "Seconds this CPU's zone requests (refills, frees, its kworker's drains) queued for zone->lock "
                "behind other holders, as the zone timed them.",
                cpu,
            ),
            g("pcpsim_alloc_held_pages", "Base pages held by this CPU's tasks.", cpu),
            # The latency task, osnoise-style.
            c("pcpsim_task_runs", "Latency task periods completed.", task),
            c("pcpsim_task_deadline_misses", "Latency task periods that missed their deadline or were skipped.", task),
            c(
                "pcpsim_task_stolen_seconds",
                "Time other activity took from the latency task's windows, by cause.",
                cause,
            ),
            c("pcpsim_task_noise_events", "Interference events in the latency task's windows, by cause.", cause),
            c(
                "pcpsim_task_deadline_misses_by_cause",
                "Missed or skipped periods by the cause that stole the most of the period (none: nothing did).",
                cause,
            ),
            g("pcpsim_task_max_single_noise_seconds", "Longest single interference since start.", task),
        ]
        return {f.name + ("_total" if f.type == "counter" else ""): f for f in fams}
