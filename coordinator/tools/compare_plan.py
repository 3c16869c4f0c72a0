"""What `pcpsim compare` runs, the same under either engine: its configuration (CompareConfig, checked
when made), the strategies and triggers it may compare, the seeded trigger plan every strategy meets,
where each cma or offline event takes its range, and the drain window a phase shows. The wall runner is
coordinator.tools.compare; the virtual one coordinator.tools.virtual_compare.
"""

from collections.abc import Callable
from dataclasses import dataclass

from coordinator.drain.drain_all import unrunnable
from coordinator.drain.record import STRATEGIES, TRIGGER_NAMES
from coordinator.tools.topology import DEFAULT_ROLES
from node.api.v1 import pcpsim_pb2 as pb
from node.api.validate import MAX_EVENT_WINDOW_S
from node.mm import profile as profiles
from node.shared.timebase import TIME_SCALE, load_cost_model
from node.sim.rng import Stream

DEFAULT_STRATEGIES = ("workqueue", "remote")


def default_strategies(kernel: str) -> tuple:
    """workqueue and remote, or workqueue and rcu-swap under a kernel whose pcp no other CPU can lock."""
    return DEFAULT_STRATEGIES if profiles.get(kernel).remote_drain else ("workqueue", "rcu-swap")


QUICK_MEASURE_S = 25.0
FULL_MEASURE_S = 60.0
MAX_MEASURE_S = 86_400  # a day a phase: past it a --measure-s is a typo, a run that would not end


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
        if self.drain_interval_s > self.measure_s:  # its claims would be judged on no drain at all
            raise ValueError(
                f"a drain every {self.drain_interval_s * 1000:g} ms on average schedules none in a "
                f"{self.measure_s:g} s phase: give a shorter --drain-interval-ms or a longer --measure-s"
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
        # Each phase's cluster runs its strategy as its default (qpw remote: its roles include isolated CPUs).
        locking = [s for s in self.strategies if unrunnable(STRATEGIES[s], STRATEGIES[s], profile)]
        if locking:
            raise ValueError(
                f"kernel {self.kernel} guards the pcp with a {profile.pcp_lock} that no other CPU "
                f"can take, so {' and '.join(locking)} cannot run under it: compare workqueue and "
                "rcu-swap under it, or remote and qpw under 6.1/6.2"
            )

    @property
    def phases(self) -> tuple:
        return ("noise_floor", *self.strategies)


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


WINDOW_MARGIN_S = 0.02  # shown either side of the drain: at least one period of a 20 ms latency task


def median_drain(history, cpus: set[int]):
    """The completed drain_all_pages of median duration (the earlier of two equal ones) among those
    that freed pages from one of `cpus` (the latency CPUs: what the figure is about; a CPU's lists
    are often empty when a drain comes), or among all completed ones if none did; None if none."""
    done = [d for d in history if d.status == pb.DrainAllReply.DONE]
    done = [d for d in done if any(c.cpu in cpus and c.pages for c in d.cpus)] or done
    done.sort(key=lambda d: (d.duration_s, d.started_at))
    return done[(len(done) - 1) // 2] if done else None


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
