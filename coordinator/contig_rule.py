"""The drain triggers that take a PFN range, as rules: alloc_contig_range (CMA, gigantic pages), memory
offline and the range's release, effect programs (coordinator.drain.effects) that both drivers run:
coordinator.contig on the wall driver (the coordinator process), coordinator.tools.virtual_cluster on the
virtual one (docs/engine.md).

alloc_contig_range (mm/page_alloc.c, v6.1, read in torvalds/linux at dac22531bbd4), as modelled:
  start_isolate_page_range  -> the range's pageblocks become MIGRATE_ISOLATE (node.mm.isolation)
  drain_all_pages(cc.zone)  -> a zone-specific drain: it waits for pcpu_drain_mutex (never skipped), so
                               pages of the range cached on pcp lists return to the buddy's isolate lists;
                               once a call, right after the isolation
  __alloc_contig_migrate_range -> the kernel migrates the pages still in use (under lru_cache_disable:
                               the LRU pagevecs, which the model has none of); here their holders must free
                               them
  test_pages_isolated       -> every page free? If not, the call returns -EBUSY, and a caller that tries
                               again makes a new call, which isolates and drains again; here the same
                               range is drained and retested until `timeout`, as a caller that needs that
                               range would (cma_alloc instead gives a busy range back and tries the next
                               free one of its area, which the model has none of: docs/kernel-facts.md §22)
  isolate_freepages_range   -> the range leaves the buddy, recorded as owner CMA (audited)
  undo_isolate_page_range

offline_pages (mm/memory_hotplug.c, v6.0-v6.1 form, read in a stored copy) differs in its drain:
zone_pcp_disable comes first, before the range is isolated. It sets every CPU's pcp to high=0, batch=1
(__zone_set_pageset_high_and_batch(zone, 0, 1): each free then leaves the pcp at once, each refill takes a
single page) and calls __drain_all_pages(zone, force_all_cpus=true), so every CPU is drained whatever its
count. That is the offline's only drain: its loop (migrate, dissolve, test_pages_isolated) drains nothing
again, and here the retries only retest. After the range is out of the buddy (owner OFFLINE),
zone_pcp_enable restores batch and high (coordinator.pageset). The pageset reaches the nodes with their
heartbeat replies: the drain starts once every online CPU has sent a heartbeat after the one whose reply
carried high=0, so each has applied it. pcp_batch_high_lock, which keeps zone_pcp_update waiting until
zone_pcp_enable, is the Pageset's (a CPU declared dead meanwhile changes high only at the enable).

`release` gives a CMA range (cma_release) or an offline one (online_pages) back to the buddy.

No node knows these ranges, so each is written to the coordinator's store (`RangeStore`: the state
directory's file on the wall, memory that outlives a coordinator in virtual time) before the request
that took or released it answers, and a restarted coordinator takes them out of its new zone again
(`retake`) before any node's holdings are claimed: a forgotten range would be handed out to the CPUs.

Every drain these run is an ordinary drain_all_pages record with its own trigger, by the coordinator's
default strategy, kept in its drain history (`Contig.on_drain`) like any other.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from coordinator.drain import drain_all
from coordinator.drain.effects import Program, Sleep, ZoneLocked
from coordinator.drain.record import DrainRecord
from coordinator.drain.strategy import DrainerView
from coordinator.membership_rule import MembershipRule
from node.api.errors import FailedPrecondition, InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import isolation
from node.mm.buddy import PageStateError
from node.mm.zone import Zone
from node.mm.zone_rules import CMA, OFFLINE, OTHER, OWNER_KINDS

RETRY_INTERVAL_S = 0.05  # between a failed take and the next drain
PAGESET_POLL_S = 0.01  # how often offline looks whether every CPU has applied high 0
DEFAULT_TIMEOUT_MS = 5000
MAX_TIMEOUT_MS = 600_000


class RangeStore(Protocol):
    """Where the taken ranges are kept for a restarted coordinator (coordinator.store.Store)."""

    def add(self, start: int, nr_pages: int, owner: str) -> None: ...

    def remove(self, start: int, nr_pages: int) -> None: ...


class StoredRange(Protocol):
    """A range as the store keeps it (coordinator.store.TakenRange)."""

    @property
    def start(self) -> int: ...

    @property
    def nr_pages(self) -> int: ...

    @property
    def owner(self) -> str: ...


@dataclass
class Contig:
    """The coordinator as these rules use it. `wall_s`: the rules' seconds per second of the wall
    engine's figures (the request's timeout, RETRY_INTERVAL_S, PAGESET_POLL_S): 1 on the wall and in a
    virtual chaos run, whose drivers scale the rules' seconds themselves; 1/TIME_SCALE in a virtual
    compare phase, whose rules' seconds are kernel seconds."""

    zone: Zone  # the zone the requests are validated against (read off zone->lock, as the wall did)
    clock: Callable[[], float]  # an operation's duration and its timeout
    membership: MembershipRule  # offline: who must have applied the pageset
    drainer: DrainerView
    pcpu_drain_mutex: object
    strategy: pb.Strategy  # the coordinator's default: every drain of a range uses it
    pageset: Any  # coordinator.pageset.Pageset: high and batch, zone_pcp_update, zone_pcp_disable/enable
    store: RangeStore
    on_drain: Callable[[DrainRecord], object]  # the drain history (coordinator.drain.drainer.Drainer.record)
    wall_s: float = 1.0


@dataclass
class ContigResult:
    ok: bool
    start_pfn: int
    nr_pages: int
    duration_s: float = 0.0
    drains: list = field(default_factory=list)  # DrainRecord
    attempts: int = 0
    busy_pfn: int = 0
    error: str = ""

    def to_pb(self) -> pb.ContigRangeReply:
        return pb.ContigRangeReply(
            ok=self.ok,
            start_pfn=self.start_pfn,
            nr_pages=self.nr_pages,
            duration_s=self.duration_s,
            drains=[d.to_pb() for d in self.drains],
            attempts=self.attempts,
            busy_pfn=self.busy_pfn,
            error=self.error,
        )


def resolve(zone: Zone, start_pfn: int, nr_pages: int, timeout_ms: int) -> tuple[int, int, float]:
    """Validate a request; start_pfn 0 means the last nr_pages of the zone, timeout_ms 0 the default.
    Returns (start, nr_pages, timeout in the wall engine's seconds)."""
    timeout_ms = timeout_ms or DEFAULT_TIMEOUT_MS
    if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
        raise InvalidArgument(f"timeout_ms {timeout_ms} out of range 1..{MAX_TIMEOUT_MS}")
    if start_pfn == 0:
        if nr_pages > zone.end_pfn - zone.start_pfn:  # else "the last nr_pages" starts at a negative pfn
            raise InvalidArgument(f"{nr_pages} pages: more than the zone's {zone.end_pfn - zone.start_pfn}")
        start_pfn = zone.end_pfn - nr_pages
    try:
        isolation.check_range(zone, start_pfn, nr_pages)
    except PageStateError as err:
        raise InvalidArgument(str(err)) from None
    return start_pfn, nr_pages, timeout_ms / 1000.0


def alloc_contig_range(c: Contig, start_pfn: int, nr_pages: int, timeout_ms: int) -> Program[ContigResult]:
    start, nr, timeout = resolve(c.zone, start_pfn, nr_pages, timeout_ms)
    return (yield from _take(c, CMA, start, nr, timeout, c.clock(), drain_each=pb.TRIGGER_ALLOC_CONTIG))


def offline_pages(c: Contig, start_pfn: int, nr_pages: int, timeout_ms: int) -> Program[ContigResult]:
    start, nr, timeout = resolve(c.zone, start_pfn, nr_pages, timeout_ms)
    c.pageset.zone_pcp_disable()
    try:
        yield from _pageset_applied(c)
        t0 = c.clock()
        # zone_pcp_disable's __drain_all_pages(zone, true), before the range is isolated; the retries that
        # follow drain nothing: with high 0 every free leaves the pcp at once.
        drain = yield from _drain(c, True, pb.TRIGGER_MEMORY_OFFLINE)
        return (yield from _take(c, OFFLINE, start, nr, timeout, t0, drains=[drain]))
    finally:
        c.pageset.zone_pcp_enable(c.membership.alive())


def release(c: Contig, start_pfn: int, nr_pages: int) -> Program[str]:
    """The range back to the buddy; returns its owner's name (cma or offline)."""
    try:
        owner = yield ZoneLocked(_release_range, (start_pfn, nr_pages), f"release [{start_pfn}, +{nr_pages})")
    except PageStateError as err:
        raise InvalidArgument(str(err)) from None
    # After the zone: a crash in between leaves the range stored, so a restart takes it again
    # (pages withheld until it is released again), never hands out a range still in use.
    c.store.remove(start_pfn, nr_pages)
    return OWNER_KINDS[owner]


def retake(zone_service: Any, ranges: Iterable[StoredRange]) -> int:
    """At start, before recovery: the stored ranges out of a fresh zone again, recorded as their
    owners'. Each must be wholly free (the zone was just built, with only `preallocate`'s blocks taken,
    the same as when the range was taken); if one is not, the store does not describe this zone (another
    --zone-mb or --zone-used): an error, never a range silently left out. `zone_service`: the zone
    (`zone`) and its take_range, nothing else running yet. Returns base pages taken."""
    owners = {name: kind for kind, name in OWNER_KINDS.items()}
    zone = zone_service.zone
    taken = 0
    for r in ranges:
        try:
            saved = isolation.start_isolate_page_range(zone, r.start, r.nr_pages)
        except PageStateError as err:
            raise ValueError(f"stored {r.owner} range [{r.start}, {r.start + r.nr_pages}): {err}") from None
        try:
            blocks, busy, holder = zone_service.take_range(owners[r.owner], r.start, r.nr_pages)
        finally:
            isolation.undo_isolate_page_range(zone, r.start, r.nr_pages, saved)
        if blocks is None:
            raise ValueError(
                f"stored {r.owner} range [{r.start}, {r.start + r.nr_pages}): pfn {busy} is not free in the new "
                f"zone (held by {OWNER_KINDS.get(holder, holder)}): was the zone's size or --zone-used changed?"
            )
        taken += r.nr_pages
    return taken


def _pageset_applied(c: Contig) -> Program[None]:
    """Wait until every online CPU has heartbeated twice since now: the first reply carried the
    pageset, and a node applies a reply before it sends its next heartbeat. On membership's clock,
    the one its heartbeats are stamped with."""
    membership = c.membership
    for _ in range(2):
        since = membership.clock()
        deadline = since + 2 * membership.failure_timeout
        while any(m.last_heartbeat <= since for m in membership.online()):
            if membership.clock() > deadline:
                raise FailedPrecondition("the CPUs did not acknowledge the pageset change in time")
            yield Sleep(PAGESET_POLL_S * c.wall_s)


def _drain(c: Contig, force_all_cpus: bool, trigger: pb.Trigger) -> Program[DrainRecord]:
    record = yield from drain_all.drain_all_pages(c.drainer, c.pcpu_drain_mutex, c.strategy, force_all_cpus, trigger)
    c.on_drain(record)
    return record


def _take(
    c: Contig,
    owner: int,
    start: int,
    nr: int,
    timeout: float,
    t0: float,
    drains: list[DrainRecord] | None = None,
    drain_each: pb.Trigger | None = None,
) -> Program[ContigResult]:
    """Isolate the range and take it, retried until `timeout` (the request's, in the wall engine's seconds:
    see Contig.wall_s) from `t0`. `drains`: those run before (offline_pages's); `drain_each`: the trigger
    of the drain_all_pages(zone) run after the isolation on every attempt (alloc_contig_range's)."""
    result = ContigResult(False, start, nr, drains=drains or [])
    clock = c.clock
    span = f"[{start}, +{nr})"
    try:
        saved = yield ZoneLocked(_isolate, (start, nr), f"isolate {span}")
    except PageStateError as err:  # a pageblock of it is already isolated: -EBUSY
        raise FailedPrecondition(str(err)) from None
    try:
        deadline = t0 + timeout * c.wall_s
        while True:
            if drain_each is not None:
                result.drains.append((yield from _drain(c, False, drain_each)))
            result.attempts += 1
            blocks, busy, holder = yield ZoneLocked(_take_range, (owner, start, nr), f"take {span}")
            if blocks is not None:
                yield from _keep(c, owner, start, nr)
                result.ok = True
                break
            result.busy_pfn = busy
            if holder in OWNER_KINDS:
                # Taken by an earlier range (or the rest of the system at start): no drain frees it, and
                # the kernel's migration fails on such pages at once (-EBUSY), so do not wait it out.
                whose = "the rest of the system (--zone-used)" if holder == OTHER else f"a {OWNER_KINDS[holder]} range"
                result.error = f"pfn {busy} belongs to {whose} taken before: give a range that does not overlap it"
                break
            if clock() >= deadline:
                who = f"cpu {holder}" if holder is not None else "nobody"
                result.error = (
                    f"pfn {busy} is still in use (held by {who}) after {result.attempts} "
                    f"attempts in {timeout * c.wall_s:g} s; pages are not migrated here"
                )
                break
            yield Sleep(RETRY_INTERVAL_S * c.wall_s)
    finally:
        yield ZoneLocked(_undo_isolation, (start, nr, saved), f"undo isolation {span}")
    result.duration_s = clock() - t0
    return result


def _keep(c: Contig, owner: int, start: int, nr: int) -> Program[None]:
    """The range is taken: make it durable before the request answers. If it cannot be, the range goes
    back to the buddy and the call fails, so the zone and the store never disagree."""
    try:
        c.store.add(start, nr, OWNER_KINDS[owner])
    except Exception:
        yield ZoneLocked(_release_range, (start, nr), f"release [{start}, +{nr}) unstored")
        raise


# Under zone->lock, on the driver's zone service (coordinator.zone_service.ZoneService on the wall).
def _isolate(zone_service: Any, start: int, nr: int) -> list[int]:
    return isolation.start_isolate_page_range(zone_service.zone, start, nr)


def _undo_isolation(zone_service: Any, start: int, nr: int, saved: list[int]) -> None:
    isolation.undo_isolate_page_range(zone_service.zone, start, nr, saved)


def _take_range(zone_service: Any, owner: int, start: int, nr: int) -> tuple:
    return zone_service.take_range(owner, start, nr)


def _release_range(zone_service: Any, start: int, nr: int) -> int:
    return zone_service.release_range(start, nr)
