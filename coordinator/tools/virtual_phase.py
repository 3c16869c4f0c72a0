"""One phase of `pcpsim compare` under virtual time (coordinator.tools.virtual_cluster's WholeCluster).

The same layout, warm-up, seeded drain schedule (coordinator.tools.schedule) and audit as compare's
phase, the wall engine's user-space figures divided by TIME_SCALE (node.virtual.run), the figures
summarized by compare's own code (summarize_phase), and the results shaped like a compare results file
(coordinator.tools.report reads them; `time_scale` 1.0: every time in them is kernel time). Only demand
drains yet: cma and offline events need the contiguous range rules (coordinator.contig) under virtual
time; no drain window yet.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from coordinator.drain.record import STRATEGIES, DrainRecord
from coordinator.tools.cluster import DEFAULT_ROLES
from coordinator.tools.compare import HIST_BUCKET_KERNEL_US, CompareConfig, summarize_phase
from coordinator.tools.schedule import drain_schedule
from coordinator.tools.virtual_cluster import WholeCluster, compare_roles
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import profile as profiles
from node.runtime import counters, stats_since
from node.tasks import LatencyTask
from node.virtual.run import VirtualCluster, kernel_s

DRAIN_BOUND_S = 1.0  # virtual time the drains still running at the end of measurement get to finish


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
