"""What a chaos run does and writes down, the same under either engine: the workload's seeded schedule
(`steps`), the history's entries both drivers write (`invoked`, `drained`, `contig_taken`, `failed`,
`audited`, `scenario_meta`, `progress_between`), and the runner's timings. The wall drivers are
coordinator.tools.chaos.workload, .runner and .nemesis (threads, gRPC and signals); the virtual ones
.virtual_workload, .virtual_runner and .virtual_nemesis (events in virtual time).
"""

import dataclasses
import os

from coordinator.tools.schedule import drain_schedule
from node.agent_rule import REGISTER_TIMEOUT_S
from node.api.v1 import pcpsim_pb2 as pb
from node.zone_retry_rule import STREAM_TIMEOUT_S

SETTLE_S = 30.0
OBSERVE_S = 1.5  # six periods of the RT task, 75 of the preemptible one
# A message its fault lost just before the heal costs its sender one attempt's whole wait before it asks
# again (a zone request, a Register), and its CPU shows no progress until then; once answered, a CPU that
# runs tasks allocates within milliseconds (RESUME_S leaves a loaded host room).
LOST_ATTEMPT_S = max(STREAM_TIMEOUT_S, REGISTER_TIMEOUT_S)
RESUME_S = 0.5
TRAP_WAIT_S = 2.0  # second-coordinator: how long the trap may take to spring before a plain SIGSTOP

DEFINITE = ("INVALID_ARGUMENT", "FAILED_PRECONDITION")  # status codes that say the operation did not happen
CONTIG_TIMEOUT_MS = 5000
DRAIN, CONTIG = "drain", "alloc-contig"


def progress_until(healed_s: float, read_s: float, duration_s: float) -> float:
    """When the liveness reading after healing ends (its first read done at `read_s`, the last fault healed
    at `healed_s`): at the run's end, and no sooner than OBSERVE_S after the first read nor than a message
    lost at the heal has been asked again and answered. Sweep seed 4738 under the wall engine (`--jobs 4`):
    cpu0's refill answer was dropped 3 ms before its rpc fault healed, late (a coordinator restart under the
    load had held up the nemesis), and the reading ended 1.96 s later, before cpu0's 2 s wait did."""
    return max(read_s + OBSERVE_S, healed_s + LOST_ATTEMPT_S + RESUME_S, duration_s)


def steps(seed: int, interval_s: float, duration_s: float, cma: tuple[int, float]) -> list[tuple[float, str]]:
    """(offset, DRAIN or CONTIG) in order: the seeded drain schedule, and the CMA range's take if any."""
    out = [(t, DRAIN) for t in drain_schedule(seed, interval_s, duration_s)]
    if cma[0]:
        out = sorted([*out, (cma[1], CONTIG)], key=lambda s: s[0])
    return out


def failed(history, f: str, code: str, details: str, **fields) -> None:
    """An operation's error: `fail` when the code says it did not happen, else `info` (unknown)."""
    history.add("workload", "fail" if code in DEFINITE else "info", f, **fields, error=f"{code}: {details}")


def invoked(history, index: int, strategy: str, force_all_cpus: bool) -> None:
    history.add("workload", "invoke", DRAIN, index=index, strategy=strategy, force_all_cpus=force_all_cpus)


def drained(history, index: int, reply: pb.DrainAllReply) -> None:
    history.add(
        "workload",
        "fail" if reply.status == pb.DrainAllReply.FAILED else "ok",
        DRAIN,
        index=index,
        status=pb.DrainAllReply.Status.Name(reply.status),
        duration_s=reply.duration_s,
        **_parts(reply),
    )


def _parts(reply: pb.DrainAllReply) -> dict:
    """What the checker holds against the nodes' `drain` lines: the CPUs a drain marked and each one's part."""
    return {
        "cpus_marked": list(reply.cpus_marked),
        "cpus": [{"cpu": c.cpu, "ok": c.ok, "pages": c.pages, "error": c.error} for c in reply.cpus],
    }


def contig_taken(history, reply: pb.ContigRangeReply) -> None:
    history.add(
        "workload",
        "ok" if reply.ok else "fail",
        CONTIG,
        start_pfn=reply.start_pfn,
        nr_pages=reply.nr_pages,
        attempts=reply.attempts,
        duration_s=reply.duration_s,
        drains=[_parts(d) for d in reply.drains],
        **({"error": reply.error} if reply.error else {}),
    )


def progress_between(at_heal: dict, after: dict) -> dict:
    """One CPU's progress between the heal and the end, as the checker reads it."""
    if "error" in after:
        return {"error": after["error"]}
    out = {"role": after["role"], "allocs_at_heal": at_heal.get("allocs", -1), "allocs_after": after["allocs"]}
    if "refused" in after:
        out |= {"refused_at_heal": at_heal.get("refused", -1), "refused_after": after["refused"]}
    if "runs" in after:
        out |= {"runs_at_heal": at_heal.get("runs", -1), "runs_after": after["runs"]}
    return out


def audited(history, a: pb.AuditReply) -> None:
    """The final audit's entry in the history."""
    history.add(
        "final",
        "final",
        "audit",
        ok=a.ok,
        total_pages=a.total_pages,
        lost=a.lost,
        duplicated=a.duplicated,
        unexpected=a.unexpected,
        lost_pfns=list(a.lost_pfns),
        duplicated_pfns=list(a.duplicated_pfns),
        errors=list(a.errors),
        where=dict(a.where),
    )


def scenario_meta(history, scenario, strategy: str, seed: int, bound_s: float, **extra) -> None:
    """The run's first history entry: what ran, with the checker's bounds (both engines' runners)."""
    history.add(
        "runner",
        "meta",
        "scenario",
        name=scenario.name,
        strategy=strategy,
        seed=seed,
        bound_s=bound_s,
        lease_s=scenario.cluster.lease_ms / 1e3,
        scenario=plain_scenario(scenario),
        transfer_logs=True,
        **extra,
    )


def plain_scenario(scenario) -> dict:
    doc = dataclasses.asdict(scenario)
    # Its file's name, not the path as typed: every field is here, and the history is the same from any
    # checkout or working directory.
    doc["path"] = os.path.basename(scenario.path) if scenario.path else scenario.path
    doc["faults"] = [dataclasses.asdict(f) for f in scenario.faults]
    return doc
