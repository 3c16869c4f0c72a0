"""The coordinator's Prometheus metrics: drain_all_pages, the zone and membership.

As on the node (node.metrics): event metrics are observed once per drain (never per
page or per zone operation), through Drainer's `on_record` hook; the zone and
membership are read at scrape time (CoordinatorCollector) from counters the services
keep anyway. RPC metrics come from node.shared.rpc_metrics, shared with the nodes.

Labels are bounded: strategy (coordinator.drain.record.STRATEGY_NAMES: workqueue, remote,
rcu-swap, qpw), trigger (TRIGGER_NAMES: demand, reclaim, alloc_contig, memory_offline,
cpu_hotplug), status (done, skipped, failed), cpu (< --nodes), order (< MAX_ORDER), level (min,
low, high), role. Children for every strategy x trigger and strategy x cpu are bound here once.
"""

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from coordinator.drain.record import STRATEGY_NAMES, TRIGGER_NAMES
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.constants import MAX_ORDER
from node.shared.buckets import LONG_LATENCY_BUCKETS
from node.shared.cpulist import role_label

# A whole drain_all_pages: a few ms (remote, few pages) to hundreds of ms (workqueue behind RT tasks).
DRAIN_BUCKETS = (
    1e-3,
    2.5e-3,
    5e-3,
    7.5e-3,
    10e-3,
    15e-3,
    20e-3,
    30e-3,
    50e-3,
    75e-3,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
)
STATUS_NAMES = {pb.DrainAllReply.DONE: "done", pb.DrainAllReply.SKIPPED: "skipped", pb.DrainAllReply.FAILED: "failed"}


class DrainMetrics:
    """Per-drain histograms and counters; `observe` is the Drainer's on_record hook."""

    def __init__(self, registry, nr_cpus: int):
        all_dur = Histogram(
            "pcpsim_drain_all_duration_seconds",
            "drain_all_pages duration, mutex held -> every marked CPU drained (skipped drains are not observed).",
            ["strategy", "trigger"],
            buckets=DRAIN_BUCKETS,
            registry=registry,
        )
        all_wait = Histogram(
            "pcpsim_drain_all_mutex_wait_seconds",
            "How long a drain_all_pages waited for pcpu_drain_mutex before it ran (a zone-specific caller "
            "such as alloc_contig_range waits behind a running drain; skipped drains are not observed).",
            ["strategy", "trigger"],
            buckets=DRAIN_BUCKETS,
            registry=registry,
        )
        all_total = Counter(
            "pcpsim_drain_all_total",
            "drain_all_pages calls by outcome.",
            ["strategy", "trigger", "status"],
            registry=registry,
        )
        cpu_dur = Histogram(
            "pcpsim_drain_cpu_duration_seconds",
            "One CPU's drain as the drainer saw it (workqueue: from queueing until its flush returned).",
            ["strategy", "cpu"],
            buckets=LONG_LATENCY_BUCKETS,
            registry=registry,
        )
        cpu_wait = Histogram(
            "pcpsim_drain_cpu_wait_seconds",
            "One CPU's drain wait: workqueue = queue -> start on the CPU; remote = pcp lock wait.",
            ["strategy", "cpu"],
            buckets=LONG_LATENCY_BUCKETS,
            registry=registry,
        )
        cpu_pages = Counter(
            "pcpsim_drain_pages_total",
            "Base pages drained from a CPU's pcp lists into the zone.",
            ["strategy", "cpu"],
            registry=registry,
        )
        cpu_fail = Counter(
            "pcpsim_drain_cpu_failures_total",
            "Per-CPU drains that failed (RPC error, flush timeout, zone refusal).",
            ["strategy", "cpu"],
            registry=registry,
        )
        self._all = {}
        self._cpu = {}
        for strategy, sname in STRATEGY_NAMES.items():
            for trigger, tname in TRIGGER_NAMES.items():
                self._all[strategy, trigger] = (
                    all_dur.labels(sname, tname),
                    all_wait.labels(sname, tname),
                    {status: all_total.labels(sname, tname, name) for status, name in STATUS_NAMES.items()},
                )
            for cpu in range(nr_cpus):
                c = str(cpu)
                self._cpu[strategy, cpu] = (
                    cpu_dur.labels(sname, c),
                    cpu_wait.labels(sname, c),
                    cpu_pages.labels(sname, c),
                    cpu_fail.labels(sname, c),
                )

    def observe(self, record) -> None:
        duration, mutex_wait, by_status = self._all[record.strategy, record.trigger]
        by_status[record.status].inc()
        if record.status == pb.DrainAllReply.SKIPPED:
            return
        duration.observe(record.duration_s)
        mutex_wait.observe(record.mutex_wait_s)
        for c in record.cpus:
            dur, wait, pages, failures = self._cpu[record.strategy, c.cpu]
            dur.observe(c.duration_s)
            wait.observe(c.wait_s)
            pages.inc(c.pages)
            if not c.ok:
                failures.inc()


class AuditMetrics:
    """The last audit's verdict; `observe` is audit_cluster's on_report hook (once per completed audit).

    pcpsim_audit_ok reads 0 until the first audit completes: pair it with pcpsim_audits_total > 0."""

    def __init__(self, registry):
        self._ok = Gauge(
            "pcpsim_audit_ok",
            "1 if the last completed audit found every page exactly once, "
            "else 0 (also 0 before the first audit; see pcpsim_audits_total).",
            registry=registry,
        )
        self._lost = Gauge("pcpsim_audit_lost_pages", "Base pages the last audit found nowhere.", registry=registry)
        self._duplicated = Gauge(
            "pcpsim_audit_duplicated_pages",
            "Base pages the last audit found in more than one place.",
            registry=registry,
        )
        self._audits = Counter("pcpsim_audits_total", "Audits completed (either verdict).", registry=registry)

    def observe(self, report) -> None:
        self._ok.set(1 if report.ok else 0)
        self._lost.set(len(report.lost))
        self._duplicated.set(len(report.duplicated))
        self._audits.inc()


class CoordinatorCollector(Collector):
    """Zone, membership and drain-mutex state, read at scrape time."""

    def __init__(self, zone_service, membership, drainer, time_scale: float, recovery=None, reaper=None):
        self.zone_service = zone_service
        self.membership = membership
        self.drainer = drainer
        self.time_scale = time_scale
        self.recovery = recovery  # coordinator.recovery.Recovery
        self.reaper = reaper  # coordinator.hotplug.Reaper

    def describe(self):
        return list(self._families().values())

    def collect(self):
        f = self._families()
        f["pcpsim_time_scale_ratio"].add_metric([], self.time_scale)
        f["pcpsim_drain_running"].add_metric([], 1 if self.drainer.pcpu_drain_mutex.locked() else 0)
        zs = self.zone_service
        z = zs.zone
        f["pcpsim_zone_managed_pages"].add_metric([], z.managed_pages)
        f["pcpsim_zone_free_pages"].add_metric([], z.free_pages)
        for order in range(MAX_ORDER):
            f["pcpsim_zone_free_blocks"].add_metric([str(order)], z.nr_free(order))
        for level in ("min", "low", "high"):
            f["pcpsim_zone_watermark_pages"].add_metric([level], z.watermark[level])
        f["pcpsim_zone_reclaim_active"].add_metric([], 1 if z.reclaim_active else 0)
        f["pcpsim_zone_refusals_total"].add_metric([], zs.refused)
        f["pcpsim_zone_lock_hold_seconds_total"].add_metric([], zs.lock_hold_s)
        f["pcpsim_zone_lock_operations_total"].add_metric([], zs.lock_ops)
        f["pcpsim_zone_lock_modeled_hold_seconds_total"].add_metric([], zs.modeled_hold_s)
        if self.recovery is not None:
            f["pcpsim_coordinator_recovering"].add_metric([], 1 if self.recovery.active else 0)
        if self.reaper is not None:
            f["pcpsim_cpu_deaths_total"].add_metric([], self.reaper.deaths)
        m = self.membership
        members = dict(m.members)  # C-level copy: Register may add one meanwhile
        now = m.clock()
        for cpu in range(m.nr_cpus):
            member = members.get(cpu)
            c = str(cpu)
            if member is None:
                f["pcpsim_node_up"].add_metric([c, "unregistered"], 0)
                continue
            f["pcpsim_node_up"].add_metric([c, role_label(member.role)], 1 if m.is_up(member) else 0)
            f["pcpsim_node_dead"].add_metric([c], 1 if member.dead else 0)
            f["pcpsim_node_offline"].add_metric([c], 1 if member.cpu_offline else 0)
            f["pcpsim_node_heartbeat_age_seconds"].add_metric([c], now - member.last_heartbeat)
            f["pcpsim_node_registrations_total"].add_metric([c], member.registrations)
            f["pcpsim_node_reported_pcp_count_pages"].add_metric([c], member.pcp_count)
        return f.values()

    @staticmethod
    def _families() -> dict:
        g, c = GaugeMetricFamily, CounterMetricFamily
        fams = [
            g(
                "pcpsim_time_scale_ratio",
                "Wall seconds per kernel second (node.shared.timebase): divide a wall-time "
                "figure by this for kernel time.",
            ),
            g("pcpsim_drain_running", "1 while pcpu_drain_mutex is held (a drain or an audit is running)."),
            g("pcpsim_zone_managed_pages", "Base pages the zone manages."),
            g("pcpsim_zone_free_pages", "Base pages free in the buddy allocator (not counting pcp lists)."),
            g("pcpsim_zone_free_blocks", "Free blocks of each order (free_area[order].nr_free).", labels=["order"]),
            g("pcpsim_zone_watermark_pages", "Zone watermarks.", labels=["level"]),
            g(
                "pcpsim_zone_reclaim_active",
                "1 while ZONE_RECLAIM_ACTIVE (free pages fell below low, not yet back above high).",
            ),
            c("pcpsim_zone_refusals", "Refills or buddy allocations refused below the min watermark."),
            c("pcpsim_zone_lock_hold_seconds", "Wall time zone->lock was held, all operations."),
            c("pcpsim_zone_lock_operations", "Operations run under zone->lock."),
            c(
                "pcpsim_zone_lock_modeled_hold_seconds",
                "The holds of zone->lock the cost model asked for, in wall time (against the hold measured).",
            ),
            g(
                "pcpsim_node_up",
                "1 if the CPU's heartbeats are current; role=unregistered before it registers.",
                labels=["cpu", "role"],
            ),
            g("pcpsim_node_heartbeat_age_seconds", "Time since the CPU's last heartbeat.", labels=["cpu"]),
            g(
                "pcpsim_node_dead",
                "1 once the CPU was declared dead (its pages taken back) until it registers again.",
                labels=["cpu"],
            ),
            g(
                "pcpsim_node_offline",
                "1 while the CPU is taken offline by CPU hotplug (`pcpsim cpu offline`): its heartbeats go on "
                "(node_up stays 1), no drain marks it, its pcp lists are empty.",
                labels=["cpu"],
            ),
            g(
                "pcpsim_coordinator_recovering",
                "1 while the coordinator rebuilds its zone from the nodes' reports "
                "(zone operations, drains and audits wait).",
            ),
            c("pcpsim_cpu_deaths", "CPUs declared dead (page_alloc_cpu_dead, high recomputed)."),
            c("pcpsim_node_registrations", "Registrations of the CPU (restarts add one).", labels=["cpu"]),
            g(
                "pcpsim_node_reported_pcp_count_pages",
                "pcp count the CPU last reported (the racy read drain_all_pages marks CPUs by).",
                labels=["cpu"],
            ),
        ]
        return {x.name + ("_total" if x.type == "counter" else ""): x for x in fams}
