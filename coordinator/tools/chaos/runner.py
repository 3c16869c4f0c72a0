"""One chaos run: a scenario against one strategy on a fresh local cluster, end to end.

The run directory holds history.jsonl and every process's transfer log (transfers-*.jsonl,
node.shared.transfer_log: the checker's inputs), every process's log (LocalCluster),
metrics/ (each process's /metrics at the end), verdict.json and timeline.html
(coordinator.tools.chaos.timeline).

Timeline: the workload drains from t=0 to duration_s; the nemesis starts and heals each
fault on time; from duration_s - heal_s every fault is healed and the run waits for the
cluster to settle (every CPU a live member, recovery over), notes each CPU's allocations
and each latency task's runs, and at duration_s notes them again; then the workload stops
and the final observations are made: a stop-the-world audit and every node's grant records
(remote pcp lock or rcu-swap).

Every run starts a cluster of its own, even for another strategy of the same scenario: the
cluster's strategy picks the nodes' pcp design at registration (rcu-swap's list sets); each
process's transfer log, which the checker replays from the process's start, is named at start;
grant records and /metrics counters add up over a process's life; the evidence the tests look
for in the processes' logs must be this run's; and most faults leave a changed cluster (a new
incarnation or epoch, a range held). A shared cluster would need a reset of all of that.
"""

import json
import os
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

import grpc
from prometheus_client.parser import text_string_to_metric_families

from coordinator.tools.chaos import checker, timeline, transfers
from coordinator.tools.chaos.history import History, read
from coordinator.tools.chaos.nemesis import Nemesis
from coordinator.tools.chaos.plan import SETTLE_S, audited, progress_between, progress_until, scenario_meta
from coordinator.tools.chaos.processes import HeldBack, answers_as
from coordinator.tools.chaos.workload import DrainWorkload
from coordinator.tools.cluster import ClusterConfig, LocalCluster
from coordinator.tools.progress import clear_line
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc

T = TypeVar("T")

RPC_TIMEOUT_S = 10.0
HELD_BACK_MAX_S = 60.0  # the most settling waits beyond SETTLE_S for the host's run queue (`_settle`)
AUDIT_ATTEMPTS = 3  # the final audit, asked again while it is incomplete (`_audit`)
AUDIT_RETRY_S = 1.0
RUN_OVERHEAD_S = 12.0  # cluster start, settling, the final observations and the checker (estimate)
_OUTCOME = {v: k.lower() for k, v in pb.GrantRecord.Outcome.items()}


def estimate_s(scenario) -> float:
    """How long one run of `scenario` should take, for a progress line."""
    return scenario.duration_s + RUN_OVERHEAD_S


def run(
    scenario, strategy: str, out_dir: str, seed: int | None = None, stream=sys.stderr, progress=None, index: int = 0
) -> checker.Verdict:
    """`progress` (coordinator.tools.progress.Progress), if given, shows this run as step `index`."""
    seed = scenario.seed if seed is None else seed
    c = scenario.cluster
    run_dir = os.path.join(out_dir, f"{scenario.name}-{strategy}")
    shutil.rmtree(run_dir, ignore_errors=True)  # a run directory holds one run
    os.makedirs(run_dir)
    bound = checker.drain_bound(strategy, c.cpus, c.lease_ms / 1e3, c.dead_timeout_ms / 1e3, c.flush_timeout_ms / 1e3)
    frozen = sum(f.heal_after_s for f in scenario.faults if f.kind in checker.COORDINATOR_STOPPED)
    config = ClusterConfig(
        roles=scenario.roles(),
        seed=seed,
        strategy=strategy,
        kernel=c.kernel,
        zone_mb=c.zone_mb,
        zone_used=c.zone_used,
        coordinator_args=[
            "--lease-ms",
            str(c.lease_ms),
            "--failure-timeout-ms",
            str(c.failure_timeout_ms),
            "--dead-timeout-ms",
            str(c.dead_timeout_ms),
            "--flush-timeout-ms",
            str(c.flush_timeout_ms),
            "--transfer-log",
            os.path.join(run_dir, "transfers-coordinator.jsonl"),
            *c.unsafe_coordinator_args(),
        ],
        node_args=[
            "--transfer-log",
            os.path.join(run_dir, "transfers-cpu{cpu}.jsonl"),
            *c.unsafe_node_args(),
        ],
    )
    say = _Say(stream, f"{scenario.name}/{strategy}")

    def step(what: str) -> None:
        if progress is not None:
            progress.update(index, f"{scenario.name}/{strategy}", what)

    step("starting")
    history = History(os.path.join(run_dir, "history.jsonl"))
    try:
        with LocalCluster(config, run_dir) as cluster:
            scenario_meta(history, scenario, strategy, seed, bound)
            step("running")
            _drive(cluster, scenario, strategy, seed, bound + frozen + checker.MARGIN_S, history, say)
            step("observing")
            _final(cluster, scenario, history, run_dir, say)
    finally:
        history.close()
    step("checking")
    entries = read(history.path)
    verdict = checker.check(entries, bound, c.lease_ms / 1e3, transfers.load(run_dir, entries))
    with open(os.path.join(run_dir, "verdict.json"), "w") as f:
        json.dump(verdict.to_json(), f, indent=2)
    timeline.write(run_dir)
    say(
        f"valid: {str(verdict.valid).lower()}"
        + "".join(
            f"\n  {k}: {v[0]}" + (f" (+{len(v) - 1} more)" if len(v) > 1 else "") for k, v in verdict.findings.items()
        )
    )
    return verdict


def _drive(cluster, scenario, strategy, seed, deadline_s, history, say) -> None:
    nemesis = Nemesis(cluster, history, seed)
    with cluster.channel(cluster.coordinator_address) as ch:
        workload = DrainWorkload(
            pb_grpc.CoordinatorStub(ch),
            history,
            strategy,
            scenario.workload.drain_interval_ms / 1e3,
            scenario.duration_s,
            seed,
            scenario.workload.force_all_cpus,
            deadline_s,
            cma=(scenario.workload.cma_pages, scenario.workload.cma_at_s),
        )
        history.start_clock()
        # The transfer logs' times are CLOCK_MONOTONIC: this converts them to the history's.
        history.add("runner", "meta", "clock", monotonic_t0=history.t0)
        t0 = time.monotonic()
        workload.start()
        for at, phase, fault in scenario.timeline():
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            say(f"t={at:5.2f}s {phase} {fault.describe()}")
            (nemesis.start if phase == "start" else nemesis.heal)(fault)
        time.sleep(max(0.0, t0 + scenario.duration_s - scenario.heal_s - time.monotonic()))
        say(f"t={scenario.duration_s - scenario.heal_s:5.2f}s healing phase: every fault healed")
        healed = history.now()
        settled = _settle(cluster, len(scenario.roles()))
        history.add("final", "final", "settled", **settled)
        at_heal = _progress(cluster)
        # However long settling took, give every CPU time to show it runs.
        time.sleep(max(0.0, progress_until(healed, history.now(), scenario.duration_s) - history.now()))
        after = _progress(cluster)
        history.add(
            "final",
            "final",
            "tasks",
            cpus={str(cpu): progress_between(at_heal.get(cpu, {}), r) for cpu, r in after.items()},
        )
        workload.stop()
        workload.join(deadline_s + 5.0)
        say(f"t={scenario.duration_s:5.2f}s workload stopped after {workload.invoked} drains")


def _settle(cluster, n: int) -> dict:
    """Every CPU a live member as its running process (a killed process's member may stay up a while, as
    the restarted process waits to register: each member's process is asked who it is). The wait is
    SETTLE_S of the processes' own time: it grows by the longest time the host's run queue has held back
    the process of a CPU not yet live (at most HELD_BACK_MAX_S more). Sweep seed 4816 under the wall
    engine, four runs at a time on 2 cores: three restarted nodes registered 23 to 29 s after their start,
    and settling ran out before the last; one so started in a batch measured since used 0.26 s of CPU and
    waited 23.3 s in the run queue before its imports were done (docs/sweep.md)."""
    held_back = HeldBack()
    started = time.monotonic()
    withheld = 0.0
    detail = ""
    for name in cluster.node_names.values():
        held_back.since_first_look(cluster.procs[name].pid)  # where each process's wait counts from
    while time.monotonic() < started + SETTLE_S + min(HELD_BACK_MAX_S, withheld):
        live: list[int] = []
        try:
            state = cluster.state(timeout=2.0)
            live = [x.cpu for x in state.nodes if x.up and not x.dead and answers_as(cluster, x)]
            if len(live) == n and not state.recovering:
                return {"ok": True, "detail": f"{n} CPUs live", **_waited(started, withheld)}
            detail = f"live CPUs {live} of {n}, recovering {state.recovering}"
        except grpc.RpcError as err:
            detail = f"coordinator: {err.code().name}"
        late = [name for cpu, name in cluster.node_names.items() if cpu not in live]
        withheld = max((held_back.since_first_look(cluster.procs[name].pid) for name in late), default=0.0)
        time.sleep(0.1)
    return {"ok": False, "detail": detail, **_waited(started, withheld)}


def _waited(started: float, withheld: float) -> dict:
    return {"waited_s": round(time.monotonic() - started, 3), "held_back_s": round(withheld, 3)}


_ISOLATED = (pb.ROLE_ISOLATED_PREEMPTIBLE, pb.ROLE_ISOLATED_RT)
_PROGRESS = ("pcpsim_task_runs", "pcpsim_alloc_allocations", "pcpsim_alloc_failures", "pcpsim_alloc_fenced_refusals")


def _progress(cluster) -> dict[int | str, dict]:
    """cpu -> its role, pcpsim_alloc_allocations_total, the allocations the zone refused for want of
    memory (the failures that were not fenced refusals) and (isolated CPUs) pcpsim_task_runs_total,
    from its /metrics, for every CPU that runs tasks (an idle CPU runs none)."""
    out: dict[int | str, dict] = {}
    try:
        nodes = _asked_again(lambda: cluster.state(timeout=2.0)).nodes
    except grpc.RpcError as err:
        return {"?": {"error": f"coordinator: {err.code().name}"}}
    for n in nodes:
        if n.role == pb.ROLE_IDLE:
            continue
        try:
            samples = {
                s.name: s.value
                for fam in text_string_to_metric_families(_scrape(n.metrics_address))
                if fam.name in _PROGRESS
                for s in fam.samples
            }
            out[n.cpu] = {
                "role": pb.Role.Name(n.role),
                "allocs": samples.get("pcpsim_alloc_allocations_total", -1),
                "refused": samples.get("pcpsim_alloc_failures_total", -1)
                - samples.get("pcpsim_alloc_fenced_refusals_total", 0),
            }
            if n.role in _ISOLATED:
                out[n.cpu]["runs"] = samples.get("pcpsim_task_runs_total", -1)
        except OSError as err:
            out[n.cpu] = {"error": str(err)}
    return out


def _asked_again(call: Callable[[], T]) -> T:
    """call() again while it raises, until RPC_TIMEOUT_S has passed (then its last error): after healing,
    one broken call says nothing of the cluster. Sweep seed 4610 under the wall engine (`--jobs 4`, load
    average 14): the settled cluster's coordinator answered, then the progress reading's one GetState
    broke on a keepalive ping timeout, and the run was judged not live."""
    deadline = time.monotonic() + RPC_TIMEOUT_S
    while True:
        try:
            return call()
        except grpc.RpcError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


def _audit(stub, history, say) -> None:
    """The final audit, asked again (at most AUDIT_ATTEMPTS in all) while it answers UNAVAILABLE: an audit
    that could not park or read a CPU is incomplete and proves nothing either way (coordinator.audit_rule),
    and under load a node can miss one connection's handshake (sweep seed 4409 under the wall engine,
    three runs at a time: "connection attempt timed out before receiving SETTINGS frame"). Each
    incomplete one is in the history (`audit-incomplete`); the last answer is the verdict's."""
    for attempt in range(1, AUDIT_ATTEMPTS + 1):
        try:
            a = stub.Audit(pb.Empty(), timeout=60.0)
        except grpc.RpcError as err:
            error = f"{err.code().name}: {err.details()}"
            if err.code() != grpc.StatusCode.UNAVAILABLE or attempt == AUDIT_ATTEMPTS:
                history.add("final", "final", "audit", error=error)
                return
            history.add("final", "observe", "audit-incomplete", error=error)
            say(f"audit incomplete ({error}); asking again")
            time.sleep(AUDIT_RETRY_S)
            continue
        audited(history, a)
        say(f"audit: ok={a.ok} lost={a.lost} duplicated={a.duplicated} unexpected={a.unexpected}")
        return


def _scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5.0) as resp:
        return resp.read().decode()


def _final(cluster, scenario, history, run_dir, say) -> None:
    with cluster.channel(cluster.coordinator_address) as ch:
        stub = pb_grpc.CoordinatorStub(ch)
        _audit(stub, history, say)
        try:
            state = _asked_again(lambda: stub.GetState(pb.Empty(), timeout=2.0))
        except grpc.RpcError as err:
            # No coordinator to ask (seed 4036 under the wall engine: a nemesis step had killed the last one):
            # no grant records, so the verdict is unknown, and the next scenario of the command still runs.
            say(f"final observations: the coordinator answered {err.code().name}; no grant records read")
            return
    nodes = state.nodes
    grants, unreachable, errors = {}, [], {}
    for n in nodes:
        snap = None
        for _ in range(3):  # a node may be busy rejoining right after the heal
            read_t = round(history.now(), 6)  # a grant held at the read was held since granted_t at least until then
            try:
                with cluster.channel(n.address) as ch:
                    snap = pb_grpc.NodeStub(ch).Snapshot(pb.CpuRequest(cpu=n.cpu), timeout=RPC_TIMEOUT_S)
                break
            except grpc.RpcError as err:
                errors[str(n.cpu)] = f"{err.code().name}: {err.details()}"
                time.sleep(1.0)
        if snap is None:
            unreachable.append(n.cpu)
            continue
        grants[str(n.cpu)] = [
            {
                "token": g.token,
                "outcome": _OUTCOME[g.outcome],
                "pages": g.pages,
                "held_s": round(g.ended_at - g.granted_at, 6) if g.ended_at else None,
                # on the history's clock: nodes and the runner share CLOCK_MONOTONIC
                "granted_t": round(g.granted_at - history.t0, 6),
                "lease_s": g.lease_s,
                "committed_after_expiry": g.committed_after_expiry,
                "stale_commits_refused": g.stale_commits_refused,
            }
            | ({} if g.ended_at else {"read_t": read_t})
            for g in snap.grants
        ]
    history.add("final", "final", "grants", cpus=grants, unreachable=unreachable, errors=errors)
    _snapshot_metrics(state, os.path.join(run_dir, "metrics"))


def _snapshot_metrics(state: pb.ClusterState, where: str) -> None:
    os.makedirs(where, exist_ok=True)
    targets = [(f"cpu{n.cpu}", n.metrics_address) for n in state.nodes if n.metrics_address]
    targets.append(("coordinator", state.metrics_address))
    for name, address in targets:
        try:
            text = _scrape(address)
        except OSError as err:
            text = f"# scrape failed: {err}\n"
        with open(os.path.join(where, f"{name}.prom"), "w") as f:
            f.write(text)


class _Say:
    def __init__(self, stream, prefix: str):
        self.stream, self.prefix = stream, prefix

    def __call__(self, msg: str) -> None:
        print(f"{clear_line(self.stream)}[{self.prefix}] {msg}", file=self.stream, flush=True)
