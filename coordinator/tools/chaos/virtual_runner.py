"""One chaos run under virtual time: a scenario against one strategy on a whole virtual cluster
(coordinator.tools.virtual_cluster.WholeCluster, rule-driven membership), checked by the same checker.

It mirrors coordinator.tools.chaos.runner step by step, in one process, at exact virtual instants:
the workload's schedule and history entries (coordinator.tools.chaos.workload's functions: one drain
at a time, each a DrainAllPages request from the workload's endpoint over the simulated network with
the same deadline), the nemesis (coordinator.tools.chaos.virtual_nemesis, its hooks the cluster's, and
here the history entries and, while the coordinator is stopped mid-drain, the watch of the pcp locks it
held), the healing phase and settling (every CPU a live member), the tasks' progress between the heal
and the end, then the final audit and every CPU's grant records.

Times: the scenario's figures are the wall engine's, and so are the history's: each entry is stamped
with its virtual instant times TIME_SCALE (scenario seconds), so the checker's bounds and slacks read
as they do for a wall run. The control plane's rules keep their wall-engine constants (`Members.scale`).

Transfer logs: the zone's rules (start, cpu_dead, claim, ranges) and each CPU's refills, frees, keeps,
allocations, commits and discards write to in-memory logs (one per process, as the wall run's files) on
the rules' clock, which the checker reads less the history's origin (as it reads a run directory), so
it replays the same events.

The processes' log messages (Python logging, WARNING and above: a failed task step, a refused
recovery claim) go to the run (`logs`, the run directory's `processes.log`, each stamped with its
virtual instant), not to this process's stderr: a wall run keeps them in its processes' logs.

`run` writes nothing when out_dir is None (a seed sweep calls it thousands of times); `execute`
returns the run with its history, transfer logs and event log (determinism checks compare those).
"""

import collections
import logging
from collections.abc import Callable

from coordinator import audit_rule
from coordinator.drain.record import STRATEGIES
from coordinator.drain.virtual import COORDINATOR
from coordinator.tools.chaos import checker
from coordinator.tools.chaos.plan import (
    SETTLE_S,
    TRAP_WAIT_S,
    audited,
    progress_between,
    progress_until,
    scenario_meta,
)
from coordinator.tools.chaos.scenario import Fault, Scenario
from coordinator.tools.chaos.virtual_nemesis import VirtualNemesis
from coordinator.tools.chaos.virtual_records import History, Run, TransferLogs
from coordinator.tools.chaos.virtual_workload import VirtualWorkload, code_of
from coordinator.tools.virtual_cluster import WholeCluster
from coordinator.tools.virtual_coordinator import Members
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu_report import ROLES
from node.shared.timebase import TIME_SCALE
from node.tasks import LatencyTask
from node.virtual.run import Options

SETTLE_POLL_S = 0.1  # the wall runner's poll of the coordinator's state while settling
STARTUP_POLL_S = 0.01  # how often the cluster's start looks whether every CPU has registered
LOCK_POLL_S = 0.01  # the wall nemesis's poll of the pcp locks while the coordinator is stopped
AUDIT_TIMEOUT_S = 60.0  # the wall runner's Audit deadline
_ISOLATED = ("isolated-preemptible", "isolated-rt")


def run(scenario: Scenario, strategy: str, out_dir: str | None = None, seed: int | None = None) -> checker.Verdict:
    """The run's verdict; with out_dir, its run directory too (out_dir/<scenario>-<strategy>)."""
    done = execute(scenario, strategy, seed, keep_log=out_dir is not None)
    if out_dir is not None:
        done.write(out_dir)
    return done.verdict


def execute(scenario: Scenario, strategy: str, seed: int | None = None, keep_log: bool = True) -> Run:
    """One run in this process. `keep_log`: keep every CPU's event log line (else its digest only)."""
    runner = _Runner(scenario, strategy, scenario.seed if seed is None else seed, keep_log)
    capture = _Logs(runner.queue.clock)
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        done = runner.run()
    finally:
        root.removeHandler(capture)
    done.logs = capture.lines
    return done


class _Logs(logging.Handler):
    """The run's log messages, stamped with the virtual instant (with a handler on the root logger,
    logging's last resort, stderr, is not used)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(logging.WARNING)
        self.clock = clock
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{self.clock()!r} {record.levelname} {record.name}: {record.getMessage()}")


class _Runner:
    def __init__(self, scenario: Scenario, strategy: str, seed: int, keep_log: bool) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
        c = scenario.cluster
        self.scenario, self.strategy, self.seed = scenario, strategy, seed
        self.scale = TIME_SCALE
        # second-coordinator: when the first resumes (None until the second started).
        self._first_resumes_at: float | None = None
        # The nemesis's steps not run yet, and whether one is still under way (see _next_step).
        self._steps: collections.deque = collections.deque()
        self._step_busy = False
        members = Members(
            lease_ms=c.lease_ms,
            failure_timeout_ms=c.failure_timeout_ms,
            dead_timeout_ms=c.dead_timeout_ms,
            flush_timeout_ms=c.flush_timeout_ms,
            fencing=not c.unsafe_skip_fencing,
            epochs=not c.unsafe_no_epoch,
            retake=not c.unsafe_forget_ranges,
            declare_dead_on_lost_commit=c.unsafe_declare_dead_on_lost_commit,
            register_once=c.unsafe_register_once,
            scale=self.scale,
        )
        self.roles = scenario.roles()
        # The run's strategy is the coordinator's default (the wall run's --strategy): its CMA take drains with it.
        self.cluster = WholeCluster(
            self.roles,
            seed,
            rcu_swap=strategy == "rcu-swap",
            keep_log=keep_log,
            strategy=STRATEGIES[strategy],
            members=members,
            zone_mb=c.zone_mb,  # the wall runner's --zone-mb and --zone-used
            zone_used=c.zone_used,
            options=Options(kernel=c.kernel, noise=c.noise),
        )
        self.queue = self.cluster.queue
        self.t0 = 0.0  # the virtual instant of the scenario's time 0: once the cluster is up (`_start_up`)
        self.history = History(lambda: (self.queue.clock.now - self.t0) * self.scale)
        self.transfers = TransferLogs(self.cluster.rule_clock)
        self._log_transfers()
        self.cluster.preallocate()  # logged, as the wall coordinator's at its start
        self.bound = checker.drain_bound(
            strategy, c.cpus, c.lease_ms / 1e3, c.dead_timeout_ms / 1e3, c.flush_timeout_ms / 1e3
        )
        frozen = sum(f.heal_after_s for f in scenario.faults if f.kind in checker.COORDINATOR_STOPPED)
        self.deadline_s = self.bound + frozen + checker.MARGIN_S
        self.nemesis = VirtualNemesis(
            scenario,
            self.queue,
            self.cluster.net,
            self.cluster.nodes.rng.subtree("nemesis"),
            self,
            COORDINATOR,
            self.scale,
        )
        self.load = VirtualWorkload(self, scenario, strategy, seed)

    def virtual(self, scenario_s: float) -> float:
        """A span of scenario seconds in virtual seconds."""
        return scenario_s / self.scale

    def at(self, scenario_s: float) -> float:
        """The virtual instant of a scenario's instant."""
        return self.t0 + self.virtual(scenario_s)

    def _start_up(self) -> None:
        """As LocalCluster's start: every CPU registered and the coordinator's recovery over, then the
        scenario's clock starts (the wall runner's history.start_clock)."""
        step = self.virtual(STARTUP_POLL_S)
        while self.cluster.coordinator.recovery.active and self.queue.clock.now < self.virtual(SETTLE_S):
            self.cluster.nodes.run(self.queue.clock.now + step)
        self.t0 = self.nemesis.origin = self.queue.clock.now

    def _log_transfers(self) -> None:
        nodes = self.cluster.nodes
        zone_log = self.transfers.log("transfers-coordinator.jsonl", epoch=self.cluster.coordinator.epoch)
        nodes.zone.rules.transfer_log = zone_log
        zone_log.write("start")  # the zone was built at time 0 (ZoneRules writes it when built with its log)
        for n in range(len(self.roles)):
            sink = self.transfers.log(f"transfers-cpu{n}.jsonl", cpu=n, inc=self.cluster.hosts[n].incarnation)
            self.cluster.hosts[n].transfer_log = sink  # and to the parts of each process it runs

    # ------------------------------------------------------------------ the run
    def run(self) -> Run:
        sc, h = self.scenario, self.history
        self._start_up()
        scenario_meta(h, sc, self.strategy, self.seed, self.bound, engine="virtual")
        # The transfer logs' times are the rules' clock (virtual time x scale): this converts them to the history's.
        h.add("runner", "meta", "clock", monotonic_t0=self.t0 * self.scale)
        self._steps.extend(sc.timeline())
        self._next_step()
        self.load.start()
        self._until(sc.duration_s - sc.heal_s)
        # The wall runner's loop too ends with the last step. Each step is over within its trap wait.
        last = sc.duration_s + TRAP_WAIT_S * len(sc.faults)
        while self._steps or self._step_busy:
            if self.history.now() > last:
                raise RuntimeError(f"the nemesis's steps were not over by {last:g}s: {len(self._steps)} left")
            self._until(self.history.now() + SETTLE_POLL_S)
        healed = h.now()
        h.add("final", "final", "settled", **self._settle())
        at_heal = self._progress()
        self._until(progress_until(healed, h.now(), sc.duration_s))
        after = self._progress()
        h.add(
            "final",
            "final",
            "tasks",
            cpus={str(cpu): progress_between(at_heal.get(cpu, {}), r) for cpu, r in after.items()},
        )
        self.load.stop()
        self._final()
        self.cluster.close()
        events = self.transfers.events(origin=self.t0 * self.scale)  # the monotonic_t0 of the history's meta
        verdict = checker.check(h.entries, self.bound, sc.cluster.lease_ms / 1e3, events)
        log = self.cluster.trace_text() + "".join(line + "\n" for line in self.nemesis.trace)
        log += self.cluster.nodes.text() if self.cluster.nodes.keep_log else self.cluster.nodes.digest() + "\n"
        return Run(f"{sc.name}-{self.strategy}", verdict, h.lines, self.transfers.files, log, [])

    def _until(self, scenario_s: float) -> None:
        self.cluster.nodes.run(self.at(scenario_s))

    def _settle(self) -> dict:
        n, m = len(self.roles), self.cluster
        deadline = self.history.now() + SETTLE_S
        detail = ""
        while True:
            membership = m.coordinator.membership
            members = membership.members
            # A member is live only as the CPU's running process: a killed one's member stays up until its
            # lease runs out, while its restarted process may still wait to register (behind a drain that
            # holds pcpu_drain_mutex), and the liveness window must not start before it has.
            live = [
                c
                for c, x in members.items()
                if membership.is_up(x) and not x.dead and x.incarnation == m.hosts[c].incarnation
            ]
            if len(live) == n:
                return {"ok": True, "detail": f"{n} CPUs live"}
            detail = f"live CPUs {sorted(live)} of {n}, recovering False"
            if self.history.now() >= deadline:
                return {"ok": False, "detail": detail}
            self._until(self.history.now() + SETTLE_POLL_S)

    def _progress(self) -> dict[int | str, dict]:
        """cpu -> its role, allocations, the allocations the zone refused for want of memory and (isolated
        CPUs) its latency task's runs, as the wall runner reads them from each node's /metrics."""
        out: dict[int | str, dict] = {}
        nodes = self.cluster.nodes
        for n, role in enumerate(self.roles):
            if role == "idle":
                continue
            a = nodes.allocs[n]
            out[n] = {
                "role": pb.Role.Name(ROLES[role]),
                "allocs": a.allocs,
                "refused": a.alloc_failures - a.fenced_refusals,
            }
            if role in _ISOLATED:
                out[n]["runs"] = sum(s.totals.runs for s in nodes.cpus[n].sources if isinstance(s, LatencyTask))
        return out

    def _final(self) -> None:
        h, cluster = self.history, self.cluster
        self.load.wait(self.virtual(self.deadline_s + 5.0))
        try:
            audited(h, audit_rule.reply(cluster.audit(self.virtual(AUDIT_TIMEOUT_S))))
        except Exception as err:  # an audit that failed is a finding of the checker, not the runner's
            h.add("final", "final", "audit", error=f"{code_of(err)}: {err}")
        grants = {}
        read_t = round(h.now(), 6)
        for n, drain in enumerate(cluster.nodes.drains):
            grants[str(n)] = [
                {
                    "token": g.token,
                    "outcome": g.outcome,
                    "pages": len(g.pages),
                    "held_s": round((g.ended_at - g.granted_at) * self.scale, 6) if g.ended_at else None,
                    "granted_t": round((g.granted_at - self.t0) * self.scale, 6),
                    "lease_s": g.lease_s * self.scale,
                    "committed_after_expiry": g.committed_after_expiry,
                    "stale_commits_refused": g.stale_commits_refused,
                }
                | ({} if g.ended_at else {"read_t": read_t})
                for g in drain.grants_log.values()
            ]
        h.add("final", "final", "grants", cpus=grants, unreachable=[], errors={})

    # ------------------------------------------------------------------ the nemesis and its hooks
    def _next_step(self) -> None:
        """The next step of the timeline, at its instant or as soon as the step before it is over,
        whichever is later: the wall runner's loop runs each step to its end before it sleeps until
        the next (a second-coordinator's start waits for its trap, its heal for the first's resume),
        so two steps never overlap, on either engine."""
        self._step_busy = False
        if self._steps:
            at, phase, fault = self._steps.popleft()
            self._step_busy = True
            self.queue.at(max(self.at(at), self.queue.clock.now), self._step, phase, fault)

    def _step(self, phase: str, fault: Fault) -> None:
        (self._start if phase == "start" else self._heal)(fault)
        if fault.kind != "second-coordinator":  # its hooks say when its steps are over
            self._next_step()

    def _start(self, fault: Fault) -> None:
        self.nemesis.start(fault)
        if fault.kind != "second-coordinator":  # its start is noted once the second runs
            self.history.add("nemesis", "fault", fault.kind, phase="start", what=fault.describe(), **fault.where())

    def _heal(self, fault: Fault) -> None:
        trapped = fault.kind == "stop-coordinator-mid-drain" and self.cluster.net.stopped(COORDINATOR)
        self.nemesis.heal(fault)
        if fault.kind == "second-coordinator":
            return  # noted by its hook
        detail = {"trapped": trapped} if fault.kind == "stop-coordinator-mid-drain" else fault.where()
        self.history.add("nemesis", "fault", fault.kind, phase="heal", what=fault.describe(), **detail)

    def kill(self, endpoint: object) -> None:
        self.cluster.kill(endpoint)
        if endpoint == COORDINATOR:
            self.load.connection_lost()

    def restart(self, endpoint: object) -> None:
        self.cluster.restart(endpoint)

    def stop(self, endpoint: object) -> None:
        self.cluster.stop(endpoint)

    def cont(self, endpoint: object) -> None:
        self.cluster.cont(endpoint)

    def set_cost_factor(self, cpu: int, factor: float) -> None:
        self.cluster.set_cost_factor(cpu, factor)

    def arm_trap(self, until: float) -> None:
        self.cluster.arm_trap()
        self.cluster.coordinator.driver.on_trap = lambda: self._watch_locks(until)

    def disarm_trap(self) -> None:
        self.cluster.disarm_trap()

    def start_second_coordinator(self, fault: Fault) -> None:
        """The wall nemesis's steps: the trap stops the first mid-drain (for resume_after_s from its
        stop); if no drain reaches it within TRAP_WAIT_S, the first is stopped as it is; then the
        second starts, and the first's resumption is noted when it comes."""
        driver, span = self.cluster.coordinator.driver, self.virtual(fault.resume_after_s)
        driver.arm_trap()
        started = [False]

        def resume_first() -> None:
            driver.cont()
            self.history.add("nemesis", "observe", "first-coordinator-resumed", pid=0)

        def second(trapped: bool) -> None:
            if started[0]:
                return
            started[0] = True
            if not trapped:
                driver.disarm_trap()
                driver.stop()
            epochs = self.cluster.start_second()
            self.history.add(
                "nemesis", "fault", fault.kind, phase="start", what=fault.describe(), pid=0, trapped=trapped, **epochs
            )
            self._first_resumes_at = self.queue.clock.now + span
            self.queue.at(self._first_resumes_at, resume_first)
            self._next_step()

        driver.on_trap = lambda: second(True)
        self.queue.after(self.virtual(TRAP_WAIT_S), second, False)

    def heal_second_coordinator(self, fault: Fault) -> None:
        """After the first's resumption, as the wall nemesis's heal joins the timer that resumes it (the
        start is over: the steps run one after another, _next_step)."""
        assert self._first_resumes_at is not None
        if self.queue.clock.now < self._first_resumes_at:
            self.queue.at(self._first_resumes_at, self._end_first, fault)
            return
        self._end_first(fault)

    def _end_first(self, fault: Fault) -> None:
        detail = self.cluster.end_first()
        self.history.add("nemesis", "fault", fault.kind, phase="heal", what=fault.describe(), killed=0, **detail)
        self._next_step()

    def _watch_locks(self, until: float) -> None:
        """The coordinator stopped itself mid-drain: note which CPUs' pcp locks (or list sets) it held,
        and when each is free again, polled as the wall nemesis polls them, until the heal."""
        h, drains = self.history, self.cluster.nodes.drains
        stopped_at = h.now()
        h.add("nemesis", "observe", "coordinator-stopped", pid=0)
        # Each by the grant that held it at the stop, as the wall watch (chaos/lock_watch.py).
        token = {n: d.holder_token() for n, d in enumerate(drains) if d.holder_token()}
        locked = sorted(token)
        h.add("nemesis", "observe", "pcp-locked-at-stop", cpus=locked)

        def poll() -> None:
            for n in list(locked):
                if drains[n].holder_token() != token[n]:
                    h.add("nemesis", "observe", "pcp-lock-free", cpu=n, after_s=round(h.now() - stopped_at, 6))
                    locked.remove(n)
            if not locked:
                return
            if self.queue.clock.now + self.virtual(LOCK_POLL_S) < until:
                self.queue.after(self.virtual(LOCK_POLL_S), poll)
            else:
                for n in locked:
                    h.add("nemesis", "observe", "pcp-lock-still-held", cpu=n, after_s=round(h.now() - stopped_at, 6))

        poll()
