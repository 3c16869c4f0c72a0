"""A seed's random fault schedule: seed -> a chaos Scenario, drawn within the bounds below.

Pure: every draw comes from one stream of node.sim.rng's tree for the seed ("sweep/schedule"), so
a seed gives the same scenario on every machine and in every process, whatever else runs (no hash
order, no clock). The scenario passes scenario.parse's validation (tests/unit/test_sweep.py parses
thousands), so a shrunk failure written as TOML (tomlfile) loads as any scripted scenario does.

Bounds (times in scenario seconds, the wall engine's; the virtual runner divides them by
TIME_SCALE, docs/engine.md), each drawn uniformly unless said otherwise:
- cluster: 2-8 CPUs; 0 to cpus-1 of them isolated (at least one stays housekeeping, as
  scenario.parse requires), each isolated CPU RT with probability 1/2; zone 64, 128 or 256 MiB,
  0-50 % of it used by others (steps of 5 %);
- timeouts (ms): remote lock lease 100-1,000; failure (down) 200-1,500; dead 300-3,000 beyond the
  failure timeout; workqueue flush 500-3,000;
- workload: a drain every 50-300 ms, forced on every CPU with probability 1/4, and with probability
  1/4 a CMA range of 1-8 pageblocks taken at an instant of the fault window;
- the fault window (faults start and heal in it) 2-6 s, then a healing phase of 2.5-4 s;
- 1-6 faults, each of a kind drawn uniformly from the nemesis's (scenario.KINDS, all of which
  run under virtual time), on a CPU drawn uniformly (every CPU, housekeeping or isolated, and
  the coordinator for the coordinator's kinds), starting at any millisecond of the window, lasting
  log-uniformly from 50 ms to the rest of the window (as many brief faults as long ones), and free
  to overlap each other, except two on one slot (scenario.slot: the coordinator's process, a CPU's
  process or its cost factor), which no nemesis can run at once: such a fault is drawn again;
- rpc: side node or coordinator, direction in or out, a method glob of those the side serves or
  sends (RPC_METHODS), the coordinator's rules scoped to one peer CPU with probability 1/2; each of
  delay (1-200 ms, log-uniform), drop, fail and (direction in) drop_reply with probability 1/2,
  at least one; probabilities 0.05-1 in steps of 0.05;
- slow-cpu: a cost factor of 2-50 (log-uniform, whole numbers);
- second-coordinator: the first resumed after 5-95 % of the fault's length.
"""

import math
from dataclasses import replace
from typing import Any

from coordinator.tools.chaos import scenario as sc
from node.sim.rng import RngTree

CPUS = (2, 8)
ZONE_MB = (64, 128, 256)
ZONE_USED_MAX = 0.5
LEASE_MS = (100, 1000)
FAILURE_MS = (200, 1500)
DEAD_BEYOND_FAILURE_MS = (300, 3000)
FLUSH_MS = (500, 3000)
DRAIN_INTERVAL_MS = (50, 300)
CMA_PAGEBLOCKS = (1, 8)
WINDOW_S = (2.0, 6.0)
HEAL_S = (2.5, 4.0)
FAULTS = (1, 6)
MIN_FAULT_S = 0.05  # scenario.parse's least heal_after_s
DELAY_MS = (1, 200)
SLOW_FACTOR = (2, 50)
REDRAWS = 10  # draws of a fault that meets an earlier one on its slot before it is left out
# What each side serves ("in") or sends ("out"): coordinator.tools.chaos.nemesis's rules match these
# names, the control stream's operations as PcpControl.<op>, the zone stream's as ZoneStream.<op>.
_CONTROL = tuple(f"PcpControl.{op}" for op in ("*", "lock_drain", "unlock", "rcu_swap", "rcu_release"))
_TO_COORDINATOR = ("Register", "Heartbeat", "ZoneStream.*", "ZoneStream.rmqueue", "ZoneStream.free", "*")
RPC_METHODS = {
    ("coordinator", "in"): _TO_COORDINATOR,
    ("coordinator", "out"): (*_CONTROL, "QueueWork", "FlushWork", "*"),
    ("node", "in"): (*_CONTROL, "QueueWork", "FlushWork", "*Work", "*"),
    ("node", "out"): _TO_COORDINATOR,
}
# Every kind the nemesis has, in scenario.KINDS' order: all of them run under virtual time
# (coordinator.tools.chaos.virtual_nemesis, second-coordinator included).
KINDS = tuple(sc.KINDS)


def generate(seed: int, strategies: tuple = sc.STRATEGIES, kinds: tuple = KINDS) -> sc.Scenario:
    """The scenario of `seed`, to run against `strategies` (its `seed` is the run's seed too)."""
    rng = RngTree(seed).stream("sweep/schedule")
    cpus = rng.randint(*CPUS)
    isolated = sorted(rng.sample(range(cpus), rng.randint(0, cpus - 1)))
    failure = rng.randint(*FAILURE_MS)
    cluster = sc.ClusterSpec(
        cpus=cpus,
        isolated=tuple(isolated),
        rt=tuple(c for c in isolated if rng.random() < 0.5),
        zone_mb=rng.choice(ZONE_MB),
        zone_used=round(rng.randint(0, int(ZONE_USED_MAX * 20)) * 0.05, 2),
        lease_ms=rng.randint(*LEASE_MS),
        failure_timeout_ms=failure,
        dead_timeout_ms=failure + rng.randint(*DEAD_BEYOND_FAILURE_MS),
        flush_timeout_ms=rng.randint(*FLUSH_MS),
    )
    heal = _ms(rng.uniform(*HEAL_S))
    duration = _ms(rng.uniform(*WINDOW_S) + heal)
    window = duration - heal  # as scenario.parse computes it: faults must heal by then
    cma = rng.randint(*CMA_PAGEBLOCKS) * sc.PAGEBLOCK_PAGES if rng.random() < 0.25 else 0
    workload = sc.WorkloadSpec(
        drain_interval_ms=rng.randint(*DRAIN_INTERVAL_MS),
        force_all_cpus=rng.random() < 0.25,
        cma_pages=cma,
        cma_at_s=min(window, _ms(rng.uniform(0.0, window))) if cma else sc.WorkloadSpec.cma_at_s,
    )
    faults = _faults(rng, kinds, cpus, window)
    return sc.Scenario(
        name=f"sweep-{seed}",
        path=f"<sweep seed {seed}>",
        description=f"seed {seed} of pcpsim chaos sweep",
        seed=seed,
        duration_s=duration,
        heal_s=heal,
        strategies=tuple(strategies),
        cluster=cluster,
        workload=workload,
        faults=faults,
    )


def with_unsafe(scenario: sc.Scenario, switches: tuple) -> sc.Scenario:
    """`scenario` with the cluster's test-only switches (ClusterSpec.unsafe_* names) on."""
    on: dict[str, Any] = dict.fromkeys(switches, True)
    return replace(scenario, cluster=replace(scenario.cluster, **on))


def _faults(rng, kinds: tuple, cpus: int, window: float) -> tuple:
    """1-6 faults; one that meets an earlier fault on the same slot (scenario.slot: the coordinator's
    process, a CPU's process or its cost factor, which the nemesis holds for one fault at a time) is
    drawn again, at most REDRAWS times, then left out."""
    faults: list[sc.Fault] = []
    for _ in range(rng.randint(*FAULTS)):
        for _ in range(REDRAWS):
            f = _fault(rng, rng.choice(kinds), cpus, window)
            if not sc.overlapping((*faults, f)):
                faults.append(f)
                break
    return tuple(faults)


def _fault(rng, kind: str, cpus: int, window: float) -> sc.Fault:
    at = _ms(rng.uniform(0.0, window - 2 * MIN_FAULT_S))
    length = fit(at, _ms(_log_uniform(rng, MIN_FAULT_S, window - at)), window)
    kw: dict = {}
    if sc.KINDS[kind][0]:
        kw["cpu"] = rng.randrange(cpus)
    if kind == "rpc":
        side, direction = rng.choice(sc.SIDES), rng.choice(sc.DIRECTIONS)
        kw |= {"side": side, "direction": direction, "method": rng.choice(RPC_METHODS[side, direction])}
        if side == "node" or rng.random() < 0.5:
            kw["cpu"] = rng.randrange(cpus)
        effects = ["delay_ms", "drop", "fail"] + (["drop_reply"] if direction == "in" else [])
        chosen = [e for e in effects if rng.random() < 0.5] or [rng.choice(effects)]
        for effect in chosen:
            if effect == "delay_ms":
                kw[effect] = round(_log_uniform(rng, *DELAY_MS))
            else:
                kw[effect] = round(rng.randint(1, 20) * 0.05, 2)
    elif kind == "slow-cpu":
        kw["factor"] = float(round(_log_uniform(rng, *SLOW_FACTOR)))
    elif kind == "second-coordinator":
        length = max(length, fit(at, 2 * MIN_FAULT_S, window))  # room to resume the first within it
        kw["resume_after_s"] = min(_ms(length - 0.001), max(MIN_FAULT_S, _ms(length * rng.uniform(0.05, 0.95))))
    return sc.Fault(kind=kind, at_s=at, heal_after_s=length, **kw)


def fit(at: float, length: float, last: float) -> float:
    """`length` (whole ms) cut, a millisecond at a time, until the fault heals by `last` as
    scenario.parse adds it up (floats: at + length may round past last where whole numbers would not)."""
    while at + length > last:
        length = _ms(length - 0.001)
    return length


def _log_uniform(rng, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(max(lo, hi))))


def _ms(seconds: float) -> float:
    """Whole milliseconds: a scenario file reads as written, and a shrink step has a grain."""
    return round(seconds, 3)
