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
- the fault window (faults start and heal in it) 2-6 s, and at least WINDOW_PER_DEAD dead timeouts
  (time to be declared dead, then rejoin), then a healing phase of 2.5-4 s;
- the seed's kinds (swarm testing, Groce et al., "Swarm Testing", ISSTA 2012): each kind of the
  nemesis's (scenario.KINDS, all of which run under virtual time) with probability 1/2, at least
  one. Faults interfere: a coordinator restart stops the drains whose lost commit would show a
  bug, a partition hides the lost Register reply another needs. A seed that leaves kinds out
  reaches what their mix masks, and over many seeds every mix is still drawn. A focused sweep
  (`kinds` given, --faults) draws from its kinds as given: its user chose the mix;
- 1-6 faults, each of a kind drawn uniformly from the seed's kinds, on a CPU drawn uniformly
  (every CPU, housekeeping or isolated, and the coordinator for the coordinator's kinds),
  starting, with probability 1/2, the instant an earlier fault starts or heals, else at any
  millisecond of the window. Faults come together (a restart on a flaky network), and recovery
  runs just after a heal: a rejoining node's Register, a new coordinator's claims. A fault drawn
  at any instant rarely covers those few milliseconds. Each fault lasts, with probability
  NEAR_P, one of the cluster's timeouts (lease, failure, dead, flush, drawn uniformly) times
  NEAR_FACTOR: boundary values, since a timeout is where the protocol changes course (a node
  stopped just past the dead timeout is declared dead and rejoins, one stopped just short of it
  is only late); else log-uniformly from 50 ms to the rest of the window (as many brief faults
  as long ones); cut to heal by the window's end. Faults are free to overlap the
  others, except two on one slot (scenario.slot: the coordinator's process, a CPU's
  process or its cost factor), which no nemesis can run at once: such a fault is drawn again;
- rpc: side node or coordinator, direction in or out, a method glob of those the side serves or
  sends (RPC_METHODS), the coordinator's rules scoped to one peer CPU with probability 1/2; one
  way to lose a message drawn uniformly from drop, fail, (direction in) drop_reply and none
  (LOSSES' "delay"; a focused sweep draws from the losses it names), as
  two in one rule mask each other (a message dropped is never failed, nor its reply lost); the
  loss certain (probability 1: the messages are cut, as by a broken stream) with probability
  1/2, else 0.05-0.95 in steps of 0.05, since the protocol asks again whatever it loses, so a
  lossy rule is mostly retried through and the bugs of a lost answer show when every attempt
  for a while is lost; a delay (1-200 ms, log-uniform) with probability 1/2, always without a
  loss;
- slow-cpu: a cost factor of 2-50 (log-uniform, whole numbers);
- second-coordinator: the first resumed after 5-95 % of the fault's length.
"""

import fnmatch
from dataclasses import replace
from typing import Any

from coordinator.tools.chaos import scenario as sc
from node.sim import ieee
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
WINDOW_PER_DEAD = 1.5  # the window lasts at least this many dead timeouts: time to be declared dead, then rejoin
FAULTS = (1, 6)
MIN_FAULT_S = 0.05  # scenario.parse's least heal_after_s
DELAY_MS = (1, 200)
SLOW_FACTOR = (2, 50)
KIND_P = 0.5  # the probability a kind is among a seed's (swarm testing)
CUT_P = 0.5  # the probability an rpc effect is certain (probability 1)
TOGETHER_P = 0.5  # the probability a fault starts when an earlier one starts or heals
NEAR_P = 0.5  # the probability a fault lasts about one of the cluster's timeouts
NEAR_FACTOR = (0.8, 1.5)  # how near: that timeout times a factor drawn uniformly from this range
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
# Every message an rpc rule can aim at (`pcpsim chaos sweep --rpc-methods` names some of them).
MESSAGES = (
    "Register",
    "Heartbeat",
    "ZoneStream.rmqueue",
    "ZoneStream.free",
    *(f"PcpControl.{op}" for op in ("lock_drain", "unlock", "rcu_swap", "rcu_release", "abandon")),
    "QueueWork",
    "FlushWork",
)
# The ways an rpc rule can lose what it matches, one per rule (`--rpc-losses` names some of them):
# each the Fault field it sets, "delay" none (a delayed message is not lost).
LOSS_FIELDS = {"drop": "drop", "fail": "fail", "drop_reply": "drop_reply", "delay": None}
LOSSES = tuple(LOSS_FIELDS)
# Every kind the nemesis has, in scenario.KINDS' order: all of them run under virtual time
# (coordinator.tools.chaos.virtual_nemesis, second-coordinator included).
KINDS = tuple(sc.KINDS)


def generate(
    seed: int, strategies: tuple = sc.STRATEGIES, kinds: tuple = KINDS, messages: tuple = (), losses: tuple = ()
) -> sc.Scenario:
    """The scenario of `seed`, to run against `strategies` (its `seed` is the run's seed too), its
    faults of `kinds` only, its rpc rules aimed at `messages` only (MESSAGES' names; () for all),
    losing them by `losses` only (LOSSES' names; () for all): a focused sweep, as Jepsen's --nemesis
    picks the faults of a test."""
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
    duration = _ms(max(rng.uniform(*WINDOW_S), WINDOW_PER_DEAD * cluster.dead_timeout_ms / 1000) + heal)
    window = duration - heal  # as scenario.parse computes it: faults must heal by then
    cma = rng.randint(*CMA_PAGEBLOCKS) * sc.PAGEBLOCK_PAGES if rng.random() < 0.25 else 0
    workload = sc.WorkloadSpec(
        drain_interval_ms=rng.randint(*DRAIN_INTERVAL_MS),
        force_all_cpus=rng.random() < 0.25,
        cma_pages=cma,
        cma_at_s=min(window, _ms(rng.uniform(0.0, window))) if cma else sc.WorkloadSpec.cma_at_s,
    )
    timeouts = (cluster.lease_ms, cluster.failure_timeout_ms, cluster.dead_timeout_ms, cluster.flush_timeout_ms)
    drawn = swarm(rng, kinds) if kinds == KINDS else kinds
    faults = _faults(rng, drawn, cpus, window, (messages, losses), timeouts)
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


def swarm(rng, kinds: tuple) -> tuple:
    """The seed's kinds: each of `kinds` with probability KIND_P, at least one."""
    chosen = tuple(k for k in kinds if rng.random() < KIND_P)
    return chosen or (rng.choice(kinds),)


def _faults(rng, kinds: tuple, cpus: int, window: float, aim: tuple, timeouts: tuple) -> tuple:
    """1-6 faults; one that meets an earlier fault on the same slot (scenario.slot: the coordinator's
    process, a CPU's process or its cost factor, which the nemesis holds for one fault at a time) is
    drawn again, at most REDRAWS times, then left out."""
    faults: list[sc.Fault] = []
    for _ in range(rng.randint(*FAULTS)):
        for _ in range(REDRAWS):
            at = _start(rng, faults, window)
            f = _fault(rng, rng.choice(kinds), cpus, window, at, _length(rng, at, window, timeouts), aim)
            if not sc.overlapping((*faults, f)):
                faults.append(f)
                break
    return tuple(faults)


def _start(rng, earlier: list, window: float) -> float:
    """A fault's start: with probability TOGETHER_P (and an earlier fault) the instant an earlier
    one starts or heals, else any millisecond of the window; never so late that it cannot last."""
    latest = window - 2 * MIN_FAULT_S
    if earlier and rng.random() < TOGETHER_P:
        f = rng.choice(earlier)
        return _ms(min(latest, rng.choice((f.at_s, f.heal_at_s))))
    return _ms(rng.uniform(0.0, latest))


def _length(rng, at: float, window: float, timeouts: tuple) -> float:
    """A fault's length: with probability NEAR_P about one of the cluster's `timeouts` (ms, drawn
    uniformly: lease, failure, dead, flush), else log-uniformly from MIN_FAULT_S to the rest of the
    window; cut to heal by the window's end."""
    if rng.random() < NEAR_P:
        length = rng.choice(timeouts) / 1000 * rng.uniform(*NEAR_FACTOR)
    else:
        length = _log_uniform(rng, MIN_FAULT_S, window - at)
    return fit(at, max(MIN_FAULT_S, _ms(length)), window)


def _fault(rng, kind: str, cpus: int, window: float, at: float, length: float, aim: tuple) -> sc.Fault:
    """A fault of `kind` from `at` for `length`; an rpc rule aimed (`aim`: messages, losses) as
    generate's focus says."""
    kw: dict = {}
    if sc.KINDS[kind][0]:
        kw["cpu"] = rng.randrange(cpus)
    if kind == "rpc":
        messages, losses = aim
        if messages or losses:
            side, direction = rng.choice([end for end in RPC_METHODS if aims(end, messages, losses)])
        else:
            side, direction = rng.choice(sc.SIDES), rng.choice(sc.DIRECTIONS)
        kw |= {"side": side, "direction": direction, "method": rng.choice(aimed((side, direction), messages))}
        if side == "node" or rng.random() < 0.5:
            kw["cpu"] = rng.randrange(cpus)
        loss = LOSS_FIELDS[rng.choice(ways((side, direction), losses))]
        if loss is not None:
            kw[loss] = 1.0 if rng.random() < CUT_P else round(rng.randint(1, 19) * 0.05, 2)
        if loss is None or rng.random() < 0.5:
            kw["delay_ms"] = round(_log_uniform(rng, *DELAY_MS))
    elif kind == "slow-cpu":
        kw["factor"] = float(round(_log_uniform(rng, *SLOW_FACTOR)))
    elif kind == "second-coordinator":
        length = max(length, fit(at, 2 * MIN_FAULT_S, window))  # room to resume the first within it
        kw["resume_after_s"] = min(_ms(length - 0.001), max(MIN_FAULT_S, _ms(length * rng.uniform(0.05, 0.95))))
    return sc.Fault(kind=kind, at_s=at, heal_after_s=length, **kw)


def aims(end: tuple[str, str], messages: tuple, losses: tuple) -> bool:
    """Whether a rule at `end` (side, direction) can aim at one of `messages` by one of `losses`."""
    return bool(aimed(end, messages) and ways(end, losses))


def ways(end: tuple[str, str], losses: tuple) -> tuple:
    """The LOSSES an rpc rule at `end` (side, direction) can draw of `losses` (all for ()): drop_reply
    only on a message coming in, whose reply can then be lost on its way back."""
    possible = tuple(w for w in LOSSES if end[1] == "in" or w != "drop_reply")
    return tuple(w for w in possible if w in losses) if losses else possible


def aimed(end: tuple[str, str], messages: tuple) -> tuple:
    """The method globs of one end (side, direction) that match one of `messages` it carries (all
    for ()): a node's "*" matches the name Register, and loses none, since no node is sent one."""
    globs = RPC_METHODS[end]
    mine = [m for m in messages if m in carries(end)]
    return tuple(g for g in globs if any(fnmatch.fnmatchcase(m, g) for m in mine)) if messages else globs


def carries(end: tuple[str, str]) -> tuple:
    """The MESSAGES that pass one end (side, direction): those its globs other than "*" match."""
    return tuple(m for m in MESSAGES if any(fnmatch.fnmatchcase(m, g) for g in RPC_METHODS[end] if g != "*"))


def fit(at: float, length: float, last: float) -> float:
    """`length` (whole ms) cut, a millisecond at a time, until the fault heals by `last` as
    scenario.parse adds it up (floats: at + length may round past last where whole numbers would not)."""
    while at + length > last:
        length = _ms(length - 0.001)
    return length


def _log_uniform(rng, lo: float, hi: float) -> float:
    # node.sim.ieee's, not the C library's: a sweep seed draws the same scenario on every machine.
    return ieee.exp(rng.uniform(ieee.log(lo), ieee.log(max(lo, hi))))


def _ms(seconds: float) -> float:
    """Whole milliseconds: a scenario file reads as written, and a shrink step has a grain."""
    return round(seconds, 3)
