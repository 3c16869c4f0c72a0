"""The zone service's rules: what the zone decides for each request, and what zone->lock is held for.

Pure (docs/engine.md, rule 4): no I/O, no threads, no clock. Each operation is applied at once and
returns what it cost, the hold of zone->lock in kernel microseconds (CostModel.zone_hold_us, a
refill's rmqueue_hold_us), and its driver waits: coordinator.zone_service.ZoneService runs it on a
one-thread executor and sleeps the hold scaled to wall time, node.virtual.zone queues for a virtual
zone->lock and holds it for that long in virtual time. Both drivers call this one class.

Ownership: the zone records which CPU holds every block it handed out (head pfn -> (cpu, order)).
A free is checked page by page against that record *before* anything is applied, so a request that
names a page its CPU does not hold, a wrong order or a page already free is refused whole (Refused)
and changes nothing.

Idempotency: every transfer carries a key, and a retry of an applied transfer gets the first answer
back. The zone keeps the last outcome of each request stream: a (CPU, stream) slot, the stream being
the node's own CPU thread (NODE: refills and frees, one at a time, each sent again until answered;
node.zone_client) or the coordinator's drains of that CPU (DRAIN: one at a time under
pcpu_drain_mutex, keyed by the drain's token). A sender has at most one request outstanding per
stream, so a retry is always of the last request its slot saw, and nothing older can come back (the
wall driver's note on cancelled streams says why). No window of past keys is needed, so none can be
evicted under a retry (a free applied twice would be refused and its pages left with a CPU that no
longer owns them; a refill applied twice would hand the same pages out again). A slot records its
incarnation: the first request of a new incarnation replaces the old one's outcome (the membership
fences the old incarnation before anything reaches the zone), and `cpu_dead` drops the CPU's slots,
so the memory is bounded by CPUs times streams. A key is bound to its request (operation, cpu and
arguments): the same key on a different request is refused, not answered with pages another request
was given (which its sender would then record at the wrong order, or as its own). A replay and a
refusal hold zone->lock for nothing.

Watermarks: a refill or buddy allocation that would take the zone below its min watermark is refused
(`watermark_ok` False, nothing taken, no hold) and the allocating CPU enters direct reclaim: the
allocator's slow path checks ALLOC_WMARK_MIN (gfp_to_alloc_flags() in mm/page_alloc.c, v6.1) and
then calls __alloc_pages_direct_reclaim. Deviation: the kernel checks before it takes zone->lock
(zone_watermark_fast in get_page_from_freelist), and the fast path first at the low watermark, whose
failure only wakes kswapd; here the zone checks once, at min. ZONE_RECLAIM_ACTIVE stands for kswapd
at work: set when free pages fall below the low watermark (kswapd is woken when an allocation fails
the low one), cleared once they are back above high (balance_pgdat() sets it with
set_reclaim_active() and clears it once pgdat_balanced(), which tests high_wmark_pages(), holds;
Mel Gorman, "mm/page_alloc: Limit the number of pages on PCP lists when reclaim is active",
<20210525080119.5455-6-mgorman@techsingularity.net>, v5.14). No kswapd frees anything here.
"""

from typing import Generic, NamedTuple, Protocol, TypeVar

from . import isolation
from .buddy import PageStateError
from .constants import MAX_ORDER, MIGRATE_MOVABLE, Page
from .zone import Zone

OTHER = -1  # owner of pages held by the rest of the system (page cache, slab, ...)
CMA = -2  # a range taken by alloc_contig_range (coordinator.contig)
OFFLINE = -3  # a range taken by offline_pages
OWNER_KINDS = {OTHER: "other", CMA: "cma", OFFLINE: "offline"}  # owners that are not CPUs (the audit's names)
NODE = "node"  # the request streams of a CPU (see Idempotency above)
DRAIN = "drain"

T = TypeVar("T")
Blocks = list[tuple[int, int]]  # [(head pfn, order)]


class Refused(Exception):
    """The zone's records refuse the request, which changed nothing (`code` on the wire: FAILED_PRECONDITION,
    or NOT_FOUND when the coordinator's membership does not know the CPU)."""

    def __init__(self, message: str, code: str = "FAILED_PRECONDITION") -> None:
        super().__init__(message)
        self.code = code


class HoldCosts(Protocol):
    """What zone->lock is held for, in kernel microseconds (node.shared.timebase.CostModel)."""

    def zone_hold_us(self, pages: int) -> float: ...

    def rmqueue_hold_us(self, pages: int) -> float: ...


class TransferSink(Protocol):
    """Where the ownership changes no node sees are written (node.shared.transfer_log.TransferLog)."""

    def write(self, ev: str, **fields: object) -> None: ...


class Held(NamedTuple, Generic[T]):
    """An operation's result and how long it held zone->lock, in kernel microseconds."""

    value: T
    hold_us: float


# Replies and outcomes are made once per zone request, so they are named tuples: a frozen dataclass's
# __init__ sets each field through object.__setattr__, several times the cost (docs/benchmarks.md).
class ZoneReply(NamedTuple):
    pfns: tuple[int, ...] = ()
    watermark_ok: bool = True
    free_pages: int = 0
    reclaim_active: bool = False
    below_high: bool = False  # ZONE_BELOW_HIGH (node.mm.zone.Zone.check_below_high)


class _Outcome(NamedTuple):
    """The last transfer applied on one (CPU, stream) slot."""

    incarnation: str
    transfer_id: str
    key: tuple[object, ...]  # the request it answered (operation, cpu, arguments)
    reply: ZoneReply


class ZoneRules:
    def __init__(self, zone: Zone, cost: HoldCosts, transfer_log: TransferSink | None = None):
        """`transfer_log`: the ownership changes no node sees (the chaos checker's other half), or None."""
        self.zone = zone
        self.cost = cost
        self.transfer_log = transfer_log
        if transfer_log is not None:
            transfer_log.write("start")
        self.owned: dict[int, tuple[int, int]] = {}  # head pfn -> (cpu, order)
        self._last: dict[tuple[int, str], _Outcome] = {}  # (cpu, stream) -> its last transfer
        self.refused = 0  # refills refused at the min watermark

    def preallocate(self, pages: int) -> int:
        """Hand `pages` base pages to the rest of the system, in the largest blocks the zone has
        (memory pressure for direct reclaim to act on), at start, before any CPU. Returns pages taken."""
        taken = 0
        blocks = []
        order = MAX_ORDER - 1
        while taken < pages and order >= 0:
            if (1 << order) > pages - taken:
                order -= 1
                continue
            pfn = self.zone.rmqueue_buddy(order, MIGRATE_MOVABLE)
            if pfn is None:
                order -= 1
                continue
            self.owned[pfn] = (OTHER, order)
            blocks.append((pfn, order))
            taken += 1 << order
        if blocks:
            self._log("take", OTHER, blocks)
        self._update_reclaim()
        return taken

    def rmqueue(
        self, cpu: int, order: int, migratetype: int, count: int, transfer_id: str, incarnation: str
    ) -> Held[ZoneReply]:
        """A refill by the node's CPU thread (stream NODE)."""
        key = ("rmqueue", cpu, order, migratetype, count)
        slot = (cpu, NODE)
        done = self._replay(slot, incarnation, transfer_id, key)
        if done is not None:
            return Held(done, 0.0)
        zone = self.zone
        zone.check_alloc(order, migratetype)  # before the watermark: a bad order is no reason to reclaim
        if zone.free_pages - (count << order) < zone.watermark["min"]:
            zone.check_below_high(order)  # high is tested before min; an allocation tests it in the zone
            self.refused += 1
            return Held(self._reply((), False), 0.0)
        pfns: tuple[int, ...]
        if count == 1:
            pfn = zone.rmqueue_buddy(order, migratetype)
            pfns = () if pfn is None else (pfn,)
        else:
            pfns = tuple(zone.rmqueue_bulk(order, count, migratetype))
        self.owned.update(dict.fromkeys(pfns, (cpu, order)))
        reply = self._remember(slot, _Outcome(incarnation, transfer_id, key, self._reply(pfns, True)))
        return Held(reply, self.cost.rmqueue_hold_us(len(pfns)))

    def free_pages(
        self, cpu: int, pages: list[Page], transfer_id: str, incarnation: str, stream: str, commit: bool = False
    ) -> Held[ZoneReply]:
        """Pages of `cpu` back to the buddy: sent by the node (stream NODE) or by a drainer that
        took them off its lists (DRAIN). `commit`: the flush of the node's free_unref_page_commit, after
        which the zone tests whether ZONE_BELOW_HIGH still holds (Zone.commit_flushed)."""
        key = ("free", cpu, commit, tuple(pages))
        slot = (cpu, stream)
        done = self._replay(slot, incarnation, transfer_id, key)
        if done is not None:
            return Held(done, 0.0)
        owned = self.owned
        for pfn, order, _ in pages:
            holder = owned.get(pfn)
            if holder != (cpu, order):
                zone = self.zone
                if not zone.start_pfn <= pfn < zone.end_pfn:
                    recorded = f"no such pfn (the zone is [{zone.start_pfn}, {zone.end_pfn}))"
                else:
                    recorded = "it as free" if holder is None else f"cpu {holder[0]} holding it at order {holder[1]}"
                raise Refused(f"cpu {cpu} frees pfn {pfn} order {order}, but the zone records {recorded}")
        if len({pfn for pfn, _, _ in pages}) != len(pages):  # each recorded block once, so no page twice
            raise Refused(f"cpu {cpu} frees a pfn twice in one request")
        self.zone.free_one_page_list(pages)
        if commit:
            self.zone.commit_flushed()
        for pfn, _, _ in pages:
            del owned[pfn]
        reply = self._remember(slot, _Outcome(incarnation, transfer_id, key, self._reply((), True)))
        return Held(reply, self.cost.zone_hold_us(len(pages)))

    def cpu_dead(self, cpu: int) -> Held[int]:
        """page_alloc_cpu_dead -> drain_pages(cpu): a CPU's process is gone, and with it its pcp
        lists and the pages its tasks held; every block the zone records as that CPU's goes back to
        the free lists. Returns base pages reclaimed."""
        for stream in (NODE, DRAIN):  # that incarnation sends nothing more
            self._last.pop((cpu, stream), None)
        blocks = [(pfn, order) for pfn, (owner, order) in self.owned.items() if owner == cpu]
        for pfn, order in blocks:
            del self.owned[pfn]
            self.zone.free_one_page(pfn, order, self.zone.get_pageblock_migratetype(pfn))
        self._log("cpu_dead", cpu)
        self._update_reclaim()
        return Held(sum(1 << order for _, order in blocks), self.cost.zone_hold_us(len(blocks)))

    def claim(self, cpu: int, pages: list[Page]) -> int:
        """Rebuild: record blocks a node reports holding as that CPU's, taking them off the free
        lists. All or nothing: a block that is not wholly free (another holder reported it, or it
        overlaps one of this report's) is refused and nothing changes. Returns base pages claimed.
        Recovery, not a kernel path: no modeled hold.

        A refusal is written to the transfer log too (`claim-refused`, with the block it stopped at):
        each process reports only what it holds, so two reports of one page mean one of them was wrong,
        and the chaos checker holds every such refusal as a finding (coordinator.tools.chaos.transfers)."""
        taken = []
        try:
            for pfn, order, _ in pages:
                taken.append((pfn, order, self.zone.take_page_off_buddy(pfn, order)))
        except PageStateError as err:
            for pfn, order, mt in reversed(taken):
                self.zone.free_one_page(pfn, order, mt)
            at_pfn, at_order, _ = pages[len(taken)]
            self._log("claim-refused", cpu, [(pfn, order) for pfn, order, _ in pages], at=[at_pfn, at_order])
            raise Refused(f"cpu {cpu} reports holding pages the zone cannot give it: {err}") from None
        for pfn, order, _ in taken:
            self.owned[pfn] = (cpu, order)
        self._log("claim", cpu, [(pfn, order) for pfn, order, _ in taken])
        self._update_reclaim()
        return sum(1 << order for _, order, _ in taken)

    def take_range(self, owner: int, start: int, nr_pages: int) -> Held[tuple[Blocks | None, int | None, int | None]]:
        """The range's pages, isolated, out of the buddy and recorded as `owner`'s (CMA or OFFLINE):
        (blocks, None, None); or, if a page is still in use, (None, busy pfn, its holder) and nothing
        changes."""
        busy = isolation.test_pages_isolated(self.zone, start, nr_pages)
        if busy is not None:
            return Held((None, busy, self.holder_of(busy)), 0.0)
        blocks = isolation.take_isolated_range(self.zone, start, nr_pages)
        for pfn, order in blocks:
            self.owned[pfn] = (owner, order)
        self._log("take", owner, blocks)
        self._update_reclaim()
        return Held((blocks, None, None), self.cost.zone_hold_us(len(blocks)))

    def release_range(self, start: int, nr_pages: int) -> Held[int]:
        """cma_release / online_pages: the range, recorded whole as one CMA or OFFLINE owner's, back
        to the buddy; returns the owner. Anything else is refused and changes nothing (a range the
        zone cannot hold at all is a PageStateError)."""
        blocks = isolation.range_blocks(start, isolation.check_range(self.zone, start, nr_pages))
        # By owner alone: a range not aligned to MAX_ORDER is blocks of several orders.
        owners = {self.owned.get(pfn, (None, 0))[0] for pfn, _ in blocks}
        owner = next(iter(owners)) if len(owners) == 1 else None
        if owner not in (CMA, OFFLINE) or any(self.owned[pfn][1] != order for pfn, order in blocks):
            raise Refused(
                f"range [{start}, {start + nr_pages}) is not one taken range "
                "(AllocContigRange or OfflinePages of exactly these pages)"
            )
        for pfn, order in blocks:
            del self.owned[pfn]
            self.zone.free_one_page(pfn, order, self.zone.get_pageblock_migratetype(pfn))
        self._log("release", owner, blocks)
        self._update_reclaim()
        return Held(owner, self.cost.zone_hold_us(len(blocks)))

    def holder_of(self, pfn: int) -> int | None:
        """The owner recorded for the block containing `pfn` (a CPU or an OWNER_KINDS key), or None."""
        for k in range(MAX_ORDER):
            held = self.owned.get(pfn & ~((1 << k) - 1))
            if held is not None and held[1] >= k:
                return held[0]
        return None

    def holdings(self) -> dict[int, Blocks]:
        """Pages handed out, by owner: cpu -> [(pfn, order)]."""
        out: dict[int, Blocks] = {}
        for pfn, (cpu, order) in self.owned.items():
            out.setdefault(cpu, []).append((pfn, order))
        return out

    # ------------------------------------------------------------- helpers
    def _reply(self, pfns: tuple[int, ...], ok: bool) -> ZoneReply:
        self._update_reclaim()
        zone = self.zone
        return ZoneReply(pfns, ok, zone.free_pages, zone.reclaim_active, zone.below_high)

    def _replay(
        self, slot: tuple[int, str], incarnation: str, transfer_id: str, key: tuple[object, ...]
    ) -> ZoneReply | None:
        """The first answer, if this is a retry of the slot's last transfer; None if it is new."""
        last = self._last.get(slot)
        if last is None or last.incarnation != incarnation or last.transfer_id != transfer_id:
            return None
        if last.key != key:
            raise Refused(f"transfer_id {transfer_id[:40]!r} was already used for another request")
        return last.reply

    def _remember(self, slot: tuple[int, str], outcome: _Outcome) -> ZoneReply:
        self._last[slot] = outcome
        return outcome.reply

    def _log(self, ev: str, owner: int, blocks: Blocks | None = None, **fields: object) -> None:
        if self.transfer_log is not None:
            extra = {} if blocks is None else {"pages": [[pfn, order] for pfn, order in blocks]}
            self.transfer_log.write(ev, owner=owner, **extra, **fields)

    def _update_reclaim(self) -> None:
        zone = self.zone
        if zone.free_pages < zone.watermark["low"]:
            zone.reclaim_active = True
        elif zone.free_pages >= zone.watermark["high"]:
            zone.reclaim_active = False
