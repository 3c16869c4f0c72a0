"""What runs next on one simulated CPU: the scheduling rule, with no threads, sleeps or clock reads.

A rule module (docs/engine.md): it decides; a driver does the running and the waiting. The wall
driver is node.cpu's CPU thread (a blocking sleep per modeled stretch), the virtual driver is
node.virtual.cpu (virtual time). Both call `RunQueue.pick` at every decision point, so the rule
below exists once:

- a paused CPU runs no task or IRQ; it still runs queued work (the kworker is how a drain reaches
  a paused CPU), and is parked otherwise. Held paused by MEMBERSHIP, not even queued work runs: the
  node is rejoining (CPU hotplug's offline and online) and reports what it holds, which a work item
  freeing pages to the zone at the same time would make wrong (the pages neither in the report nor,
  if the free is refused and they go back on the lists, in the zone's records); the work runs once
  the CPU is online again;
- after a pause every source restarts its period from now (the pause is no lateness);
- an RT (SCHED_FIFO-like) source that is due runs before queued work (kworkers are SCHED_OTHER);
- otherwise queued work runs before a due source (a preemptible task also lets it run at each of
  its preemption points: node.tasks);
- otherwise the due source that was due first runs; ties go to the first in `sources` order;
- otherwise the CPU idles until the earliest `next_wake`, or until woken (work queued, a pause).

Ties are broken by list order, never by identity or hash, so the same inputs give the same choice
on every run and machine.
"""

from collections.abc import Sequence
from typing import NamedTuple, Protocol

SOURCE = "source"  # run one step of `Decision.source`
WORK = "work"  # run one queued work item
IDLE = "idle"  # nothing to do until `Decision.until` (or a wake-up)
PARK = "park"  # paused at the safe point until the pause is dropped (or work it may run is queued)


class Source(Protocol):
    """What runs on a CPU besides its kworker: a task or an IRQ source (node.tasks)."""

    rt: bool
    next_wake: float

    def rebase(self, now: float) -> None: ...

    def step(self, cpu) -> None: ...  # cpu: the driver's CPU (node.cpu.Cpu or node.virtual.cpu.VirtualCpu)


class Decision(NamedTuple):  # a named tuple: one is made at every decision, a frozen dataclass costs more
    kind: str  # SOURCE, WORK, IDLE or PARK
    source: Source | None = None  # SOURCE: which
    until: float | None = None  # IDLE: the earliest next_wake; None when the CPU has no source at all


class RunQueue:
    """One CPU's scheduling state: only whether it was paused since it last ran a source."""

    def __init__(self) -> None:
        self.resumed = False

    def pick(
        self, now: float, sources: Sequence[Source], work_pending: bool, paused: bool, membership_held: bool
    ) -> Decision:
        """The next thing this CPU does at `now`. `membership_held`: MEMBERSHIP is among those holding
        it paused (node.cpu.Cpu.set_paused)."""
        if paused:
            self.resumed = True
            return Decision(WORK if work_pending and not membership_held else PARK)
        if self.resumed:
            for source in sources:
                source.rebase(now)
            self.resumed = False
        # One pass over the sources for the three rules below (a CPU decides at every step): the first
        # due RT source in list order; the first of the due sources due earliest; the earliest wake.
        first_due: Source | None = None
        earliest: float | None = None
        for source in sources:
            wake = source.next_wake
            if wake <= now:
                if source.rt:
                    return Decision(SOURCE, source)
                if first_due is None or wake < first_due.next_wake:
                    first_due = source
            if earliest is None or wake < earliest:
                earliest = wake
        if work_pending:
            return Decision(WORK)
        if first_due is not None:
            return Decision(SOURCE, first_due)
        return Decision(IDLE, until=earliest)
