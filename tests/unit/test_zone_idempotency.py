"""The zone service's idempotency: the last outcome per (CPU, stream), never evicted under a retry.

The issue's reproduction: the zone used to remember the last 65,536 transfers, and a retry
whose key had been evicted was treated as new. With that window shrunk to 4, a free whose
reply was lost, retried after other CPUs' traffic, was refused (the pages went to another
CPU in between) and its pages left with the sender: two CPUs held the same 8 PFNs."""

import pytest

from coordinator.zone_service import DRAIN, NODE, ZoneService
from node.api.errors import FailedPrecondition
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.zone import Zone
from node.shared.timebase import CostModel

MT = MIGRATE_MOVABLE


def _service() -> ZoneService:
    return ZoneService(Zone(0, 8192, 2), CostModel(time_scale=0), sleep=lambda s: None)


def _pages(pfns) -> list:
    return [(pfn, 0, MT) for pfn in pfns]


def _traffic(zs: ZoneService, cpu: int, incarnation: str, n: int) -> None:
    """n transfers by `cpu` (a refill and a free of one page each, alternately)."""
    for i in range(n // 2):
        (pfn,) = zs.rmqueue(cpu, 0, MT, 1, f"cpu{cpu}-r{i}", incarnation).pfns
        zs.free_pages(cpu, _pages([pfn]), f"cpu{cpu}-f{i}", incarnation, NODE)


def test_a_retried_free_after_much_other_traffic_gets_its_first_answer():
    zs = _service()
    held = zs.rmqueue(0, 0, MT, 8, "cpu0-1", "a").pfns
    zs.free_pages(0, _pages(held), "cpu0-2", "a", NODE)  # applied; say its reply was lost
    taken = zs.rmqueue(1, 0, MT, 8, "cpu1-1", "b").pfns
    assert set(taken) == set(held)  # the freed pages went to cpu1 (head of the free lists)
    _traffic(zs, 2, "c", 10)  # more transfers than the old window of 4 (the reproduction)
    zs.free_pages(0, _pages(held), "cpu0-2", "a", NODE)  # the retry: answered, not refused
    assert {zs.owned[pfn] for pfn in taken} == {(1, 0)}  # cpu1 alone holds them
    zs.close()


def test_a_retried_refill_is_not_applied_twice():
    zs = _service()
    first = zs.rmqueue(0, 0, MT, 8, "cpu0-1", "a")
    free = zs.zone.free_pages
    _traffic(zs, 1, "b", 10)
    again = zs.rmqueue(0, 0, MT, 8, "cpu0-1", "a")
    assert again.pfns == first.pfns and zs.zone.free_pages == free
    assert sum(1 for owner, _ in zs.owned.values() if owner == 0) == 8
    zs.close()


def test_a_drain_of_the_cpu_between_a_request_and_its_retry_keeps_the_nodes_outcome():
    zs = _service()
    refill = zs.rmqueue(0, 0, MT, 8, "cpu0-1", "a")
    zs.free_pages(0, _pages(refill.pfns[:4]), "drain-cpu0-a-1", "a", DRAIN)  # a remote drain of cpu0
    assert zs.rmqueue(0, 0, MT, 8, "cpu0-1", "a") is refill  # the node's retry: its stream's slot
    assert zs.free_pages(0, _pages(refill.pfns[:4]), "drain-cpu0-a-1", "a", DRAIN).watermark_ok
    zs.close()


def test_the_same_key_on_another_request_is_refused():
    zs = _service()
    pfns = zs.rmqueue(0, 0, MT, 2, "cpu0-1", "a").pfns
    with pytest.raises(FailedPrecondition, match="already used for another request"):
        zs.rmqueue(0, 0, MT, 4, "cpu0-1", "a")
    zs.free_pages(0, _pages(pfns[:1]), "cpu0-2", "a", NODE)
    with pytest.raises(FailedPrecondition, match="already used for another request"):
        zs.free_pages(0, _pages(pfns[1:]), "cpu0-2", "a", NODE)
    zs.close()


def test_slots_are_bounded_by_cpus_and_dropped_with_their_incarnation():
    zs = _service()
    for cpu in range(4):
        _traffic(zs, cpu, "old", 20)
        zs.free_pages(cpu, _pages(zs.rmqueue(cpu, 0, MT, 1, "x", "old").pfns), "d", "old", DRAIN)
    assert len(zs._last) == 8  # 4 CPUs x 2 streams, whatever the traffic
    zs.cpu_dead(3)
    assert len(zs._last) == 6 and (3, NODE) not in zs._last
    # A new incarnation's first request is new, even with a key its predecessor used.
    before = zs.rmqueue(2, 0, MT, 1, "k", "old").pfns
    after = zs.rmqueue(2, 0, MT, 1, "k", "new").pfns
    assert before != after and zs._last[(2, NODE)].incarnation == "new" and len(zs._last) == 6
    zs.close()
