"""Conservation at every instant: the transfer logs of a run replayed (node.shared.transfer_log).

Every node logs the pages that join it (refills) and leave it (frees the zone applied, commits
to a drainer, a discard), each allocation, and the coordinator's zone what no node sees (a
zone built, the system's share, CMA and offline ranges, resumed CPUs' claims, page_alloc_cpu_dead).
All with one clock (CLOCK_MONOTONIC, shared by the processes of one host), converted here to
the history's time (seconds since its start).

Replayed in time order, a page has at most one owner at a time:
- a CPU holds a page from the moment the refill's answer reached it (or a free of it failed:
  the node keeps it, unless a zone started since the free was sent, which owes it to nobody until
  the CPU's claim) until the moment it let it go (a free sent, a commit accepted, a discard),
  or until the coordinator took it back (cpu_dead, or a coordinator start: a rebuilt zone owes
  nobody anything until a claim), or until its process was killed (the history's kill-node, written
  once the process is gone): a dead process's memory holds nothing, whether or not a coordinator
  ever hears of it (one that started after the page's refill has no record of it to take back);
  an incarnation declared dead holds nothing from then on;
- the system's share, a CMA or offline range, from its take to its release.
A claim the zone refused (`claims_in_conflict`) is a finding too: it names a page the zone records
as another owner's, and a process reports only the pages it holds.
A page joining an owner while another holds it is a finding (`pages_held_twice`): the same
page was in two places at once, whatever the final audit shows. The safe order of every
handover (the node lets a page go before the zone frees it; the zone hands it out before the
next owner hears of it) is what makes the replay strict without any slack.

The coordinator takes a CPU's pages back at cpu_dead because that CPU has stopped using them:
its lease ran out first. An incarnation that allocates after a cpu_dead of its CPU was still
running on pages the zone may already have handed to another CPU (`allocated_after_cpu_dead`),
whether or not another CPU happened to take them in time. A refill's answer that reaches it
after the cpu_dead is no finding, and its pages join nobody: the zone applies no refill of a
dead incarnation (it checks under zone->lock), so this one was applied before and cpu_dead
took its pages back with the rest; the node, its lease over, does not use them (a use would
be an allocation: node.alloc reads the lease again once a refill is answered, since the
allocation that waited for it started within the lease) and discards them when it hears
(stop-node-past-dead: a node SIGSTOPped with its refill in flight; sweep seed 1127,
tests/chaos/refill-answered-after-cpu-dead.toml, where the task took one before 2026-12-06).
A cpu_dead bars allocations until a zone of a newer epoch takes the CPU's claim: the incarnation
then registered there, resuming (the coordinator that declared it dead had died, and its successor
never heard of it), and runs under that zone's lease; the recovery's check of conflicting claims,
not the old cpu_dead, keeps its pages its own.

Every coordinator's zone writes to the one coordinator log, each line with its `epoch`. Once a zone
of a newer epoch has started, an older coordinator still running (second-coordinator: the first,
resumed) changes only its own memory, which no node that heard of the newer one obeys: its lines
(its reaper's cpu_dead above all) are not the zone's and are skipped (`superseded`). Lines without
an epoch (logs of an older pcpsim) are all one zone's, as before. A node's refill line carries the
epoch of the zone that answered it: one of an older zone than the newest started (its reply crossed
that start) joins nobody, as the pages held at the start do.
"""

import glob
import os
from collections.abc import Sequence

from coordinator.tools.chaos.history import read_lines

LOG_GLOB = "transfers-*.jsonl"
EXAMPLES = 5
_OWNER_NAMES = {-1: "other", -2: "cma", -3: "offline"}  # coordinator.zone_service's OWNER_KINDS


def log_paths(run_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(run_dir, LOG_GLOB)))


def load(run_dir: str, history: list[dict]) -> list[dict] | None:
    """Every transfer log of the run, in time order, `t` on the history's clock; None if the run
    kept none (or its history does not say where its clock started)."""
    clock = next((e for e in history if e["type"] == "meta" and e["f"] == "clock"), None)
    paths = log_paths(run_dir)
    if clock is None or not paths:
        return None
    t0 = clock["monotonic_t0"]
    events = []
    for path in paths:
        lines = read_lines(path)
        for e in lines:
            e["t"] = e["t"] - t0
        events += mark_allocs(lines)
    events.sort(key=lambda e: e["t"])  # stable: one process's lines keep their order
    return events


def mark_allocs(lines: list[dict]) -> list[dict]:
    """One process's log lines, in the order it wrote them, each allocation marked with `seen`: the time
    of the last refill line written before it, if later than its own `t`. An allocation line's `t` is its
    lease check (node.alloc), made before the refill that may have brought its page; the page was handed
    out after that refill's line, so who holds it is read then (`check`: a page allocated while another
    owner holds it)."""
    refilled = float("-inf")
    for e in lines:
        if e.get("ev") == "refill":
            refilled = max(refilled, e["t"])
        elif e.get("ev") == "alloc" and refilled > e["t"]:
            e["seen"] = refilled
    return lines


def _name(owner) -> str:
    return f"cpu{owner}" if owner >= 0 else _OWNER_NAMES.get(owner, str(owner))


def _base_pfns(pages) -> list[int]:
    """Every base pfn of `pages` ([pfn, order] blocks), as one list: the replay's loops are the checker's
    hot path (a run's refills and frees, page by page), and a list feeds them faster than a generator."""
    return [base for pfn, order in pages for base in range(pfn, pfn + (1 << order))]


class _Replay:
    def __init__(self) -> None:
        self.holder: dict[int, tuple[int, float]] = {}  # base pfn -> (owner, since)
        self.held: dict[int, set[int]] = {}  # owner -> its base pfns
        self.twice: list[str] = []
        self.twice_n = 0

    def join(self, owner: int, pages, t: float, confirm: bool = False) -> None:
        """`confirm`: a claim, the zone recording what the CPU says it holds (it may hold them already)."""
        holder, get = self.holder, self.holder.get
        base = _base_pfns(pages)
        since = (owner, t)
        for pfn in base:
            cur = get(pfn)
            if cur is not None:  # rare: a claim of pages it holds, or a finding
                if confirm and cur[0] == owner:
                    continue  # held since earlier: it keeps that `since`
                self.twice_n += 1
                if len(self.twice) < EXAMPLES:
                    was, was_since = cur
                    self.twice.append(
                        f"pfn {pfn}: {_name(owner)} got it at {t:.3f}s while "
                        + (
                            f"{_name(was)} held it (since {was_since:.3f}s)"
                            if was != owner
                            else f"holding it (since {was_since:.3f}s)"
                        )
                    )
                self.held[cur[0]].discard(pfn)
            holder[pfn] = since
        self.held.setdefault(owner, set()).update(base)

    def allocated(self, cpu: int, pfn: int, t: float) -> None:
        """`cpu` allocated `pfn` (its lease checked at `t`): a page another owner holds was in two places."""
        cur = self.holder.get(pfn)
        if cur is None or cur[0] == cpu:
            return
        self.twice_n += 1
        if len(self.twice) < EXAMPLES:
            self.twice.append(
                f"pfn {pfn}: cpu{cpu} allocated it at {t:.3f}s while {_name(cur[0])} held it (since {cur[1]:.3f}s)"
            )

    def leave(self, owner: int, pages) -> None:
        holder, get = self.holder, self.holder.get
        # Not those it no longer holds: taken back before (cpu_dead, a restart).
        mine = [pfn for pfn in _base_pfns(pages) if (cur := get(pfn)) is not None and cur[0] == owner]
        for pfn in mine:
            holder.pop(pfn, None)  # not del: a page named twice in one line is in `mine` twice
        if mine:
            self.held[owner].difference_update(mine)

    def leave_all(self, owner: int) -> None:
        for pfn in self.held.pop(owner, set()):
            del self.holder[pfn]


def _refused_claim(replay: _Replay, e: dict) -> str:
    """A claim-refused line as a finding, with the owners the replay knows of the block it stopped at."""
    pfn, order = e["at"]
    holders: dict[int, float] = {}  # owner -> since when it held a page of the block, the earliest
    for base in _base_pfns([e["at"]]):
        if cur := replay.holder.get(base):
            holders[cur[0]] = min(cur[1], holders.get(cur[0], cur[1]))
    held = ", ".join(f"{_name(who)}'s since {since:.3f}s" for who, since in sorted(holders.items()))
    return (
        f"cpu{e['owner']}'s claim of {sum(1 << o for _, o in e['pages'])} base pages was refused at {e['t']:.3f}s: "
        f"the zone could not give it pfn {pfn} (order {order}), {held or 'held by no owner the logs name'}"
    )


def kills(history: list[dict]) -> list[dict]:
    """The history's node kills that took effect, as events of the replay: {"t", "ev": "killed", "cpu"}."""
    return [
        {"t": e["t"], "ev": "killed", "cpu": e["cpu"]}
        for e in history
        if e["type"] == "fault"
        and e["f"] == "kill-node"
        and e.get("phase") == "start"
        and "error" not in e
        and "cpu" in e  # an older pcpsim's wall history does not name it
    ]


def check(events: list[dict], findings: dict[str, list[str]], stats: dict, killed: Sequence[dict] = ()) -> None:
    """`killed`: the kills (`kills`), each after the log lines of its instant."""
    counts = {"events": len(events), "cpu_dead": 0, "coordinator_starts": 0, "allocs": 0, "superseded": 0}
    newest = None  # the epoch of the newest zone started
    started = float("-inf")  # when it started
    # cpu -> {(pfn, order): when its free was sent}: a keep undoes its free, and joins only if no zone
    # started since (then the node's holdings are the CPU's again only by its claim, like the pages it held).
    sent: dict[int, dict[tuple[int, int], float]] = {}
    # Each allocation is also looked at where its page was handed out (`mark_allocs`), after the lines of
    # that instant: the page must then be its CPU's, or nobody's the replay knows of (a rebuilt zone owes
    # the pages a CPU held at its start to nobody until the CPU's claim).
    held_checks = [
        {"t": e.get("seen", e["t"]), "ev": "alloc-held", "cpu": e["cpu"], "pfn": e["pfn"], "alloc_t": e["t"]}
        for e in events
        if e["ev"] == "alloc" and "pfn" in e
    ]
    rank = {"killed": 1, "alloc-held": 2}
    events = sorted([*events, *killed, *held_checks], key=lambda e: (e["t"], rank.get(e["ev"], 0)))
    replay = _Replay()
    dead_at: dict[int, list[tuple[float, int]]] = {}  # cpu -> (time, epoch) of each cpu_dead that holds
    first: dict[tuple[int, str], float] = {}  # (cpu, incarnation) -> its first event
    late: dict[tuple[int, str], list] = {}  # (cpu, inc) -> [cpu_dead t, first late alloc, n, last late alloc t]
    conflicts: list[str] = []  # the current zone's claims it refused
    for e in events:
        ev, t = e["ev"], e["t"]
        if ev == "killed":
            replay.leave_all(e["cpu"])
            continue
        if ev == "alloc-held":
            replay.allocated(e["cpu"], e["pfn"], e["alloc_t"])
            continue
        if ev == "drain":
            # Evidence for drains_reached.check, not a transfer, and no sign that its incarnation had started:
            # a restarted process answers a drainer before it registers (its lists empty), so the line can come
            # before its predecessor's cpu_dead.
            continue
        if "inc" in e:  # a node's
            cpu = e["cpu"]
            key = (cpu, e["inc"])
            first.setdefault(key, t)
            dead = [d for d, _ in dead_at.get(cpu, []) if first[key] < d < t]
            if ev == "alloc":
                counts["allocs"] += 1
                if dead:
                    entry = late.setdefault(key, [dead[0], f"alloc of pfn {e['pfn']} at {t:.3f}s", 0, t])
                    entry[2] += 1
                    entry[3] = t
            if ev == "refill" and e.get("epoch") and newest is not None and e["epoch"] < newest:
                # Applied by a zone older than the newest started, its answer arriving after that start
                # (the reply crossed it): the rebuilt zone owes it to nobody until the CPU's claim, like the
                # pages the CPU held at the start.
                counts["superseded"] += 1
                continue
            if ev == "keep":
                # A free sent to a zone that a newer one has replaced since (seed 4020 under the wall engine:
                # cpu2 partitioned with its free in flight; the rebuilt zone gave the pages to cpu1, and the
                # free, refused when the partition healed, was undone): the node keeps them, unclaimed.
                mine = sent.setdefault(cpu, {})
                kept = [b for b in e["pages"] if mine.pop((b[0], b[1]), t) >= started]
                counts["superseded"] += len(kept) < len(e["pages"])
                if kept and not dead:
                    replay.join(cpu, kept, t)
            elif ev == "refill" and not dead:
                replay.join(cpu, e["pages"], t)
            elif ev in ("free", "commit"):
                if ev == "free":
                    sent.setdefault(cpu, {}).update(((b[0], b[1]), t) for b in e["pages"])
                replay.leave(cpu, e["pages"])
            elif ev == "discard":
                replay.leave_all(cpu)
            continue
        epoch = e.get("epoch")
        if epoch is not None and newest is not None and epoch < newest:
            counts["superseded"] += 1  # a replaced coordinator's own zone: no CPU's pages are there
            continue
        if ev == "start":
            newest = epoch if epoch is not None else newest
            started = t
            counts["coordinator_starts"] += 1
            for who in list(replay.held):
                replay.leave_all(who)
            continue
        owner = e["owner"]  # every other line of the zone's names one
        if ev == "claim" and owner in dead_at:
            # A newer zone took the CPU's claim: it registered there, resuming, and runs under that zone's
            # lease; an older zone's cpu_dead (which the newer never heard of) no longer bars its allocations.
            dead_at[owner] = [(d, ep) for d, ep in dead_at[owner] if ep >= e.get("epoch", 0)]
        if ev == "claim-refused":
            # The zone refuses a claim for a block that is not free: another CPU claimed it, the zone handed
            # it out, or it is the system's share. A process reports only what it holds, so one of the two
            # owners' records was wrong. The refused CPU starts afresh, so no page is used twice, and until
            # 2026-12-07 such a run was valid (sweep seed 4365 under remote, wall engine: two honest CPUs lost
            # their holdings to a stale claim; tests/chaos/claim-from-before-a-rebuilt-zone.toml).
            conflicts.append(_refused_claim(replay, e))
        elif ev in ("take", "claim"):
            replay.join(owner, e["pages"], t, confirm=ev == "claim")
        elif ev == "release":
            replay.leave(owner, e["pages"])
        elif ev == "cpu_dead":
            counts["cpu_dead"] += 1
            dead_at.setdefault(owner, []).append((t, e.get("epoch", 0)))
            replay.leave_all(owner)
    out = findings.setdefault("pages_held_twice", [])
    out += replay.twice
    if replay.twice_n > len(replay.twice):
        out.append(f"... {replay.twice_n} pages held twice in all")
    findings.setdefault("claims_in_conflict", []).extend(conflicts)
    out = findings.setdefault("allocated_after_cpu_dead", [])
    for (cpu, inc), (dead, what, n, last_alloc) in sorted(late.items()):
        out.append(
            f"cpu{cpu} (incarnation {inc[:8]}): the coordinator took its pages back (cpu_dead) at {dead:.3f}s, "
            f"then its first {what}; {n} such in all, its last allocation at {last_alloc:.3f}s"
        )
    stats["transfers"] = counts
    # What the zone's log leaves with the owners that are not CPUs, for the checker to hold against the final
    # audit (checker._owners_logged).
    stats["owners_logged"] = {name: len(replay.held.get(owner, ())) for owner, name in _OWNER_NAMES.items()}
