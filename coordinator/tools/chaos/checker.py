"""The checker: a verdict from the history alone, bank-test style.

What it checks, each a list of findings (empty: fine):
- conservation: the final stop-the-world audit after healing; pages lost, duplicated or
  unexpected, with the first examples, and the audit's own errors (pcp and buddy
  invariants, the zone's ownership records against what each CPU holds); and the pages it finds
  with the owners no CPU reports (the system's share, CMA, offline) against the zone's transfer log;
- pages held twice, at any time: the run's transfer logs replayed (coordinator.tools.chaos.transfers),
  no page with two owners at overlapping times, and no CPU allocating a page another owner holds;
- claims in conflict: no zone refuses a CPU's claim of its holdings after a coordinator restart for a
  page it records as another owner's (the transfer logs' `claim-refused`): each process reports only what
  it holds, so one of the two records was wrong, and the CPU refused lost its pages;
- allocated after cpu_dead: no incarnation allocates, or is given pages, after the coordinator
  took its CPU's pages back;
- stale writes applied: a remote drainer's commit accepted after its lease had run out
  (the grant records every node keeps, remote pcp lock or rcu-swap); with fencing this never happens;
- lock lease: every remote grant (of a pcp lock, or of an rcu-swap list set) ended (committed, aborted or expired)
  within its lease plus timer slack (not counting time its node was SIGSTOPped: a frozen
  node runs neither its lease timer nor anything that could want the lock), none is still
  held after healing, and each lock the coordinator held when it was stopped mid-drain was
  seen free within the lease (or, when the stop healed first, was still within it then);
- drains reached every CPU: a completed drain (the workload's, and each its alloc-contig reports) has a
  part for every CPU it marked, and each part it reports drained ran on that CPU within the call's span
  (the node's `drain` line in its transfer log) the strategy's way (workqueue a work item, remote the pcp
  lock, rcu-swap a swap, qpw the lock when the cluster has an isolated CPU and a work item when not),
  taking at least the pages reported;
- drains in bound: every invoked drain completed (ok, fail or info) within its bound;
  one still open, or answered DEADLINE_EXCEEDED, did not, unless an rpc fault could have lost the
  workload's DrainAllPages call or its reply (then its time is unknown: `call_lost_by_fault`);
- liveness after healing: the cluster settled (every CPU a live member, recovery over), every
  CPU that runs tasks (housekeeping included) allocated after the heal, or had an allocation refused
  by the zone for want of memory (it ran and the zone answered it: the housekeeping working sets
  overcommit a small zone, and for seconds the pages freed may all go to other CPUs), and every
  isolated CPU's latency task was still reporting runs.
Verdict: `valid` false if any finding; "unknown" when the final observations are missing
(the run was cut short), so nothing can be said; true otherwise. Exit codes 0, 1, 2.
"""

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

from coordinator.drain.control import REVOKE_AFTER_S
from coordinator.membership_rule import CONTROL_TIMEOUT_S, LEASE_MARGIN_S
from coordinator.tools.chaos import drains_reached, transfers
from coordinator.tools.chaos.scenario import Fault

# A poll of the lock every 10 ms over RPC, on a loaded 2-core machine: how late a free
# lock may be seen beyond the lease without blaming the lease.
LOCK_OBSERVE_SLACK_S = 1.0
# How late a node's lease timer (asyncio call_later) may fire on a loaded machine.
TIMER_SLACK_S = 1.0
# Queueing work on every CPU (QueueWork's deadline), and the margin of every bound.
QUEUE_S = 2.0
MARGIN_S = 2.0
# rcu-swap's swap, on every marked CPU at once: up to two grace periods of the coordinator's
# default --rcu-gp-timeout-ms (2 s; the chaos runner keeps it) and one control round trip.
RCU_SWAP_S = 2 * 2.0 + CONTROL_TIMEOUT_S
COORDINATOR_STOPPED = ("kill-coordinator", "stop-coordinator-mid-drain", "second-coordinator")  # fault kinds
# The workload's own call: an rpc rule the coordinator applies to what it serves, for any peer, can lose
# its request or its reply (no CPU is its peer), and the workload then sees DEADLINE_EXCEEDED whatever
# the drain did. How much earlier than its history entry a rule may already be in force (SetFaults
# is answered before the nemesis writes the entry).
DRAIN_CALL = "DrainAllPages"
# The kinds of violation `check` names, in the module docstring's order.
FINDINGS = (
    "conservation",
    "pages_held_twice",
    "claims_in_conflict",
    "allocated_after_cpu_dead",
    "stale_writes_applied",
    "lock_lease",
    "drains_reached_every_cpu",
    "drains_in_bound",
    "liveness",
)
RULE_SLACK_S = 0.1


def drain_bound(strategy: str, cpus: int, lease_s: float, dead_s: float, flush_s: float) -> float:
    """Seconds within which a drain_all_pages must resolve, the coordinator running:
    workqueue queues on every CPU, then flushes each in turn, each flush bounded; remote
    visits each CPU in turn: the lock request is bounded by the grant lease (`lease_s`), the
    commit (coordinator.drain.control) is asked again, each attempt within one membership
    lease (shorter than the dead timeout `dead_s`), for REVOKE_AFTER_S while the CPU's
    heartbeats come, then until its lease, no longer renewed, has provably run out (one more
    lease and LEASE_MARGIN_S); an attempt begun just before either deadline adds a lease each.
    rcu-swap swaps every CPU at once (RCU_SWAP_S), each CPU's commit following its swap, as remote's
    does (the commits run side by side; bounding them as one after another over-counts, and holds).
    qpw is remote or workqueue, by whether the cluster has an isolated CPU (coordinator.drain.qpw):
    the larger bound holds either way."""
    if strategy == "qpw":
        return max(drain_bound(s, cpus, lease_s, dead_s, flush_s) for s in ("workqueue", "remote"))
    if strategy == "workqueue":
        return QUEUE_S + cpus * (flush_s + QUEUE_S) + MARGIN_S
    commit = REVOKE_AFTER_S + 3 * dead_s + LEASE_MARGIN_S
    if strategy == "rcu-swap":
        return RCU_SWAP_S + cpus * commit + MARGIN_S
    return cpus * (lease_s + commit) + MARGIN_S


@dataclass
class Verdict:
    valid: bool | Literal["unknown"]
    findings: dict[str, list[str]] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if self.valid is True else 1 if self.valid is False else 2

    def to_json(self) -> dict:
        return {"valid": self.valid, "findings": self.findings, "stats": self.stats}


def check(history: list[dict], bound_s: float, lease_s: float, transfer_events: list[dict] | None = None) -> Verdict:
    """`transfer_events`: the run's transfer logs (coordinator.tools.chaos.transfers.load), or None
    if it kept none."""
    findings: dict[str, list[str]] = {kind: [] for kind in FINDINGS}
    final = {e["f"]: e for e in history if e["type"] == "final"}
    stats: dict[str, dict] = {}
    _drains(history, bound_s, findings["drains_in_bound"], stats)
    stopped = _nodes_stopped(history)
    _lock_lease(history, lease_s, stopped, findings["lock_lease"])
    if "audit" in final:
        _conservation(final["audit"], findings["conservation"], stats)
        _cma_kept(history, final["audit"], findings["conservation"])
    if "grants" in final:
        _stale_writes(final["grants"], findings["stale_writes_applied"], stats)
        _grant_leases(final["grants"], stopped, findings["lock_lease"])
    if "settled" in final:
        _liveness(final["settled"], final.get("tasks"), findings["liveness"], stats)
    drains_reached.check(history, transfer_events, findings["drains_reached_every_cpu"], stats)
    if transfer_events is not None:
        transfers.check(transfer_events, findings, stats, transfers.kills(history))
        if "audit" in final:
            _owners_logged(final["audit"], stats["owners_logged"], findings["conservation"])
    findings = {k: v for k, v in findings.items() if v}
    if findings:
        return Verdict(False, findings, stats)
    missing = [f"no final {f} in the history" for f in ("settled", "audit", "grants", "tasks") if f not in final]
    meta = next((e for e in history if e["type"] == "meta" and e["f"] == "scenario"), {})
    if meta.get("transfer_logs") and transfer_events is None:
        missing.append("the run kept transfer logs, but none were read")
    missing += [f"cpu{cpu}: grant records could not be read" for cpu in final.get("grants", {}).get("unreachable", [])]
    if missing:
        return Verdict("unknown", {"missing": missing}, stats)
    return Verdict(True, {}, stats)


def _drains(history, bound_s: float, out: list, stats: dict) -> None:
    stopped = _coordinator_stopped(history)
    lossy = _drain_call_lossy(history)
    open_ = {}
    counts = {"invoked": 0, "ok": 0, "fail": 0, "info": 0}
    unknown = 0
    for e in history:
        if e["f"] != "drain" or e["process"] != "workload":
            continue
        if e["type"] == "invoke":
            open_[e["index"]] = e
            counts["invoked"] += 1
            continue
        counts[e["type"]] += 1
        start = open_.pop(e["index"], None)
        if start is None:
            out.append(f"drain {e['index']}: completed without an invoke")
            continue
        allowed = bound_s + _overlap(stopped, start["t"], e["t"])
        took = e["t"] - start["t"]
        late = "DEADLINE_EXCEEDED" in e.get("error", "") or took > allowed
        # Its request reaches the coordinator at once, or when a coordinator stopped then runs again.
        arrives = next((b for a, b in stopped if a <= start["t"] < b), start["t"])
        if late and e["type"] == "info" and any(a - RULE_SLACK_S <= arrives and start["t"] <= b for a, b in lossy):
            unknown += 1  # the call itself may have been lost: the drain's own time is not known
            continue
        if late:
            out.append(
                f"drain {e['index']}: {e['type']} after {took:.2f}s, bound {allowed:.2f}s"
                + (f" ({e['error']})" if e.get("error") else "")
            )
    for index, start in open_.items():
        out.append(f"drain {index}: invoked at {start['t']:.2f}s and never completed")
    if unknown:
        counts["call_lost_by_fault"] = unknown
    stats["drains"] = counts


def _drain_call_lossy(history) -> list[tuple[float, float]]:
    """The intervals in which an rpc fault could lose the workload's DrainAllPages request or reply: a
    rule on the coordinator's side, for requests it serves from any peer, that drops either."""
    meta: dict = next((e for e in history if e["type"] == "meta" and e["f"] == "scenario"), {})
    whats = set()
    for fault in (Fault(**f) for f in meta.get("scenario", {}).get("faults", [])):
        if (
            fault.kind == "rpc"
            and fault.side == "coordinator"
            and fault.direction == "in"
            and fault.cpu is None
            and (fault.drop or fault.drop_reply)
            and fnmatchcase(DRAIN_CALL, fault.method)
        ):
            whats.add(fault.describe())
    spans: list[tuple[float, float]] = []
    since: dict[str, list[float]] = {}
    for e in history:
        if e["type"] != "fault" or e["f"] != "rpc" or e.get("what") not in whats:
            continue
        if e["phase"] == "start":
            since.setdefault(e["what"], []).append(e["t"])
        elif since.get(e["what"]):
            spans.append((since[e["what"]].pop(0), e["t"]))
    end = history[-1]["t"] if history else 0.0
    spans += [(t, end) for ts in since.values() for t in ts]
    return spans


def _coordinator_stopped(history) -> list[tuple[float, float]]:
    """Intervals in which the coordinator was stopped or dead (a drain cannot progress)."""
    spans, since = [], {}
    for e in history:
        if e["type"] != "fault" or e["f"] not in COORDINATOR_STOPPED:
            continue
        if e["phase"] == "start":
            since[e["f"]] = e["t"]
        elif e["f"] in since:
            spans.append((since.pop(e["f"]), e["t"]))
    end = history[-1]["t"] if history else 0.0
    spans += [(t, end) for t in since.values()]
    return spans


def _nodes_stopped(history) -> dict[int, list[tuple[float, float]]]:
    """For each CPU, the intervals in which its node process was SIGSTOPped."""
    spans: dict[int, list[tuple[float, float]]] = {}
    since: dict[int, float] = {}
    for e in history:
        if e["type"] != "fault" or e["f"] != "stop-node" or "cpu" not in e:
            continue
        if e["phase"] == "start":
            since[e["cpu"]] = e["t"]
        elif e["cpu"] in since:
            spans.setdefault(e["cpu"], []).append((since.pop(e["cpu"]), e["t"]))
    end = history[-1]["t"] if history else 0.0
    for cpu, t in since.items():
        spans.setdefault(cpu, []).append((t, end))
    return spans


def _overlap(spans, start: float, end: float) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)


def _lock_lease(history, lease_s: float, stopped: dict[int, list[tuple[float, float]]], out: list) -> None:
    """The locks the coordinator held when it stopped itself mid-drain, polled until the heal: each is free
    within its lease (and the poll's slack). One still held at the heal is a violation only if the lease
    had run out by then: a stop shorter than the lease heals while the lease still covers the lock. The
    lease is the node's timer, which runs no further while the node's process is stopped too: that time
    is not counted (as _grant_leases does). Until 2026-12-06 it was, and a node stopped across the
    coordinator's stop broke a lease it could not have ended (sweep seed 2552)."""
    for e in history:
        if e["type"] != "observe" or e["f"] not in ("pcp-lock-free", "pcp-lock-still-held"):
            continue
        # The wall nemesis says when a read last saw the lock held (held_seen_s): its reads may come late
        # (chaos/lock_watch.py). The virtual one reads on time, every poll, and says when it saw the change.
        late = e.get("held_seen_s", e["after_s"])
        stop = e["t"] - e["after_s"]
        frozen = _overlap(stopped.get(e["cpu"], []), stop, stop + late)
        if late - frozen <= lease_s + LOCK_OBSERVE_SLACK_S:
            continue
        seen = "seen held" if "held_seen_s" in e else {"pcp-lock-free": "free only"}.get(e["f"], "still held")
        out.append(
            f"cpu{e['cpu']}: pcp lock {seen} {late:.3f}s after the coordinator stopped holding it "
            f"(lease {lease_s:g}s" + (f", {frozen:.3f}s of them with cpu{e['cpu']} stopped)" if frozen else ")")
        )


def _cma_kept(history, audit: dict, out: list) -> None:
    """Every CMA range the workload took (and holds to the end) is still the zone's CMA pages in the
    final audit: a coordinator that forgot one after a restart has handed its pages out again."""
    held = sum(e["nr_pages"] for e in history if e["f"] == "alloc-contig" and e["type"] == "ok")
    cma = audit.get("where", {}).get("cma", 0)
    if "error" not in audit and cma < held:
        out.append(f"the workload holds {held} CMA pages, the final audit finds {cma} (a taken range was forgotten)")


def _owners_logged(audit: dict, logged: dict[str, int], out: list) -> None:
    """The pages the final audit finds with the owners that are not CPUs (the system's share, CMA and
    offline ranges: the zone's own records, which a CPU never reports) against those the zone's transfer
    log gave them, replayed. The audit alone cannot see a page the zone moved to one of them unlogged:
    every page is still counted once, by the same records that moved it."""
    if "error" in audit:
        return
    where = audit.get("where", {})
    for name, n in sorted(logged.items()):
        found = where.get(name)  # absent: a history whose audit did not say
        if found is not None and found != n:
            out.append(f"the final audit finds {found} pages held as {name}, the zone's transfer log {n}")


def _conservation(audit: dict, out: list, stats: dict) -> None:
    stats["audit"] = {k: audit.get(k) for k in ("total_pages", "lost", "duplicated", "unexpected", "where")}
    if audit.get("error"):
        out.append(f"the final audit did not complete: {audit['error']}")
        return
    for kind, examples in (("lost", "lost_pfns"), ("duplicated", "duplicated_pfns"), ("unexpected", None)):
        n = audit.get(kind, 0)
        if n:
            ex = audit.get(examples, [])[:5] if examples else []
            out.append(f"{n} pages {kind}" + (f", first pfns {ex}" if ex else ""))
    for err in audit.get("errors", [])[:20]:
        out.append(f"audit: {err}")
    if not audit.get("ok") and not out:
        out.append("the audit reported not ok")


def _stale_writes(grants: dict, out: list, stats: dict) -> None:
    refused = applied = 0
    for cpu, records in sorted(grants.get("cpus", {}).items()):
        for r in records:
            refused += r.get("stale_commits_refused", 0)
            if r.get("committed_after_expiry"):
                applied += 1
                if applied <= 5:
                    out.append(f"cpu{cpu}: token {r['token']}'s commit was applied after its lease expired")
    if applied > 5:
        out.append(f"... {applied} stale commits applied in all")
    stats["stale_commits"] = {"refused": refused, "applied": applied}


def _grant_leases(grants: dict, stopped: dict[int, list[tuple[float, float]]], out: list) -> None:
    for cpu, records in sorted(grants.get("cpus", {}).items()):
        for r in records:
            start = r.get("granted_t")  # absent from histories written before it was recorded
            if r["outcome"] == "held":
                # A grant still held when its node was read: held from granted_t at least until the read
                # was sent (`read_t`, recorded from 2026-12-07). A drain under way at the final reads
                # (a direct reclaim's, after the workload stopped: sweep seed 4176 under the wall engine,
                # granted 30 ms before) is judged as any grant, by its lease; without `read_t`, held at
                # all is a finding.
                if start is None or "read_t" not in r:
                    out.append(f"cpu{cpu}: token {r['token']} still holds the pcp lock after healing")
                    continue
                held, what = r["read_t"] - start, "still held at the final read"
            else:
                held, what = r["held_s"], f"before it was {r['outcome']}"
            frozen = 0.0 if start is None else _overlap(stopped.get(int(cpu), []), start, start + held)
            if held - frozen > r["lease_s"] + TIMER_SLACK_S:
                out.append(
                    f"cpu{cpu}: token {r['token']} held the pcp lock {held:.3f}s (lease {r['lease_s']:g}s) {what}"
                )


def _liveness(settled: dict, tasks: dict | None, out: list, stats: dict) -> None:
    refused_only = []
    if not settled.get("ok"):
        # The wall runner's wait grows by the time the host's run queue held a process back.
        waited = (
            f" (waited {settled['waited_s']:.1f} s, in which the host's run queue held a process back"
            f" {settled['held_back_s']:.1f} s)"
            if "held_back_s" in settled
            else ""
        )
        out.append(f"the cluster did not settle after healing: {settled.get('detail')}{waited}")
    for cpu, t in sorted((tasks or {}).get("cpus", {}).items()):
        if t.get("error"):
            out.append(f"cpu{cpu}: metrics not readable after healing: {t['error']}")
            continue
        # Histories written before every CPU's allocations were noted have only the tasks' runs, and
        # those written before refusals were noted (2026-12-07) no refusals: no allocation is a finding.
        if "allocs_after" in t and t["allocs_after"] <= t["allocs_at_heal"]:
            if t.get("refused_after", 0) > t.get("refused_at_heal", 0):
                refused_only.append(int(cpu))
            else:
                out.append(
                    f"cpu{cpu} ({t.get('role', '?')}): no allocation after healing "
                    f"(allocations {t['allocs_at_heal']} -> {t['allocs_after']})"
                )
        if "runs_after" in t and t["runs_after"] <= t["runs_at_heal"]:
            out.append(
                f"cpu{cpu}: the latency task reported no run after healing "
                f"(runs {t['runs_at_heal']} -> {t['runs_after']})"
            )
    if refused_only:  # alive, but short of memory: said, not judged
        stats["liveness"] = {"refused_only": sorted(refused_only)}
