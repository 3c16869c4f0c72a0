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
drain_all_pages on an open-loop schedule (one per --drain-interval on average, with
seeded jitter, the same for every strategy; a drain due while one runs waits for the
mutex, as a zone-specific caller does), collects every CPU's statistics and the coordinator's drain records,
and ends with a stop-the-world audit.

Default layout (coordinator.tools.cluster.DEFAULT_ROLES, also `cluster up`'s): cpu0 and cpu1
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
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from coordinator.drain.record import STRATEGIES, TRIGGER_NAMES
from coordinator.tools import compare_results
from coordinator.tools.cluster import DEFAULT_ROLES, ClusterConfig, LocalCluster
from coordinator.tools.progress import Progress
from coordinator.tools.schedule import drain_schedule
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.api.validate import MAX_EVENT_WINDOW_S
from node.mm import profile as profiles
from node.shared.timebase import TIME_SCALE, CostModel, load_cost_model
from node.sim.rng import Stream

DEFAULT_STRATEGIES = ("workqueue", "remote")


def default_strategies(kernel: str) -> tuple:
    """workqueue and remote, or workqueue and rcu-swap under a kernel whose pcp no other CPU can lock."""
    return DEFAULT_STRATEGIES if profiles.get(kernel).remote_drain else ("workqueue", "rcu-swap")


QUICK_MEASURE_S = 25.0
FULL_MEASURE_S = 60.0


@dataclass(frozen=True)
class CompareConfig:
    seed: int = 1
    measure_s: float = FULL_MEASURE_S
    warmup_s: float = 3.0
    drain_interval_s: float = 0.150
    roles: tuple = DEFAULT_ROLES
    strategies: tuple = DEFAULT_STRATEGIES
    kernel: str = profiles.DEFAULT_KERNEL
    trigger_mix: tuple = (("demand", 1.0),)  # (trigger, weight): what each scheduled event is
    workload: str | None = None  # an rt-app task set (node.rtapp); `roles` then workload_roles' for it
    cost_model: str | None = None  # a cost model file (node.shared.timebase) every phase's cluster reads

    def __post_init__(self):
        if self.cost_model and (scale := load_cost_model(self.cost_model).time_scale) != TIME_SCALE:
            raise ValueError(
                f"cost model {self.cost_model} sets time_scale {scale:g}: compare reports kernel time "
                f"at the default time scale ({TIME_SCALE:g}), so leave time_scale out of the file"
            )
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies or len(set(self.strategies)) != len(self.strategies):
            raise ValueError(
                f"strategies must be distinct names among {', '.join(STRATEGIES)}; "
                f"got {', '.join(self.strategies) or 'none'}"
            )
        if (
            not self.trigger_mix
            or any(t not in TRIGGERS or w < 0 for t, w in self.trigger_mix)
            or sum(w for _, w in self.trigger_mix) <= 0
        ):
            raise ValueError(
                f"trigger mix must weigh {', '.join(TRIGGERS)} with weights >= 0, not all 0; got {self.trigger_mix}"
            )
        profile = profiles.get(self.kernel)
        if profile.replay_only:
            raise ValueError(
                f"kernel {self.kernel} is a bug-replay variant (`pcpsim replay`); a cluster runs one of "
                f"{', '.join(profiles.LIVE)}"
            )
        # qpw drains remotely too: the compared roles always include isolated CPUs.
        locking = [s for s in ("remote", "qpw") if s in self.strategies]
        if locking and not profile.remote_drain:
            raise ValueError(
                f"kernel {self.kernel} guards the pcp with a {profile.pcp_lock} that no other CPU "
                f"can take, so {' and '.join(locking)} cannot run under it: compare workqueue and "
                "rcu-swap under it, or remote and qpw under 6.1/6.2"
            )

    @property
    def phases(self) -> tuple:
        return ("noise_floor", *self.strategies)


PHASE_STARTUP_S = 5.0  # cluster start, reset and collection, per phase: the progress estimate's share


TRIGGERS = ("demand", "cma", "offline")  # what a scheduled event does (--trigger-mix)
CONTIG_PAGES = 512  # one pageblock per cma or offline event
CONTIG_SLOTS = 16  # events in flight at once get distinct ranges at the top of the zone
CONTIG_TIMEOUT_MS = 2000  # each cma or offline event's timeout


def trigger_plan(seed: int, mix: tuple, n: int) -> list[str]:
    """Which trigger each of n scheduled events is, drawn with the seed by the mix's weights
    ((name, weight) pairs), so every strategy meets the same sequence."""
    rng = Stream(f"triggers:{seed}")
    names, weights = zip(*mix, strict=True)
    return rng.choices(names, weights, k=n)


def contig_start(trigger: str, index: int, top: int) -> int:
    """The first pfn of cma or offline event `index`'s pageblock, below the zone's end `top`: CONTIG_SLOTS
    slots for each trigger, so events in flight at once take distinct ranges."""
    slot = index % CONTIG_SLOTS + (CONTIG_SLOTS if trigger == "offline" else 0)
    return top - (slot + 1) * CONTIG_PAGES


def contig_outcome(trigger: str, reply: pb.ContigRangeReply) -> dict:
    """A cma or offline event's entry in the phase's `contig` list (compare_results.summarize_phase)."""
    return {
        "trigger": trigger,
        "ok": reply.ok,
        "duration_s": reply.duration_s,
        "drains": len(reply.drains),
        "error": reply.error,
    }


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
        nodes = cluster.state().nodes
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


WINDOW_MARGIN_S = 0.02  # shown either side of the drain: at least one period of a 20 ms latency task


def median_drain(history, cpus: set[int]):
    """The completed drain_all_pages of median duration (the earlier of two equal ones) among those
    that freed pages from one of `cpus` (the latency CPUs: what the figure is about; a CPU's lists
    are often empty when a drain comes), or among all completed ones if none did; None if none."""
    done = [d for d in history if d.status == pb.DrainAllReply.DONE]
    done = [d for d in done if any(c.cpu in cpus and c.pages for c in d.cpus)] or done
    done.sort(key=lambda d: (d.duration_s, d.started_at))
    return done[(len(done) - 1) // 2] if done else None


def drain_window(history, stats: dict, node_stubs: dict) -> dict | None:
    """The events of each latency CPU around the median drain (see the module docstring), times in
    seconds from the drain's start. The drainer's DrainRecord.started_at and the nodes' events are
    both read on time.monotonic, CLOCK_MONOTONIC, which is one clock for every process of a host (it
    counts from boot): the local cluster runs on one host, so the times compare as they are."""

    def events(cpu: int, lo: float, hi: float) -> list:
        request = pb.StatsRequest(cpu=cpu, events_from_s=lo, events_to_s=hi)
        return list(node_stubs[cpu].GetStats(request, timeout=10.0).events)

    return window_of(history, stats, events, TIME_SCALE)


def window_of(history, stats: dict, events: Callable[[int, float, float], list], time_scale: float) -> dict | None:
    """drain_window from any engine: `events(cpu, lo, hi)` gives a CPU's pb.CpuEvents overlapping [lo, hi]
    on the history's clock; `time_scale`, that clock's seconds per kernel second (the wall engine's
    TIME_SCALE; 1 under virtual time), scales the margins, which are the wall engine's."""
    latency = {cpu for cpu, s in stats.items() if s.role in (pb.ROLE_ISOLATED_PREEMPTIBLE, pb.ROLE_ISOLATED_RT)}
    drain = median_drain(history, latency)
    if drain is None:
        return None
    scale = time_scale / TIME_SCALE
    start = drain.started_at + drain.mutex_wait_s  # the drain proper: once it holds pcpu_drain_mutex
    margin = max(WINDOW_MARGIN_S * scale, drain.duration_s)
    lo = start - margin
    hi = min(start + drain.duration_s + margin, lo + MAX_EVENT_WINDOW_S * scale)  # a drain of seconds: its start
    cpus = {}
    for cpu in sorted(latency):
        cpus[str(cpu)] = [
            {"lane": e.lane, "kind": e.kind, "start_s": e.start_s - start, "end_s": e.end_s - start}
            for e in events(cpu, lo, hi)
        ]
    return {
        "duration_s": drain.duration_s,
        "trigger": TRIGGER_NAMES[drain.trigger],
        "from_s": lo - start,
        "to_s": hi - start,
        "cpus_marked": list(drain.cpus_marked),
        # pages each CPU's part freed: a marked CPU whose lists were empty by then had no pcp lock
        # taken (drain_pages_zone locks only when pcp->count is non-zero; cpus_marked is racy)
        "pages_drained": {str(c.cpu): c.pages for c in drain.cpus},
        "cpus": cpus,
    }


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
