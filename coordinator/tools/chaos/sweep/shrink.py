"""Shrinking a failing scenario: the smallest schedule this finds that still fails.

Pure over a predicate `fails(scenario) -> bool` (the sweep's: a virtual run of the failing strategy
ends with the same first violation). Steps, in order, each keeping only candidates that still fail
and that scenario.parse accepts:
1. fewest faults: delta debugging (Zeller and Hildebrandt, "Simplifying and Isolating
   Failure-Inducing Input", 2002: ddmin) over the fault list, which ends 1-minimal: removing any
   one remaining fault makes the run pass;
2. fewest CPUs: each CPU removed, highest first, the CPUs above it renumbered down (faults' cpu,
   isolated, rt), a CPU that faults name with its faults moved onto another CPU (the lowest that
   still fails); scenario.parse keeps one housekeeping CPU and two CPUs in all. Second, because a
   run's cost grows with its CPUs and the bisections of steps 3 and 4 take most of the runs: the
   register-once hunt's shrink ran 26 of them on 5 CPUs at ~4.5 s each when this step came last;
3. earliest: the whole schedule (every fault and the CMA range's instant) moved earlier together,
   by the most a bisection finds, which keeps faults that must meet together; then each fault's
   start moved to 0, else to the earliest millisecond a bisection between 0 and its start finds;
4. shortest: each fault's length cut the same way, down to scenario.parse's 50 ms, and then the
   run's fault window cut to end at the last heal.
The four are repeated until a round changes nothing, for at most `max_rounds` (4) rounds. Then,
once (with margins, as a sweep shrinks):
5. margins: each fault's end, then its start (unless at 0), moved to the middle of the instants
   within MARGIN_MS past it at which the run still fails (the window lengthened where an end
   passes it). The rounds leave every instant at the last millisecond that fails: a rule that outlasts
   a stop by 1 ms, which virtual time hits exactly and real processes' timing (a rejoin after
   SIGCONT takes a heartbeat's round trip) does not follow. From the middle, the failure holds
   with the instants it needs up to half the range's width either way, so the file replays
   under the wall engine where that engine can make the failure at all.
Deterministic: the same scenario and predicate give the same result (candidates are tried in a
fixed order, times on a 1 ms grid, margins on a MARGIN_GRAIN_MS one).
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

from coordinator.tools.chaos import scenario as sc
from coordinator.tools.chaos.sweep import tomlfile

MIN_FAULT_S = 0.05  # scenario.parse's least heal_after_s
MIN_CPUS = 2  # scenario.parse's least cluster.cpus
GRAIN_MS = 1
MARGIN_MS = 400  # how far past the rounds' instant step 5 looks (scenario ms: wall time)
MARGIN_GRAIN_MS = 10


@dataclass
class Shrunk:
    scenario: sc.Scenario
    runs: int  # predicate calls


def shrink(
    scenario: sc.Scenario, fails: Callable[[sc.Scenario], bool], max_rounds: int = 4, margins: bool = False
) -> Shrunk:
    """The smallest failing scenario found from `scenario`, which must fail; with `margins`, its
    instants then moved away from the edges of failing (step 5)."""
    probe = _Probe(fails)
    current = scenario
    for _ in range(max_rounds):
        before = current
        current = _fewest_faults(current, probe)
        current = _fewest_cpus(current, probe)
        current = _earliest(current, probe)
        current = _shortest(current, probe)
        if current == before:
            break
    if margins:
        current = _margins(current, probe)
    return Shrunk(current, probe.runs)


class _Probe:
    """The predicate on valid candidates only, each distinct candidate run once."""

    def __init__(self, fails: Callable[[sc.Scenario], bool]) -> None:
        self.fails = fails
        self.runs = 0
        self._seen: dict[sc.Scenario, bool] = {}

    def __call__(self, candidate: sc.Scenario) -> bool:
        if candidate not in self._seen:
            try:
                sc.parse(tomlfile.to_doc(candidate))
            except sc.ScenarioError:
                self._seen[candidate] = False
            else:
                self.runs += 1
                self._seen[candidate] = self.fails(candidate)
        return self._seen[candidate]


def _fewest_faults(s: sc.Scenario, fails: _Probe) -> sc.Scenario:
    """ddmin: try each of n chunks alone, then each complement; refine n until it is one per fault."""

    def test(faults: list) -> bool:
        return fails(replace(s, faults=tuple(faults)))

    faults, n = list(s.faults), 2
    while len(faults) >= 2:
        chunks = _split(faults, n)
        complements = [[f for j, c in enumerate(chunks) if j != i for f in c] for i in range(len(chunks))]
        if found := next((c for c in chunks if test(c)), None):
            faults, n = found, 2
        elif found := next((c for c in complements if test(c)), None):
            faults, n = found, max(n - 1, 2)
        elif n < len(faults):
            n = min(2 * n, len(faults))
        else:
            break
    if len(faults) == 1 and test([]):
        faults = []
    return replace(s, faults=tuple(faults))


def _split(items: list, n: int) -> list[list]:
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return [c for c in out if c]


def _earliest(s: sc.Scenario, fails: _Probe) -> sc.Scenario:
    s = _schedule_earlier(s, fails)
    for i in range(len(s.faults)):
        s = _least_field(s, i, "at_s", 0, fails)
    return s


def _schedule_earlier(s: sc.Scenario, fails: _Probe) -> sc.Scenario:
    """`s` with every fault's start and the CMA range's instant moved earlier by one amount: the
    most (its first instant at the least millisecond) that still fails. Moving one fault at a time
    cannot take two that must overlap far: each move is bounded by the other's place."""
    cma = s.workload.cma_pages > 0
    starts = [_ms(f.at_s) for f in s.faults] + ([_ms(s.workload.cma_at_s)] if cma else [])
    if not starts:
        return s
    first = min(starts)

    def at(ms: int) -> sc.Scenario:
        by = first - ms
        faults = tuple(replace(f, at_s=(_ms(f.at_s) - by) / 1000) for f in s.faults)
        workload = replace(s.workload, cma_at_s=(_ms(s.workload.cma_at_s) - by) / 1000) if cma else s.workload
        return replace(s, faults=faults, workload=workload)

    return at(_least_ms(first, 0, lambda ms: fails(at(ms))))


def _shortest(s: sc.Scenario, fails: _Probe) -> sc.Scenario:
    for i, f in enumerate(s.faults):
        lo = _ms(f.resume_after_s) + GRAIN_MS if f.kind == "second-coordinator" else 0
        s = _least_field(s, i, "heal_after_s", max(_ms(MIN_FAULT_S), lo), fails)
    last_heal = max([f.heal_at_s for f in s.faults] + [s.workload.cma_at_s if s.workload.cma_pages else 0.0])
    window_ms = _ms(s.duration_s - s.heal_s)
    best = _least_ms(window_ms, max(_ms(last_heal), GRAIN_MS), lambda ms: fails(_with_window(s, ms)))
    return _with_window(s, best)


def _margins(s: sc.Scenario, fails: _Probe) -> sc.Scenario:
    """Each edge centred once. An edge held by another fault's (a stop's end by the end of the rule
    that must outlast it) cannot move until that one has: the edges that did not move are tried
    again after a pass that moved some, until a pass moves none."""
    pending = [(i, edge) for i in range(len(s.faults)) for edge in ("end", "start")]
    while pending:
        held = []
        for i, edge in pending:
            moved = _centred(s, i, edge, fails)
            if moved == s:
                held.append((i, edge))
            s = moved
        if held == pending:
            break
        pending = held
    return s


def _centred(s: sc.Scenario, i: int, edge: str, fails: _Probe) -> sc.Scenario:
    """`s` with fault i's `edge` (its end, or its start with its end kept) at the middle of the
    instants in [now, now + MARGIN_MS] that still fail, found by bisection (failing taken as
    holding from now up to some instant, as the rounds leave it at the near end)."""
    fault = s.faults[i]
    start, end = _ms(fault.at_s), _ms(fault.heal_at_s)
    now = end if edge == "end" else start

    def at(ms: int) -> sc.Scenario:
        moved = (
            replace(fault, heal_after_s=(ms - start) / 1000)
            if edge == "end"
            else replace(fault, at_s=ms / 1000, heal_after_s=(end - ms) / 1000)
        )
        candidate = replace(s, faults=(*s.faults[:i], moved, *s.faults[i + 1 :]))
        window = _ms(s.duration_s - s.heal_s)
        return candidate if ms < window else _with_window(candidate, ms + GRAIN_MS)

    last = now + MARGIN_MS if edge == "end" else min(now + MARGIN_MS, end - _ms(MIN_FAULT_S))
    if last <= now or (edge == "start" and now == 0):  # at 0 by the rounds: no instant before it to keep away from
        return s
    if fails(at(last)):
        most = last
    else:
        good, bad = now, last
        while bad - good > MARGIN_GRAIN_MS:
            mid = good + (bad - good) // 2
            good, bad = (mid, bad) if fails(at(mid)) else (good, mid)
        most = good
    middle = now + (most - now) // 2
    return at(middle) if middle > now and fails(at(middle)) else s


def _least_field(s: sc.Scenario, i: int, name: str, lo_ms: int, fails: _Probe) -> sc.Scenario:
    """`s` with fault i's time field `name` at the least millisecond value that still fails."""
    fault = s.faults[i]

    def at(ms: int) -> sc.Scenario:
        return replace(s, faults=(*s.faults[:i], replace(fault, **{name: ms / 1000}), *s.faults[i + 1 :]))

    return at(_least_ms(_ms(getattr(fault, name)), lo_ms, lambda ms: fails(at(ms))))


def _least_ms(current: int, lo: int, ok: Callable[[int], bool]) -> int:
    """The least whole-millisecond value in [lo, current] that `ok` accepts by bisection (current
    when none below it is; `ok(current)` is taken as true): lo itself first, as it often works; then
    one grain below current, as a later round finds most values where the last one left them (the
    register-once hunt's third round bisected 24 times and moved nothing)."""
    if current <= lo:
        return current
    if ok(lo):
        return lo
    if current - GRAIN_MS <= lo or not ok(current - GRAIN_MS):
        return current
    bad, good = lo, current - GRAIN_MS
    while good - bad > GRAIN_MS:
        mid = (bad + good) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def _fewest_cpus(s: sc.Scenario, fails: _Probe) -> sc.Scenario:
    cpu = s.cluster.cpus - 1
    while cpu >= 0 and s.cluster.cpus > MIN_CPUS:
        named = any(f.cpu == cpu for f in s.faults)
        # A CPU no fault names goes alone; one that faults name goes with its faults moved onto
        # another CPU (the lowest that still fails), as two faults may need only to be on two CPUs.
        for onto in [d for d in range(s.cluster.cpus) if d != cpu] if named else [None]:
            candidate = without_cpu(s, cpu, onto)
            if fails(candidate):
                s = candidate
                break
        cpu -= 1
    return s


def without_cpu(s: sc.Scenario, cpu: int, onto: int | None = None) -> sc.Scenario:
    """`s` with CPU `cpu` gone and the CPUs above it renumbered down by one (its faults, isolated and
    rt lists); the faults that name `cpu` are moved onto CPU `onto` first (then none may)."""

    def down(c: int) -> int:
        if c == cpu:
            assert onto is not None, f"a fault names cpu{cpu}"
            c = onto
        return c - 1 if c > cpu else c

    c = s.cluster
    cluster = replace(
        c,
        cpus=c.cpus - 1,
        isolated=tuple(down(x) for x in c.isolated if x != cpu),
        rt=tuple(down(x) for x in c.rt if x != cpu),
    )
    faults = tuple(f if f.cpu is None else replace(f, cpu=down(f.cpu)) for f in s.faults)
    return replace(s, cluster=cluster, faults=faults)


def _with_window(s: sc.Scenario, window_ms: int) -> sc.Scenario:
    return replace(s, duration_s=round(window_ms / 1000 + s.heal_s, 3))


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
