"""A latency task's `zone_lock` cause: its own refills and frees queued for zone->lock behind other CPUs.

The wait is timed where zone->lock is: by the zone service in wall time (sent back in the zone
reply's lock_wait_s), by the virtual zone in virtual time. The allocator adds it up outside buddy
fallbacks (those count whole as pcp_lock), and the task takes only what its own calls waited."""

import asyncio
import threading
import time
import types

import grpc
import pytest

from coordinator.zone_service import ZoneService
from node.alloc import PageAllocator
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu import NoiseLog, wall_pcp_lock
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.lock import spin_locked
from node.mm.pcp import PerCpuPages
from node.mm.zone import Zone
from node.shared.timebase import CostModel
from node.tasks import LatencyTask
from node.virtual.run import VirtualCluster
from node.zone_client import ZoneClient
from tests.clock import FakeClock


def test_the_zone_service_times_a_queued_request_and_not_one_that_found_the_lock_free():
    # At the default time scale every operation runs on the zone->lock thread (tests/unit/test_zone_lock.py).
    zs = ZoneService(Zone(0, 8192, 2), CostModel(), sleep=lambda s: None)
    gate, holding = threading.Event(), threading.Event()

    def hold():
        holding.set()
        gate.wait(10.0)
        return "first"

    async def main():
        first = asyncio.ensure_future(zs.waited(hold))
        while not holding.is_set():  # the first holds zone->lock on the worker thread
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(zs.waited(lambda: "second"))
        await asyncio.sleep(0.01)
        gate.set()
        done = await first, await second
        alone = await zs.waited(lambda: "alone")  # after both: nobody holds or queues
        return *done, alone

    (r1, w1), (r2, w2), (r3, w3) = asyncio.run(main())
    zs.close()
    assert (r1, r2, r3) == ("first", "second", "alone")
    assert w1 == 0.0 and w3 == 0.0  # found zone->lock free: the worker's hand-over is not a wait
    assert 0.0 < w2 <= zs.lock_hold_s  # queued behind the first's hold, and for no longer


def test_a_request_that_queues_behind_a_finished_hold_waits_nothing():
    # The first operation has ended on the worker thread, but its reply has not reached the event loop:
    # the second finds it still counted as queued, goes to the worker, and its hop there is no wait.
    zs = ZoneService(Zone(0, 8192, 2), CostModel(), sleep=lambda s: None)

    async def main():
        first = asyncio.ensure_future(zs.waited(lambda: "first"))
        await asyncio.sleep(0)  # the first is handed to the worker thread
        deadline = time.monotonic() + 10.0
        while zs.lock_ops < 1 and time.monotonic() < deadline:  # the loop blocked: the reply waits
            time.sleep(0.001)
        assert zs.lock_ops == 1 and zs._queued == 1
        second = await zs.waited(lambda: "second")
        return await first, second

    (r1, w1), (r2, w2) = asyncio.run(main())
    zs.close()
    assert (r1, r2) == ("first", "second") and w1 == w2 == 0.0


def test_the_zone_client_adds_up_the_waits_its_replies_report():
    client = ZoneClient(grpc.insecure_channel("127.0.0.1:1"), 0, "inc")
    try:
        client._note(pb.RmqueueReply(watermark_ok=True, lock_wait_s=0.25))
        client._note(pb.FreePagesReply(lock_wait_s=0.5))
        client._note(pb.FreePagesReply())
        assert client.lock_wait_s == 0.75
    finally:
        client.close()


class WaitingZone(Zone):
    """An in-process zone whose every refill and free reports `wait` seconds queued for zone->lock."""

    wait = 0.0

    def rmqueue_bulk(self, order, count, migratetype):
        self.lock_wait_s += self.wait
        return super().rmqueue_bulk(order, count, migratetype)

    def rmqueue_buddy(self, order, migratetype):
        self.lock_wait_s += self.wait
        return super().rmqueue_buddy(order, migratetype)

    def free_pcppages_bulk(self, pages, commit=False):
        self.lock_wait_s += self.wait
        super().free_pcppages_bulk(pages, commit)

    def free_one_page(self, pfn, order, migratetype):
        self.lock_wait_s += self.wait
        super().free_one_page(pfn, order, migratetype)


class StepCpu:
    """What LatencyTask.step needs of a CPU on a fake clock; `busy` runs in its busy phase."""

    def __init__(self, clock, busy):
        self.clock, self.noise, self.busy = clock, NoiseLog(), busy

    def user(self, seconds):
        self.busy()
        self.clock.now += seconds

    def preempt_point(self):
        pass


def test_the_task_counts_its_own_refills_and_frees_waits_and_not_what_its_busy_phase_waited():
    """An RT task of 70 allocations refills from the zone, and each refill waits; its frees go back to
    its list. A work item's free in its busy phase (here a free_pcppages_bulk on the same zone, as a
    kworker's drain does) waits too: that is the work item's time, not the task's."""
    zone = WaitingZone(0, 65536, 2)
    zone.watermark_failed = False
    zone.wait = 7e-6
    pcp = PerCpuPages(0, high=518, batch=63)
    clock = FakeClock()
    alloc = PageAllocator(types.SimpleNamespace(clock=clock), pcp, zone, coordinator_stub=None)
    task = LatencyTask("rt", period=1e-3, busy=5e-4, deadline=8e-4, allocs=70, alloc=alloc, clock=clock, rt=True)
    kworker_free = [alloc.alloc_pages(0, MIGRATE_MOVABLE)]  # a page the "work item" frees to the zone
    refills_before = pcp.stats.refills
    clock.now = task.next_wake
    task.step(StepCpu(clock, lambda: zone.free_pcppages_bulk([(kworker_free.pop(), 0, MIGRATE_MOVABLE)])))
    refills = pcp.stats.refills - refills_before
    assert refills >= 1
    assert task.totals.stolen_s["zone_lock"] == pytest.approx(refills * 7e-6)
    assert task.totals.noise_events["zone_lock"] == 1  # one activation, one event
    assert alloc.zone_lock_wait_s == pytest.approx((refills + 1) * 7e-6)  # the first alloc's refill too
    assert zone.lock_wait_s == pytest.approx((refills + 2) * 7e-6)  # and the work item's free


def test_a_buddy_fallbacks_wait_counts_as_pcp_lock_not_zone_lock():
    zone = WaitingZone(0, 65536, 2)
    zone.watermark_failed = False
    pcp = PerCpuPages(0, high=518, batch=63, lock=wall_pcp_lock())
    clock = FakeClock()
    alloc = PageAllocator(types.SimpleNamespace(clock=clock), pcp, zone, coordinator_stub=None)
    zone.wait = 3e-6
    with spin_locked(
        pcp.lock
    ):  # a remote drainer holds the pcp: the trylock fails and the allocation goes to the buddy
        pfn = alloc.alloc_pages(0, MIGRATE_MOVABLE)
    assert pfn is not None and pcp.stats.buddy_fallback_alloc == 1
    assert alloc.zone_lock_wait_s == 0.0 and zone.lock_wait_s == pytest.approx(3e-6)


def test_in_virtual_time_a_refill_queued_behind_another_cpus_free_waits_until_that_hold_ends():
    cluster = VirtualCluster(("idle", "idle"), seed=1)
    (z0, z1), shared, cpus = cluster.zones, cluster.zone, cluster.cpus
    seen: dict = {}

    def refill() -> None:
        z1.rmqueue_bulk(0, 8, MIGRATE_MOVABLE)

    def free_many() -> None:
        pfns = z0.rmqueue_bulk(0, 512, MIGRATE_MOVABLE)
        # cpu1 asks 5 us after cpu0 sent its free of 512 pages, which holds zone->lock for 15.6 us
        cluster.queue.at(cluster.clock() + 5e-6, lambda: cpus[1].queue_work("workqueue", refill))
        z0.free_pcppages_bulk([(pfn, 0, MIGRATE_MOVABLE) for pfn in pfns])
        seen["contended"] = shared.lock.contended

    cluster.queue.at(1e-6, lambda: cpus[0].queue_work("workqueue", free_many))
    try:
        cluster.run(1e-3)
    finally:
        cluster.close()
    assert seen == {"contended": 1}
    assert z0.lock_wait_s == 0.0
    assert 0.0 < z1.lock_wait_s <= shared.cost.wall(shared.cost.zone_hold_us(512))
