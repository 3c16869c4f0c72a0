"""Seeds per second: how fast a sweep goes, as a figure `pcpsim bench` can show.

`measure` sweeps a fixed set of seeds (the same schedules on every machine) against every strategy
and times it on the wall clock. Its floor is the wall engine doing the same: each run as a wall
chaos run of the same scenario, by the wall runner's own estimate (runner.estimate_s: the scenario's
duration plus the cluster's start, settling and final observations), one run at a time as `chaos
run` goes; so the ratio is how many wall-engine seeds one virtual-engine second is worth.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.tools.chaos import runner as wall_runner
from coordinator.tools.chaos import scenario as sc
from coordinator.tools.chaos.sweep import driver

SEEDS = range(1, 9)  # the bench's: a few seconds of the machine per strategy


@dataclass(frozen=True)
class Rate:
    seeds: int
    runs: int
    processes: int
    wall_s: float  # the sweep, on the wall clock
    wall_engine_s: float  # the same runs as wall chaos runs, by the wall runner's estimate
    invalid: int  # runs not valid (a figure is no less a figure for them; the sweep's summary says why)

    @property
    def seeds_per_s(self) -> float:
        return self.seeds / self.wall_s

    @property
    def wall_engine_seeds_per_s(self) -> float:
        return self.seeds / self.wall_engine_s

    def note(self) -> str:
        return (
            f"{self.seeds} seeds x {self.runs // self.seeds} strategies = {self.runs} runs in {self.wall_s:.1f} s "
            f"on {self.processes} process(es), {self.invalid} not valid; floor: the same runs as wall chaos runs "
            f"one at a time ({self.wall_engine_s:.0f} s by runner.estimate_s)"
        )


def measure(
    seeds: Sequence[int] = SEEDS,
    strategies: tuple = sc.STRATEGIES,
    processes: int = 1,
    runner: driver.Runner = driver.virtual,
) -> Rate:
    plan = driver.Plan(strategies=strategies, runner=runner)
    workers = driver.Workers(processes)
    t0 = time.monotonic()
    try:
        outcomes = [o for per_seed in workers.map(driver.run_seed, ((plan, s) for s in seeds)) for o in per_seed]
    finally:
        workers.close()
    wall_s = time.monotonic() - t0
    wall_engine_s = sum(wall_runner.estimate_s(plan.scenario(s)) * len(strategies) for s in seeds)
    return Rate(
        seeds=len(seeds),
        runs=len(outcomes),
        processes=processes,
        wall_s=wall_s,
        wall_engine_s=wall_engine_s,
        invalid=sum(o.verdict != "valid" for o in outcomes),
    )
