"""`pcpsim compare --engine virtual`: every phase of compare under virtual time, in compare's results file.

Runs config.phases (noise_floor, then each strategy) with coordinator.tools.virtual_phase, each on a
fresh WholeCluster from the same seed (the same workload, as the wall compare's fresh clusters), and
assembles them with compare's own code (coordinator.tools.compare_results.results): the same file,
with `time_scale` 1.0 (every time in it is kernel time), `engine` "virtual", `noise` (the host-noise
model's name, node.sim.noise: COMPARE_DEFAULT, "quiet", unless the caller names another) and `events` (how many events
each phase ran). Nothing of the host reaches it: no run directory, date or duration, so one
seed gives the same bytes on every run.

The event log `--check-determinism` compares is one text across the phases: for each, a line naming
it, then its CPUs' log and summary and its drain driver's trace (virtual_phase.PhaseRun.event_log).
"""

from dataclasses import dataclass

from coordinator.tools import compare_results, determinism
from coordinator.tools.compare_plan import CompareConfig
from coordinator.tools.virtual_phase import options, run_phase
from node.sim import noise as noise_models

ENGINE = "virtual"


@dataclass(frozen=True)
class VirtualCompare:
    results: dict
    events: str  # the event log across the phases; "" unless kept

    def outcome(self) -> determinism.Outcome:
        """What determinism.check compares: the results file's exact text and the event log."""
        return determinism.Outcome(compare_results.results_json(self.results), self.events)


def run_virtual_compare(
    config: CompareConfig, keep_log: bool = False, noise: str = noise_models.COMPARE_DEFAULT
) -> VirtualCompare:
    """Every phase of `config` under virtual time, with the host-noise model `noise`
    (node.sim.noise.NOISE); an option it cannot honour, or a file it cannot read, raises ValueError
    first."""
    costs = options(config, noise).cost
    phases: dict[str, dict] = {}
    events: dict[str, int] = {}
    logs = []
    for name in config.phases:
        run = run_phase(name, config, keep_log, noise)
        phases[name] = run.figures
        events[name] = run.cluster.queue.executed
        if keep_log:
            logs.append(f"phase {name}\n{run.event_log()}")
    results = {
        **compare_results.results(config, phases, costs),
        "engine": ENGINE,
        "noise": noise,
        "events": events,
    }
    return VirtualCompare(results, "".join(logs))


def check_determinism(config: CompareConfig, noise: str = noise_models.COMPARE_DEFAULT) -> determinism.Report:
    """The whole virtual compare twice in this process, its results and event logs compared."""
    return determinism.check(lambda: run_virtual_compare(config, keep_log=True, noise=noise).outcome())
