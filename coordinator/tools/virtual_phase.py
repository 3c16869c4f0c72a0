"""One phase of `pcpsim compare` under virtual time (coordinator.tools.virtual_cluster's WholeCluster).

The same layout, warm-up, seeded drain schedule (coordinator.tools.schedule), trigger mix and audit as
compare's phase, the wall engine's user-space figures divided by TIME_SCALE (node.virtual.run), and the
figures summarized by compare's own code (coordinator.tools.compare_results.summarize_phase) with every
time in kernel seconds (`time_scale` 1.0). A phase is `noise_floor` (no drains, the kernel profile's pcp
design) or a strategy. coordinator.tools.virtual_compare runs them all into a compare results file.
The phase's CPUs get what a wall phase's nodes get (`options`): the kernel profile, the cost model
file's costs at time scale 1, the rt-app task set; and the host-noise model (node.sim.noise,
COMPARE_DEFAULT unless the caller names another). Every compare option runs under virtual time.
"""

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordinator.drain.record import STRATEGIES, DrainRecord
from coordinator.drain.virtual import NotEnded
from coordinator.tools.compare_plan import (
    CONTIG_PAGES,
    CONTIG_TIMEOUT_MS,
    CompareConfig,
    contig_outcome,
    contig_start,
    trigger_plan,
    window_of,
)
from coordinator.tools.compare_results import summarize_phase
from coordinator.tools.schedule import drain_schedule
from coordinator.tools.virtual_cluster import WholeCluster
from node import rtapp
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu_report import counters, cpu_events, stats_since
from node.mm import audit as mm_audit
from node.mm import profile as profiles
from node.shared.timebase import load_cost_model
from node.sim import noise as noise_models
from node.tasks import LatencyTask
from node.virtual.run import KERNEL, Options, VirtualCluster, kernel_s

DRAIN_BOUND_S = 1.0  # virtual time the drains still running at the end of measurement get to finish


class PhaseOverrun(RuntimeError):
    """A phase that did not end: its drains had not ended within DRAIN_BOUND_S of its measurement (the
    schedule outran them), or its closing audit within its bound (an operation held a CPU or zone->lock
    longer: a cost model's or a task set's figures can make one that long)."""


def node_stats(nodes: VirtualCluster, n: int, base: dict[str, Any]) -> pb.NodeStats:
    """A CPU's statistics since `base` (its counters then), as GetStats answers (node.runtime.NodeRuntime.stats)."""
    return stats_since(n, nodes.roles[n], _counters(nodes, n), base, nodes.cpus[n].drain_wait_max_s, _task(nodes, n))


def _task(nodes: VirtualCluster, n: int) -> LatencyTask | None:
    return next((s for s in nodes.cpus[n].sources if isinstance(s, LatencyTask)), None)


def events(nodes: VirtualCluster, n: int, start: float, end: float) -> list[pb.CpuEvent]:
    """CPU n's logged events overlapping [start, end], as GetStats answers them (node.cpu_report.cpu_events)."""
    cpu = nodes.cpus[n]
    return cpu_events(cpu, nodes.allocs[n], _task(nodes, n), nodes.drains[n], start, end, nodes.clock())


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


def audit_reply(report: mm_audit.AuditReport) -> pb.AuditReply:
    """The audit as compare reads it from the wall coordinator's Audit: counts of pages, not every pfn."""
    lost, duplicated, unexpected = len(report.lost), len(report.duplicated), len(report.unexpected)
    return pb.AuditReply(ok=report.ok, lost=lost, duplicated=duplicated, unexpected=unexpected, errors=report.errors)


def options(config: CompareConfig, noise: str = noise_models.COMPARE_DEFAULT) -> Options:
    """The CPUs' options for `config`'s phases, as a wall phase's nodes read them (node.__main__): the
    kernel profile, the cost model file (its time_scale, checked by CompareConfig to be the wall
    engine's, replaced by 1: virtual time is kernel time), the task set; and the noise model. A file
    that cannot be read or parsed is a ValueError (rtapp.WorkloadError, CostModelError)."""
    cost = dataclasses.replace(load_cost_model(config.cost_model), time_scale=1.0) if config.cost_model else KERNEL
    workload = rtapp.load(config.workload) if config.workload else None
    return Options(kernel=config.kernel, cost=cost, workload=workload, noise=noise)


def _contig_event(
    cluster: WholeCluster, trigger: str, index: int, contig: list[dict], errors: list[str], over: Callable[[], None]
) -> None:
    """A cma or offline event as compare's (coordinator.tools.compare._event): one pageblock taken at the
    top of the zone, its outcome in `contig`, then released if it was taken; over() once it all ended."""
    start = contig_start(trigger, index, cluster.zone.zone.end_pfn)

    def failed(error: BaseException) -> None:
        errors.append(f"{trigger}: {type(error).__name__}: {error}")
        over()

    def taken(result: Any, error: BaseException | None) -> None:
        if error is not None:
            failed(error)
            return
        contig.append(contig_outcome(trigger, result.to_pb()))
        if not result.ok:
            over()
            return
        cluster.release_range(start, CONTIG_PAGES, lambda _, error: failed(error) if error is not None else over())

    take = cluster.alloc_contig_range if trigger == "cma" else cluster.offline_pages
    take(start, CONTIG_PAGES, CONTIG_TIMEOUT_MS, taken)


@dataclass
class PhaseRun:
    name: str  # noise_floor or a strategy
    figures: dict  # summarize_phase's, times in kernel seconds
    cluster: WholeCluster

    def event_log(self) -> str:
        """The CPUs' log and summary, then the drain driver's trace (needs keep_log)."""
        return self.cluster.nodes.text() + self.cluster.trace_text()

    def log_digest(self) -> str:
        """SHA-256 of the CPUs' log digest (VirtualCluster.digest, the log kept or not) and the trace."""
        return hashlib.sha256((self.cluster.nodes.digest() + "\n" + self.cluster.trace_text()).encode()).hexdigest()


def run_phase(
    phase: str, config: CompareConfig, keep_log: bool = True, noise: str = noise_models.COMPARE_DEFAULT
) -> PhaseRun:
    """One phase of compare under virtual time: warm up, reset the counters, drain on compare's seeded
    schedule (none in the noise floor), let the last drains end, collect, audit. `noise`: the host-noise
    model's name (node.sim.noise.NOISE)."""
    if phase not in config.phases:
        raise ValueError(f"phase {phase!r} is not one of this compare's: {', '.join(config.phases)}")
    strategy = STRATEGIES.get(phase)
    # The noise floor runs the kernel's own design and default strategy (no live kernel's is rcu-swap).
    # Direct reclaim drains with the phase's strategy, as the wall phase's coordinator (--strategy) does.
    reclaim = strategy or STRATEGIES[profiles.get(config.kernel).strategy]
    cluster = WholeCluster(
        config.roles,
        config.seed,
        rcu_swap=phase == "rcu-swap",
        keep_log=keep_log,
        strategy=reclaim,
        options=options(config, noise),
    )
    queue, nodes = cluster.queue, cluster.nodes
    try:
        warmup, measure = kernel_s(config.warmup_s), kernel_s(config.measure_s)
        nodes.run(warmup)
        base = reset_stats(nodes)
        # The wall phase resets the coordinator's DrainHistory here (GetDrainHistory reset=True), which
        # lists every drain_all_pages that ends from now on: direct reclaim's too.
        reclaims_before = len(cluster.reclaim_drains)
        history: list[DrainRecord] = []
        errors: list[str] = []
        contig: list[dict] = []
        offsets = drain_schedule(config.seed, kernel_s(config.drain_interval_s), measure) if strategy else []
        plan = trigger_plan(config.seed, config.trigger_mix, len(offsets))
        pending = [len(offsets)]

        def over() -> None:
            pending[0] -= 1

        def done(record: DrainRecord | None, error: BaseException | None) -> None:
            over()
            if record is not None:
                history.append(record)
            else:
                errors.append(f"demand: {type(error).__name__}: {error}")

        def event(index: int, trigger: str) -> None:
            """compare's event (coordinator.tools.compare._event): a demand drain, or a cma or offline one."""
            assert strategy is not None  # the noise floor schedules none
            if trigger == "demand":
                cluster.drain(strategy, done)
            else:
                _contig_event(cluster, trigger, index, contig, errors, over)

        for index, (offset, trigger) in enumerate(zip(offsets, plan, strict=True)):
            queue.at(warmup + offset, event, index, trigger)
        nodes.run(warmup + measure)
        bound = queue.clock() + DRAIN_BOUND_S
        while pending[0] and (queue.next_time() or bound) <= bound:
            queue.step()
        if pending[0]:
            raise PhaseOverrun(
                f"{pending[0]} of {len(offsets)} scheduled drains had not ended {DRAIN_BOUND_S:g}s of kernel time "
                f"after the measurement: one was asked every {kernel_s(config.drain_interval_s) * 1e3:g} ms of "
                "kernel time on average, and they queue on pcpu_drain_mutex faster than they end (a remote drain "
                "walks the CPUs with pages one by one); a longer --drain-interval-ms spaces them"
            )
        stats = {n: node_stats(nodes, n, base[n]) for n in range(len(nodes.cpus))}
        try:
            report = cluster.audit()
        except NotEnded as err:
            raise PhaseOverrun(
                f"{err}: one CPU or zone->lock was held past it (check the --cost-model and --workload figures)"
            ) from None
    finally:
        cluster.close()
    # The wall phase's DrainHistory lists them with the demand drains.
    history += cluster.contig_drains + cluster.reclaim_drains[reclaims_before:]
    history.sort(key=lambda r: r.started_at)
    drains = [r.to_pb() for r in history]
    figures = summarize_phase(stats, drains, audit_reply(report), errors, contig, time_scale=1.0)
    # compare's drain window (coordinator.tools.compare.drain_window), from the CPUs' own logs.
    window = window_of(drains, stats, lambda n, lo, hi: events(nodes, n, lo, hi), 1.0) if strategy else None
    if window is not None:
        figures["drain_window"] = window
    return PhaseRun(phase, figures, cluster)


def default_config(strategy: str, seed: int = 1, **kw: Any) -> CompareConfig:
    """compare's configuration for one strategy, on its default layout unless `kw` gives roles."""
    return CompareConfig(seed=seed, strategies=(strategy,), **kw)
