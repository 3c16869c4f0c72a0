"""Figure 9 of `pcpsim bench`: a seed sweep's speed (docs/sweep.md), in seeds per second.

Value: `pcpsim chaos sweep` over fixed seeds (the same schedules on every machine: quick 1-2, full
1-8) against every strategy, one process per core as the sweep runs by default, timed on the wall
clock (coordinator.tools.chaos.sweep.rate). Floor: the same runs as wall-engine chaos runs, one at a
time as `chaos run` goes, by the wall runner's own estimate of each (the scenario's duration plus
the cluster's start, settling and final observations): what a sweep would do without virtual time.
Target >= 10, figure 8's bar for the engine: the sweep is that engine plus the checker, the
generator and the processes' start. A run that is not valid counts like any other (the figure is a
speed); the note says how many there were.
"""

from coordinator.tools.bench.figure import Figure, log
from coordinator.tools.chaos.sweep import driver, rate

QUICK_SEEDS = range(1, 3)
FULL_SEEDS = rate.SEEDS
TARGET = ">= 10"


def bench_sweep(quick: bool) -> tuple[list[Figure], dict]:
    seeds = QUICK_SEEDS if quick else FULL_SEEDS
    processes = min(driver.default_jobs(), len(seeds))
    log(f"sweep: seeds {seeds.start}-{seeds.stop - 1} against every strategy on {processes} process(es)")
    r = rate.measure(seeds, processes=processes)
    figure = Figure(
        name="seed sweep: seeds per second, virtual vs wall engine",
        value=r.seeds_per_s,
        floor=r.wall_engine_seeds_per_s,
        unit="seeds/s",
        target=TARGET,
        note=r.note(),
    )
    return [figure], {
        "seeds": r.seeds,
        "runs": r.runs,
        "processes": r.processes,
        "wall_s": r.wall_s,
        "wall_engine_s": r.wall_engine_s,
        "invalid": r.invalid,
    }
