"""The zone's rules under seeded random traffic, good and bad requests mixed: whatever a request does,
every page of the zone stays either free or recorded as exactly one holder's, each CPU's records
agree with what the zone's replies handed it, and a request that is refused or raises changes
nothing. Found this way (the wall node's requests are checked at the RPC, so only in-process callers
met them): a free that named one of its CPU's pages twice, or a page with a migratetype out of range,
was applied up to that page and then raised; and a refill with an order out of range, asking for
more than the zone held, came back as a watermark refusal (which sends a node into direct reclaim)."""

import random

import pytest

from node.mm.audit import audit
from node.mm.buddy import PageStateError
from node.mm.constants import (
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    pageblock_nr_pages,
)
from node.mm.zone import Zone
from node.mm.zone_rules import CMA, DRAIN, NODE, Refused, ZoneRules
from node.shared.timebase import CostModel

PAGES = 16384
CPUS = 4
ORDERS = (0, 0, 0, 1, 2, 3, 9)
TYPES = (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE)
STEPS = 1500


class Traffic:
    """One seeded run: the rules, and what each CPU holds by the replies it was given."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.zr = ZoneRules(Zone(0, PAGES, CPUS), CostModel())
        self.held: dict[int, dict[int, tuple[int, int]]] = {cpu: {} for cpu in range(CPUS)}  # pfn -> (order, mt)
        self.ranges: list[tuple[int, int]] = []  # (start, nr_pages) taken for CMA
        self.n = 0
        self.last: dict[tuple[int, str], tuple] = {}  # (cpu, stream) -> its last request, to retry
        self.refused = self.applied = 0

    def snapshot(self) -> tuple:
        zone = self.zr.zone
        return dict(self.zr.owned), sorted(zone.free_blocks()), zone.free_pages

    def tid(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def step(self) -> None:
        rng, cpu = self.rng, self.rng.randrange(CPUS)
        op = rng.choice(
            ("rmqueue", "rmqueue", "free", "free", "retry", "bad_rmqueue", "bad_free", "dead", "claim", "range")
        )
        before = self.snapshot()
        try:
            getattr(self, op)(cpu)
        except (Refused, PageStateError, ValueError):
            self.refused += 1
            assert self.snapshot() == before, op  # refused whole
        else:
            self.applied += 1
        holders = {f"cpu{c}": [(pfn, o) for pfn, (o, _) in pages.items()] for c, pages in self.held.items()}
        holders["cma"] = [(pfn, o) for pfn, (owner, o) in self.zr.owned.items() if owner == CMA]
        report = audit(self.zr.zone, holders)
        assert report.ok, (op, report.to_dict())
        for c, pages in self.held.items():
            assert {pfn: o for pfn, (o, _) in pages.items()} == {
                pfn: o for pfn, (owner, o) in self.zr.owned.items() if owner == c
            }, (op, c)

    def rmqueue(self, cpu: int) -> None:
        order, mt = self.rng.choice(ORDERS), self.rng.choice(TYPES)
        count = 1 if order == 9 else self.rng.randrange(1, 70)
        request = ("rmqueue", cpu, order, mt, count, NODE, self.tid())
        reply = self.send(request)
        for pfn in reply.pfns:
            self.held[cpu][pfn] = (order, mt)
        if reply.watermark_ok:  # a refill refused at the min watermark changed nothing and is not kept
            self.last[(cpu, NODE)] = (request, reply)

    def bad_rmqueue(self, cpu: int) -> None:
        """A refill the zone cannot serve as asked: an order or a migratetype out of range."""
        order, mt = self.rng.choice([(MAX_ORDER, MIGRATE_MOVABLE), (-1, MIGRATE_MOVABLE), (0, MIGRATE_TYPES), (0, -1)])
        self.zr.rmqueue(cpu, order, mt, self.rng.choice((1, 8)), self.tid(), "a")
        raise AssertionError(f"a refill of order {order}, migratetype {mt} was applied")

    def free(self, cpu: int) -> None:
        pages = list(self.held[cpu].items())
        picked = self.rng.sample(pages, min(len(pages), self.rng.randrange(1, 64)))
        stream = self.rng.choice((NODE, DRAIN))
        request = ("free", cpu, [(pfn, o, mt) for pfn, (o, mt) in picked], stream, self.tid())
        reply = self.send(request)
        for pfn, _ in picked:
            del self.held[cpu][pfn]
        self.last[(cpu, stream)] = (request, reply)

    def retry(self, cpu: int) -> None:
        """The last request a (CPU, stream) slot had applied, sent again with its key, as a sender
        does whose reply was lost (other CPUs' traffic, and the CPU's other stream, in between): the
        first answer comes back, and nothing changes."""
        stream = self.rng.choice((NODE, DRAIN))
        if (cpu, stream) in self.last:
            request, reply = self.last[(cpu, stream)]
            before = self.snapshot()
            assert self.send(request) == reply
            assert self.snapshot() == before

    def send(self, request: tuple):
        if request[0] == "rmqueue":
            _, cpu, order, mt, count, _, tid = request
            return self.zr.rmqueue(cpu, order, mt, count, tid, "a").value
        _, cpu, pages, stream, tid = request
        return self.zr.free_pages(cpu, pages, tid, "a", stream).value

    def bad_free(self, cpu: int) -> None:
        """A free that must be refused whole: a page named twice, another CPU's page, a free page,
        the wrong order, a migratetype out of range, a pfn outside the zone; mixed with pages the CPU
        does hold."""
        rng = self.rng
        mine = [(pfn, o, mt) for pfn, (o, mt) in self.held[cpu].items()]
        others = [(pfn, o, mt) for c, pages in self.held.items() if c != cpu for pfn, (o, mt) in pages.items()]
        picked = rng.sample(mine, min(len(mine), rng.randrange(1, 9)))
        good, spare = picked[1:], picked[:1]  # `spare`: a held page the bad entry may misdescribe
        bad = rng.choice(
            [
                good[:1],  # named twice
                [rng.choice(others)] if others else [],
                [(next(iter(self.zr.zone.free_blocks()))[0], 0, MIGRATE_MOVABLE)],
                [(pfn, o + 1, mt) for pfn, o, mt in spare],
                [(pfn, o, MIGRATE_TYPES) for pfn, o, _ in spare],
                [(PAGES + 7, 0, MIGRATE_MOVABLE)],
            ]
        )
        if not bad:
            raise Refused("no bad page to name")  # nothing sent: still nothing changed
        pages = good + bad
        rng.shuffle(pages)
        self.zr.free_pages(cpu, pages, self.tid(), "a", rng.choice((NODE, DRAIN)))
        raise AssertionError(f"a free of {pages} was applied")

    def dead(self, cpu: int) -> None:
        """page_alloc_cpu_dead: every block recorded as the CPU's back to the buddy, its slots gone."""
        if self.rng.random() < 0.5:
            return
        self.zr.cpu_dead(cpu)
        self.held[cpu] = {}
        self.last = {slot: req for slot, req in self.last.items() if slot[0] != cpu}

    def claim(self, cpu: int) -> None:
        """A recovering zone's claim of the blocks a node reports holding: free blocks it may take,
        sometimes with a block that is not wholly free (another's page, or one of its own twice)."""
        rng = self.rng
        free = [(pfn, o, mt) for pfn, o, mt in self.zr.zone.free_blocks() if o <= 3]
        report = rng.sample(free, min(len(free), rng.randrange(1, 4)))
        held = [(pfn, o, mt) for pages in self.held.values() for pfn, (o, mt) in pages.items()]
        report += rng.choice([[], [], [rng.choice(held)] if held else [], report[:1]])
        self.zr.claim(cpu, report)
        for pfn, o, mt in report:
            self.held[cpu][pfn] = (o, mt)

    def range(self, cpu: int) -> None:
        """alloc_contig_range's take of a pageblock-aligned range (refused while a page is in use),
        or the release of one taken before; or a release of a range that was never taken."""
        rng = self.rng
        if self.ranges and rng.random() < 0.5:
            start, nr = self.ranges.pop(rng.randrange(len(self.ranges)))
            self.zr.release_range(start, nr)
            return
        start = rng.randrange(0, PAGES // pageblock_nr_pages) * pageblock_nr_pages
        nr = pageblock_nr_pages * rng.choice((1, 2))
        if rng.random() < 0.2:
            if any(start < s + n and s < start + nr for s, n in self.ranges):
                return  # adjacent taken ranges may be released as one, as cma_release allows
            self.zr.release_range(start, nr)  # no page of it taken as a range: refused
            raise AssertionError("a release of a range never taken was applied")
        blocks, busy, holder = self.zr.take_range(CMA, start, nr).value
        if blocks is not None:
            self.ranges.append((start, nr))
        else:  # refused, naming a page of the range in use and who holds it
            assert start <= busy < start + nr and holder == self.zr.holder_of(busy) is not None


@pytest.mark.parametrize("seed", range(6))
def test_the_zone_rules_under_random_traffic_keep_every_page_once_and_refuse_bad_requests_whole(seed):
    traffic = Traffic(seed)
    for _ in range(STEPS):
        traffic.step()
    assert traffic.applied > STEPS // 3 and traffic.refused > STEPS // 10  # both kinds were exercised
