"""The zone's rules (node.mm.zone_rules), which both drivers call: idempotency slots, refusal at the
min watermark, ZONE_RECLAIM_ACTIVE, cpu_dead, ownership errors, and the hold each operation costs.

Idempotency, the issue's reproduction: the zone used to remember the last 65,536 transfers, and a
retry whose key had been evicted was treated as new. With that window shrunk to 4, a free whose
reply was lost, retried after other CPUs' traffic, was refused (the pages went to another CPU in
between) and its pages left with the sender: two CPUs held the same 8 PFNs."""

import pytest

from node.mm import isolation
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.zone import Zone
from node.mm.zone_rules import CMA, DRAIN, NODE, Refused, ZoneReply, ZoneRules
from node.shared.timebase import CostModel

MT = MIGRATE_MOVABLE
COST = CostModel()


def _rules(pages: int = 8192) -> ZoneRules:
    return ZoneRules(Zone(0, pages, 2), COST)


def _pages(pfns) -> list:
    return [(pfn, 0, MT) for pfn in pfns]


def _traffic(zr: ZoneRules, cpu: int, incarnation: str, n: int) -> None:
    """n transfers by `cpu` (a refill and a free of one page each, alternately)."""
    for i in range(n // 2):
        (pfn,) = zr.rmqueue(cpu, 0, MT, 1, f"cpu{cpu}-r{i}", incarnation).value.pfns
        zr.free_pages(cpu, _pages([pfn]), f"cpu{cpu}-f{i}", incarnation, NODE)


def test_a_retried_free_after_much_other_traffic_gets_its_first_answer():
    zr = _rules()
    held = zr.rmqueue(0, 0, MT, 8, "cpu0-1", "a").value.pfns
    zr.free_pages(0, _pages(held), "cpu0-2", "a", NODE)  # applied; say its reply was lost
    taken = zr.rmqueue(1, 0, MT, 8, "cpu1-1", "b").value.pfns
    assert set(taken) == set(held)  # the freed pages went to cpu1 (head of the free lists)
    _traffic(zr, 2, "c", 10)  # more transfers than the old window of 4 (the reproduction)
    retry = zr.free_pages(0, _pages(held), "cpu0-2", "a", NODE)  # answered, not refused
    assert retry.hold_us == 0.0  # a replay changes nothing and holds zone->lock for nothing
    assert {zr.owned[pfn] for pfn in taken} == {(1, 0)}  # cpu1 alone holds them


def test_a_retried_refill_is_not_applied_twice():
    zr = _rules()
    first = zr.rmqueue(0, 0, MT, 8, "cpu0-1", "a").value
    free = zr.zone.free_pages
    _traffic(zr, 1, "b", 10)
    again = zr.rmqueue(0, 0, MT, 8, "cpu0-1", "a")
    assert again == (first, 0.0) and zr.zone.free_pages == free
    assert sum(1 for owner, _ in zr.owned.values() if owner == 0) == 8


def test_a_drain_of_the_cpu_between_a_request_and_its_retry_keeps_the_nodes_outcome():
    zr = _rules()
    refill = zr.rmqueue(0, 0, MT, 8, "cpu0-1", "a").value
    zr.free_pages(0, _pages(refill.pfns[:4]), "drain-cpu0-a-1", "a", DRAIN)  # a remote drain of cpu0
    assert zr.rmqueue(0, 0, MT, 8, "cpu0-1", "a").value is refill  # the node's retry: its stream's slot
    assert zr.free_pages(0, _pages(refill.pfns[:4]), "drain-cpu0-a-1", "a", DRAIN).value.watermark_ok


def test_the_same_key_on_another_request_is_refused():
    zr = _rules()
    pfns = zr.rmqueue(0, 0, MT, 2, "cpu0-1", "a").value.pfns
    with pytest.raises(Refused, match="already used for another request"):
        zr.rmqueue(0, 0, MT, 4, "cpu0-1", "a")
    zr.free_pages(0, _pages(pfns[:1]), "cpu0-2", "a", NODE)
    with pytest.raises(Refused, match="already used for another request"):
        zr.free_pages(0, _pages(pfns[1:]), "cpu0-2", "a", NODE)


def test_slots_are_bounded_by_cpus_and_dropped_with_their_incarnation():
    zr = _rules()
    for cpu in range(4):
        _traffic(zr, cpu, "old", 20)
        zr.free_pages(cpu, _pages(zr.rmqueue(cpu, 0, MT, 1, "x", "old").value.pfns), "d", "old", DRAIN)
    assert len(zr._last) == 8  # 4 CPUs x 2 streams, whatever the traffic
    zr.cpu_dead(3)
    assert len(zr._last) == 6 and (3, NODE) not in zr._last
    # A new incarnation's first request is new, even with a key its predecessor used.
    before = zr.rmqueue(2, 0, MT, 1, "k", "old").value.pfns
    after = zr.rmqueue(2, 0, MT, 1, "k", "new").value.pfns
    assert before != after and zr._last[(2, NODE)].incarnation == "new" and len(zr._last) == 6


@pytest.mark.parametrize(
    "pages, match",
    [
        (lambda held, other: [(held[0], 1, MT)], "order 1, but the zone records cpu 0 holding it at order 0"),
        (lambda held, other: [(other[0], 0, MT)], "but the zone records cpu 1 holding it"),
        (lambda held, other: [(held[0], 0, MT), (5000, 0, MT)], "pfn 5000 order 0, but the zone records it as free"),
        (lambda held, other: [(held[0], 0, MT), (99999, 0, MT)], r"pfn 99999 .* no such pfn \(the zone is \[0, 8192"),
        # Each copy passes the ownership check; the second used to raise KeyError after the first was freed.
        (lambda held, other: [(held[0], 0, MT), (held[1], 0, MT), (held[0], 0, MT)], "frees a pfn twice"),
    ],
)
def test_a_free_of_pages_the_cpu_does_not_hold_is_refused_whole(pages, match):
    zr = _rules()
    held = zr.rmqueue(0, 0, MT, 4, "cpu0-1", "a").value.pfns
    other = zr.rmqueue(1, 0, MT, 4, "cpu1-1", "b").value.pfns
    owned, free = dict(zr.owned), zr.zone.free_pages
    with pytest.raises(Refused, match=match):
        zr.free_pages(0, pages(held, other), "cpu0-2", "a", NODE)
    assert zr.owned == owned and zr.zone.free_pages == free
    # Nothing was remembered either: the same key on a valid request is applied.
    assert zr.free_pages(0, _pages(held), "cpu0-2", "a", NODE).value.watermark_ok


def test_each_operation_returns_the_hold_of_zone_lock_it_costs():
    zr = _rules(1 << 16)
    refill = zr.rmqueue(0, 0, MT, 63, "cpu0-1", "a")
    assert refill.hold_us == COST.rmqueue_hold_us(63)
    freed = zr.free_pages(0, _pages(refill.value.pfns), "cpu0-2", "a", NODE)
    assert freed.hold_us == COST.zone_hold_us(63)
    zr.rmqueue(1, 3, MT, 2, "cpu1-1", "b")  # two order-3 blocks
    assert zr.cpu_dead(1) == (16, COST.zone_hold_us(2))


def test_a_refill_that_would_go_below_min_is_refused_holds_nothing_and_sets_reclaim_active():
    zr = _rules()
    zone = zr.zone
    wm = zone.watermark
    zr.preallocate(zone.free_pages - wm["low"])  # the rest of the system leaves exactly `low` free
    assert not zone.reclaim_active  # not below low yet
    to_min = wm["low"] - wm["min"]
    ok = zr.rmqueue(0, 0, MT, to_min, "cpu0-1", "a")  # down to exactly min: allowed
    assert ok.value.watermark_ok and len(ok.value.pfns) == to_min
    assert ok.value.reclaim_active and ok.value.free_pages == wm["min"]
    refused = zr.rmqueue(0, 0, MT, 1, "cpu0-2", "a")
    expected = ZoneReply(pfns=(), watermark_ok=False, free_pages=wm["min"], reclaim_active=True, below_high=True)
    assert refused == (expected, 0.0)
    assert zr.refused == 1 and zone.free_pages == wm["min"]
    # The refusal is not remembered as the slot's outcome: the same key is tried again, and refused again.
    assert not zr.rmqueue(0, 0, MT, 1, "cpu0-2", "a").value.watermark_ok and zr.refused == 2


def test_zone_below_high_is_set_by_a_refill_that_finds_the_zone_under_high_and_cleared_only_by_a_commit():
    """ZONE_BELOW_HIGH (v6.7+): get_page_from_freelist sets it when an allocation finds the zone under its
    high watermark (the refill that takes it there does not: it tested before taking), and only
    free_unref_page_commit's flush clears it, once the high watermark is met: not a drain's free."""
    zr = _rules()
    zone = zr.zone
    high = zone.watermark["high"]
    zr.preallocate(zone.free_pages - high - 8)  # the rest of the system leaves 8 pages above high
    first = zr.rmqueue(0, 0, MT, 16, "cpu0-1", "a").value
    assert not first.below_high and zone.free_pages == high - 8
    second = zr.rmqueue(0, 0, MT, 1, "cpu0-2", "a").value
    assert second.below_high and zone.below_high
    pages = [(pfn, 0, MT) for pfn in first.pfns]
    assert zr.free_pages(0, pages[:1], "cpu0-3", "a", NODE, commit=True).value.below_high  # still under high
    drained = zr.free_pages(0, pages[1:], "drain-1", "a", DRAIN).value
    assert zone.free_pages == high + 7 and drained.below_high  # above high, but a drain's free clears nothing
    assert zr.free_pages(0, [(second.pfns[0], 0, MT)], "cpu0-4", "a", NODE).value.below_high  # nor a buddy free
    zr.rmqueue(0, 0, MT, 1, "cpu0-5", "a")  # above high: sets nothing, clears nothing
    again = zr.free_pages(0, [(zr.holdings()[0][0][0], 0, MT)], "cpu0-6", "a", NODE, commit=True).value
    assert not again.below_high and not zone.below_high and zone.free_pages == high + 8
    # A retry of a transfer is the same request only with the same `commit`.
    with pytest.raises(Refused, match="already used for another request"):
        zr.free_pages(0, [(pages[0][0], 0, MT)], "cpu0-6", "a", NODE)


@pytest.mark.parametrize("order, mt", [(11, MT), (-1, MT), (0, 6), (0, -1)])
def test_a_refill_of_an_order_or_migratetype_out_of_range_is_an_error_not_a_watermark_refusal(order, mt):
    """Asked for more than the zone holds (8 blocks of order 11), a refill used to come back as a
    watermark refusal, which sends the node into direct reclaim, before the order was looked at."""
    zr = _rules()
    with pytest.raises(ValueError, match="out of range"):
        zr.rmqueue(0, order, mt, 8, "cpu0-1", "a")
    assert zr.refused == 0 and zr.zone.free_pages == 8192 and not zr._last


def test_reclaim_active_clears_only_once_free_pages_are_back_above_high():
    zr = _rules()
    zone = zr.zone
    wm = zone.watermark
    zr.rmqueue(1, 0, MT, zone.free_pages - wm["low"], "cpu1-1", "b")  # cpu1 leaves exactly `low` free
    assert not zone.reclaim_active  # not below low
    pfns = zr.rmqueue(0, 0, MT, 1, "cpu0-1", "a").value.pfns
    assert zone.reclaim_active  # below low: kswapd at work
    back = zr.free_pages(0, _pages(pfns), "cpu0-2", "a", NODE).value
    assert back.free_pages == wm["low"] and back.reclaim_active  # between low and high: stays set
    zr.cpu_dead(1)
    assert zone.free_pages >= wm["high"] and not zone.reclaim_active


def _logged_rules() -> tuple[ZoneRules, list]:
    """Rules whose transfer log is the list returned with them, of (ev, fields)."""
    log: list = []

    class Sink:
        def write(self, ev, **fields):
            log.append((ev, fields))

    return ZoneRules(Zone(0, 8192, 2), COST, Sink()), log


def test_cpu_dead_takes_back_every_block_of_that_cpu_only_and_logs_it():
    zr, log = _logged_rules()
    zone = zr.zone
    free0 = zone.free_pages
    zr.rmqueue(0, 0, MT, 5, "cpu0-1", "a")
    zr.rmqueue(1, 2, MT, 3, "cpu1-1", "b")
    assert zr.cpu_dead(1).value == 12
    assert zone.free_pages == free0 - 5 and {owner for owner, _ in zr.owned.values()} == {0}
    assert zr.cpu_dead(1).value == 0  # once
    assert log == [("start", {}), ("cpu_dead", {"owner": 1}), ("cpu_dead", {"owner": 1})]


def test_claim_and_ranges_refuse_what_the_records_do_not_allow():
    zr = _rules()
    zr.claim(1, [(2048, 3, MT)])
    with pytest.raises(Refused, match="cpu 0 reports holding pages the zone cannot give it"):
        zr.claim(0, [(2050, 0, MT)])  # inside cpu1's block
    with pytest.raises(Refused, match="is not one taken range"):
        zr.release_range(2048, 512)  # a CPU's pages, not a CMA or offline range
    assert zr.holder_of(2055) == 1 and zr.holder_of(2056) is None
    assert zr.take_range(CMA, 2048, 512).value == (None, 2048, 1)  # busy: cpu1 holds its first page


def test_a_refused_claim_changes_nothing_and_logs_the_report_and_the_block_it_stopped_at():
    """The chaos checker holds every refused claim as a finding (coordinator.tools.chaos.transfers)."""
    zr, log = _logged_rules()
    zr.claim(1, [(2048, 3, MT)])
    free, owned = zr.zone.free_pages, dict(zr.owned)
    with pytest.raises(Refused):
        zr.claim(0, [(4096, 0, MT), (2050, 1, MT), (4100, 0, MT)])  # the second is inside cpu1's block
    assert zr.zone.free_pages == free and zr.owned == owned and zr.holder_of(4096) is None
    assert log[1:] == [
        ("claim", {"owner": 1, "pages": [[2048, 3]]}),
        ("claim-refused", {"owner": 0, "pages": [[4096, 0], [2050, 1], [4100, 0]], "at": [2050, 1]}),
    ]


def test_a_range_of_blocks_of_several_orders_is_released_whole():
    """Seed 278 of a 1,000-seed sweep: 3,584 pages from a pageblock not aligned to MAX_ORDER are one
    order-9 block and three order-10 ones; release_range refused them as "not one taken range"."""
    zr = _rules()
    zone = zr.zone
    free0 = zone.free_pages
    start, nr = 512, 3584  # [512, 4096): (512, 9), (1024, 10), (2048, 10), (3072, 10)
    saved = isolation.start_isolate_page_range(zone, start, nr)
    blocks = zr.take_range(CMA, start, nr).value[0]
    isolation.undo_isolate_page_range(zone, start, nr, saved)
    assert sorted({order for _, order in blocks}) == [9, 10] and zone.free_pages == free0 - nr
    assert zr.release_range(start, nr).value == CMA
    assert zone.free_pages == free0 and zr.holder_of(start) is None and zr.holder_of(start + nr - 1) is None
