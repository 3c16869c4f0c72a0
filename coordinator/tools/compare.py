"""`pcpsim compare`: the same workload and drain schedule under each strategy, side by side.

Runs one phase per strategy, each on a fresh local cluster started with the same seed (so
the workload's random choices are the same), after a `noise_floor` phase (no drains: what
the latency tasks see from the simulator and the machine alone). The strategies are
`workqueue` and `remote` unless `strategies` names others (`rcu-swap`, `qpw`); an rcu-swap phase
runs its cluster with the RCU list-set pcp (node.mm.pcp_rcu), and its results add the
grace period each drain waited (`grace_period`). `trigger_mix` makes each scheduled event a
demand drain, a CMA allocation (alloc_contig_range of one pageblock, then its release) or a
memory offline (then online) by seeded weights, the same sequence for every strategy:
`--trigger-mix cma=1` is "CMA allocations on a busy machine"; the results then add `contig`
(each whole operation's duration) and `drains_by_trigger`.
Each phase warms up (pcp lists fill), resets every counter, then issues
drain_all_pages on an open-loop schedule (one per --drain-interval-ms on average, with
seeded jitter, the same for every strategy; a drain due while one runs waits for the
mutex, as a zone-specific caller does), collects every CPU's statistics and the coordinator's drain records,
and ends with a stop-the-world audit.

Default layout (coordinator.tools.topology.DEFAULT_ROLES, also `cluster up`'s): cpu0 and cpu1
housekeeping (allocation churn and IRQs), cpu2 an isolated preemptible latency task, cpu3 an
isolated RT latency task (node/workloads/default.json). `workload` replaces those tasks with an
rt-app task set's (node.rtapp): the CPUs it names run its tasks, the others housekeeping.

Besides the summary table's figures, the results keep the raw data a report needs
(coordinator.tools.report rebuilds oslat/cyclictest/osnoise-style tables and the plots from
the JSON alone): `phases.<phase>.cpus.<cpu>` per latency CPU (a wake-up latency
histogram in 1 us kernel-time buckets, min/avg/max, noise by cause) and every
drain_all_pages duration in `strategies.<name>.drain_all.durations_s`. Per strategy phase,
`phases.<strategy>.drain_window` is one drain seen on every latency CPU: the
drain_all_pages (any trigger) of median duration among those that freed pages from a latency
CPU (among all, if none did), and each latency CPU's events from WINDOW_MARGIN_S (or the
drain's duration, if longer) before it to as long after (`cpus.<cpu>`: a list of {lane, kind,
start_s, end_s}, seconds from the drain's start, lanes as node.api's CpuEvent: work, lock,
fallback, task); `duration_s`, `trigger`, `from_s`, `to_s`, `cpus_marked` and
`pages_drained` (per CPU) place it.
"""

import os
import sys
import tempfile
import threading
import time

import grpc

from coordinator.drain.record import STRATEGIES
from coordinator.tools import compare_results
from coordinator.tools.cluster import ClusterConfig, LocalCluster
from coordinator.tools.compare_plan import (
    CONTIG_PAGES,
    CONTIG_TIMEOUT_MS,
    CompareConfig,
    contig_outcome,
    contig_start,
    trigger_plan,
    window_of,
)
from coordinator.tools.progress import Progress
from coordinator.tools.schedule import drain_schedule
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.shared.timebase import TIME_SCALE, CostModel, load_cost_model

PHASE_STARTUP_S = 5.0  # cluster start, reset and collection, per phase: the progress estimate's share


def _event(stub, strategy: pb.Strategy, trigger: str, index: int, top: int, contig: list) -> None:
    """One scheduled event. demand: drain_all_pages. cma: alloc_contig_range of one pageblock
    (its own zone-specific drain), then cma_release. offline: offline_pages of one pageblock
    (zone_pcp_disable, a drain forced on every CPU), then online it again."""
    if trigger == "demand":
        stub.DrainAllPages(pb.DrainAllRequest(strategy=strategy, trigger=pb.TRIGGER_DEMAND), timeout=60.0)
        return
    start = contig_start(trigger, index, top)
    call = stub.AllocContigRange if trigger == "cma" else stub.OfflinePages
    reply = call(
        pb.ContigRangeRequest(start_pfn=start, nr_pages=CONTIG_PAGES, timeout_ms=CONTIG_TIMEOUT_MS), timeout=60.0
    )
    contig.append(contig_outcome(trigger, reply))
    if reply.ok:
        stub.ReleaseRange(pb.ReleaseRangeRequest(start_pfn=start, nr_pages=CONTIG_PAGES), timeout=30.0)


def _drive_drains(
    stub,
    strategy: pb.Strategy,
    offsets: list[float],
    start: float,
    errors: list,
    plan: list[str],
    top: int,
    contig: list,
) -> None:
    """Open-loop schedule: each event on its own thread at its offset, so a slow drain
    does not shift the next one's start (it waits for the mutex instead)."""
    threads = []
    for index, (offset, trigger) in enumerate(zip(offsets, plan, strict=True)):
        delay = start + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)

        def one(index=index, trigger=trigger) -> None:
            try:
                _event(stub, strategy, trigger, index, top, contig)
            except grpc.RpcError as err:
                errors.append(f"{trigger}: {err.code().name}: {err.details()}")

        t = threading.Thread(target=one, daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(90.0)


def run_phase(phase: str, config: CompareConfig, run_dir: str, progress: Progress, index: int) -> dict:
    strategy = STRATEGIES.get(phase)
    # The noise floor runs the kernel's own design (its default strategy), with no drains.
    cluster_cfg = ClusterConfig(
        roles=list(config.roles),
        seed=config.seed,
        kernel=config.kernel,
        strategy=phase if strategy else None,
        workload=config.workload,
        cost_model=config.cost_model,
    )
    progress.update(index, phase, "starting")
    with LocalCluster(cluster_cfg, os.path.join(run_dir, phase)) as cluster:
        nodes = cluster.ready.nodes
        with cluster.channel(cluster.coordinator_address) as channel:
            coord = pb_grpc.CoordinatorStub(channel)
            node_channels = {n.cpu: cluster.channel(n.address) for n in nodes}
            try:
                node_stubs = {cpu: pb_grpc.NodeStub(ch) for cpu, ch in node_channels.items()}
                _wait(progress, index, phase, "warmup", config.warmup_s)
                for cpu, stub in node_stubs.items():
                    stub.GetStats(pb.StatsRequest(cpu=cpu, reset=True), timeout=10.0)
                coord.GetDrainHistory(pb.DrainHistoryRequest(reset=True), timeout=10.0)
                errors: list[str] = []
                contig: list[dict] = []
                driver = None
                if strategy:
                    offsets = drain_schedule(config.seed, config.drain_interval_s, config.measure_s)
                    plan = trigger_plan(config.seed, config.trigger_mix, len(offsets))
                    zone = coord.GetState(pb.Empty(), timeout=10.0).zone
                    driver = threading.Thread(
                        target=_drive_drains,
                        daemon=True,
                        args=(
                            coord,
                            strategy,
                            offsets,
                            time.monotonic(),
                            errors,
                            plan,
                            zone.start_pfn + zone.spanned_pages,
                            contig,
                        ),
                    )
                    driver.start()
                _wait(progress, index, phase, "measuring", config.measure_s)
                if driver:
                    driver.join(120.0)
                progress.update(index, phase, "collecting")
                stats = {cpu: stub.GetStats(pb.StatsRequest(cpu=cpu), timeout=10.0) for cpu, stub in node_stubs.items()}
                history = coord.GetDrainHistory(pb.DrainHistoryRequest(), timeout=10.0).drains
                window = drain_window(history, stats, node_stubs) if strategy else None
                audit = coord.Audit(pb.Empty(), timeout=60.0)
            finally:
                for ch in node_channels.values():
                    ch.close()
    out = compare_results.summarize_phase(stats, history, audit, errors, contig)
    if window is not None:
        out["drain_window"] = window
    return out


def drain_window(history, stats: dict, node_stubs: dict) -> dict | None:
    """The events of each latency CPU around the median drain (see the module docstring), times in
    seconds from the drain's start. The drainer's DrainRecord.started_at and the nodes' events are
    both read on time.monotonic, CLOCK_MONOTONIC, which is one clock for every process of a host (it
    counts from boot): the local cluster runs on one host, so the times compare as they are."""

    def events(cpu: int, lo: float, hi: float) -> list:
        request = pb.StatsRequest(cpu=cpu, events_from_s=lo, events_to_s=hi)
        return list(node_stubs[cpu].GetStats(request, timeout=10.0).events)

    return window_of(history, stats, events, TIME_SCALE)


def _wait(progress: Progress, index: int, phase: str, step: str, seconds: float) -> None:
    progress.update(index, phase, step)
    time.sleep(seconds)


def run_compare(config: CompareConfig, run_dir: str | None = None, stream=sys.stderr) -> dict:
    run_dir = run_dir or tempfile.mkdtemp(prefix="pcpsim-compare-")
    per_phase = config.measure_s + config.warmup_s + PHASE_STARTUP_S
    progress = Progress(len(config.phases), len(config.phases) * per_phase, stream)
    phases = {}
    try:
        for index, phase in enumerate(config.phases):
            phases[phase] = run_phase(phase, config, run_dir, progress, index)
    finally:
        progress.done()
    costs = load_cost_model(config.cost_model) if config.cost_model else CostModel()
    return {**compare_results.results(config, phases, costs), "run_dir": run_dir}
