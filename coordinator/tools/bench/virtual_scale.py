"""Figure 6 under the virtual engine (`pcpsim bench --engine virtual`): a compare phase at many CPUs.

For each size, one strategy phase of `pcpsim compare --engine virtual --cpus N` (coordinator.tools.
virtual_phase.run_phase on a nohz_full machine of N CPUs: virtual_cluster.machine_roles, one CPU in 16
housekeeping, one in 32 each latency task, the rest idle; compare's warm-up, seeded demand-drain
schedule, figures and audit), with 10 ms of kernel time measured after compare's 12 ms of warm-up,
run in a child process of its own so that its peak RSS (ru_maxrss, the audit's snapshots included) is
its alone. Reported per size: the audit's balanced pages against the zone's, the drains that
completed against those asked, the wall time against the kernel time simulated (events, events per
wall second and CPU time in the note), and the peak RSS against the budget of the N wall node
processes the one process stands for (the wall scale figure's 60 MB each). Full: 256 and 1,024 CPUs
(minutes on a shared 2-core machine); quick: 32 CPUs, the least machine_roles lays out, to prove the
path.

The strategy defaults to remote, the design under test. Until 2026-12-03 the figure ran compare's
own layout (half housekeeping) under rcu-swap: there 512 housekeeping CPUs saturate the one
zone->lock, and a remote drain, which waits at each CPU for the pcp lock that CPU holds across its
refill, did not end within the phase's bound (docs/benchmarks.md).
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

from coordinator.tools.bench.figure import RSS_BUDGET_BYTES, Figure, log

FULL_CPUS = (256, 1024)
QUICK_CPUS = (32,)
STRATEGY = "remote"
SEED = 1
MEASURE_S = 2.5  # compare's wall seconds: 10 ms of kernel time (warm-up: compare's 3 s, 12 ms)
CHILD_TIMEOUT_S = 3600.0


@dataclass
class ScaleRun:
    """What one child process measured (the JSON line it prints)."""

    cpus: int
    strategy: str
    wall_s: float  # the phase, from building the cluster to the audit's end
    cpu_s: float  # the child's CPU time for the same
    events: int
    kernel_s: float  # virtual time at the end: warm-up, measurement and the last drains' ends
    peak_rss_bytes: int  # ru_maxrss of the child
    zone_pages: int
    audit: dict  # the phase's audit figures (ok, lost, duplicated, unexpected, errors)
    drains_asked: int
    drains_done: int
    drains_failed: int
    drain_max_s: float
    reclaim_drains: int  # direct reclaim's drain_all_pages (trigger reclaim), any status

    @property
    def balanced(self) -> int:
        """The zone's pages if the audit balanced, else at least one page short (as the wall scale figure)."""
        a = self.audit
        return self.zone_pages if a["ok"] else self.zone_pages - max(1, a["lost"] + a["duplicated"])


def measure(cpus: int, strategy: str, seed: int) -> ScaleRun:
    """One phase in this process (the child's work)."""
    from coordinator.tools.virtual_cluster import machine_roles
    from coordinator.tools.virtual_phase import default_config, run_phase

    t0, c0 = time.perf_counter(), time.process_time()
    config = default_config(strategy, seed, roles=tuple(machine_roles(cpus)), measure_s=MEASURE_S)
    run = run_phase(strategy, config, keep_log=False)
    wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    phase, nodes = run.figures, run.cluster.nodes
    return ScaleRun(
        cpus=cpus,
        strategy=strategy,
        wall_s=wall_s,
        cpu_s=cpu_s,
        events=run.cluster.queue.executed,
        kernel_s=nodes.clock(),
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux: kilobytes
        zone_pages=nodes.zone.zone.spanned_pages,
        audit=phase["audit"],
        drains_asked=phase["drains_by_trigger"].get("demand", 0),
        drains_done=phase["drain_all"]["count"],
        drains_failed=phase["drain_all_failed"] + len(phase["drain_rpc_errors"]),
        drain_max_s=phase["drain_all"]["max_s"],
        reclaim_drains=len(run.cluster.reclaim_drains),
    )


def run_child(cpus: int, strategy: str, seed: int, timeout_s: float = CHILD_TIMEOUT_S) -> ScaleRun | str:
    """measure() in a child process; what went wrong, as text, if it did not finish."""
    cmd = [sys.executable, "-m", "coordinator.tools.bench.virtual_scale", str(cpus), strategy, str(seed)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"did not finish in {timeout_s:g}s"
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}"
    return ScaleRun(**json.loads(proc.stdout.splitlines()[-1]))


def figures_for(run: ScaleRun) -> list[Figure]:
    n, mb = run.cpus, 2**20
    where = f"virtual scale {n} CPUs"
    a = run.audit
    return [
        Figure(
            f"{where}: audit pages balanced / zone pages",
            run.balanced,
            run.zone_pages,
            "",
            ">= 1",
            f"{run.strategy}, seed {SEED}; audit {'ok' if a['ok'] else 'FAILED'}: lost {a['lost']}, "
            f"duplicated {a['duplicated']}, unexpected {a['unexpected']}",
        ),
        Figure(
            f"{where}: drains completed / drains asked",
            run.drains_done if not run.drains_failed else 0,
            run.drains_asked,
            "",
            ">= 1",
            f"compare's demand schedule; {run.drains_failed} failed; longest {run.drain_max_s * 1e3:.2f} ms of "
            f"kernel time; {run.reclaim_drains} direct-reclaim drains",
        ),
        Figure(
            f"{where}: wall time / kernel time simulated",
            run.wall_s,
            run.kernel_s,
            "s",
            None,
            f"{run.events:,} events, {run.events / run.wall_s:,.0f} per wall second; CPU time {run.cpu_s:.1f}s; "
            f"{run.kernel_s * 1e3:.1f} ms of kernel time (warm-up, measurement, the last drains)",
        ),
        Figure(
            f"{where}: peak RSS vs {n} wall nodes' budget",
            run.peak_rss_bytes,
            RSS_BUDGET_BYTES * n,
            "B",
            "<= 1",
            f"ru_maxrss of the one child process: {run.peak_rss_bytes / mb:,.0f} MB (the audit's snapshots "
            f"included), against {n} x {RSS_BUDGET_BYTES / mb:.0f} MB",
        ),
    ]


def failed_figure(cpus: int, strategy: str, why: str) -> Figure:
    return Figure(f"virtual scale {cpus} CPUs: drains completed / drains asked", 0, 1, "", ">= 1", f"{strategy}: {why}")


def bench_virtual_scale(quick: bool, strategy: str = STRATEGY) -> tuple[list[Figure], dict]:
    figures: list[Figure] = []
    detail: dict = {}
    for n in QUICK_CPUS if quick else FULL_CPUS:
        log(f"virtual scale: a {strategy} compare phase at {n} CPUs in a child process")
        run = run_child(n, strategy, SEED)
        if isinstance(run, str):
            figures.append(failed_figure(n, strategy, run))
            detail[str(n)] = {"error": run}
            continue
        figures.extend(figures_for(run))
        detail[str(n)] = vars(run)
    return figures, detail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one virtual compare phase; prints what it measured as JSON")
    parser.add_argument("cpus", type=int)
    parser.add_argument("strategy")
    parser.add_argument("seed", type=int)
    args = parser.parse_args(argv)
    print(json.dumps(vars(measure(args.cpus, args.strategy, args.seed))))


if __name__ == "__main__":
    main()
