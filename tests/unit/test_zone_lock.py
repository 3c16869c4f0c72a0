"""zone->lock in the zone service: where an operation runs and which modeled holds are slept.

No wall-clock time is asserted: the tests look at threads and at the sleeps requested, timed by a fake
clock where the figure depends on time."""

import asyncio
import threading

import pytest

from coordinator.zone_service import NODE, SLEEP_MIN_S, ZoneService
from node.api.errors import FailedPrecondition
from node.mm.zone import Zone
from node.shared.timebase import CostModel
from tests.clock import FakeClock


def _service(time_scale: float, sleeps: list) -> ZoneService:
    return ZoneService(Zone(0, 8192, 2), CostModel(time_scale=time_scale), sleep=sleeps.append)


def test_at_a_tiny_time_scale_a_free_lock_runs_the_operation_on_the_loop_and_sleeps_nothing():
    sleeps = []
    zs = _service(1e-6, sleeps)

    async def main():
        here = threading.get_ident()
        ran_on = await zs.locked(threading.get_ident)
        reply = await zs.locked(zs.rmqueue, 0, 0, 1, 4, "t1", "i0")
        return here, ran_on, reply

    here, ran_on, reply = asyncio.run(main())
    zs.close()
    assert ran_on == here
    assert len(reply.pfns) == 4 and zs.lock_ops == 2
    assert sleeps == []  # every hold is far below SLEEP_MIN_S at this scale


def test_at_the_default_time_scale_operations_run_on_the_zone_lock_thread_and_sleep_their_hold():
    """An operation runs on the zone->lock thread and sleeps its modeled hold less its own work before the
    sleep. The clock is a fake one that only the operation moves (0.2 ms of "Python work"), so a loaded
    host cannot make the work outlast the hold (CI 2026-12-05, with the real clock: no sleep at all)."""
    sleeps, clock = [], FakeClock()
    zs = ZoneService(Zone(0, 8192, 2), CostModel(), sleep=sleeps.append, clock=clock)

    def refill():
        clock.now += 0.0002
        return zs.rmqueue(0, 0, 1, 4, "t1", "i0")

    async def main():
        here = threading.get_ident()
        ran_on = await zs.locked(threading.get_ident)
        await zs.locked(refill)
        return here, ran_on

    here, ran_on = asyncio.run(main())
    zs.close()
    assert ran_on != here
    assert sleeps == [pytest.approx(zs.cost.wall(zs.cost.rmqueue_hold_us(4)) - 0.0002, abs=1e-12)]
    assert sleeps[0] >= SLEEP_MIN_S


def test_the_overrun_of_earlier_holds_is_paid_back_from_the_next_sleeps():
    """A host that oversleeps every hold by 1 ms: each next hold is asked that much shorter. On a fake
    clock that only the sleeps move, so what is asked is exact. At a time scale ten times the default a
    512-page refill holds 33 ms."""
    asked, clock = [], FakeClock()

    def oversleep(seconds):
        asked.append(seconds)
        clock.now += seconds + 0.001

    zs = ZoneService(Zone(0, 8192, 2), CostModel(time_scale=2500.0), sleep=oversleep, clock=clock)
    hold = zs.cost.wall(zs.cost.rmqueue_hold_us(512))

    async def main():
        for i in range(4):
            await zs.locked(zs.rmqueue, 0, 0, 1, 512, f"t{i}", "i0")

    asyncio.run(main())
    zs.close()
    assert asked == [pytest.approx(s, abs=1e-12) for s in (hold, hold - 0.001, hold - 0.001, hold - 0.001)]
    assert zs.modeled_hold_s == pytest.approx(4 * hold)
    assert zs.lock_hold_s == pytest.approx(4 * hold + 0.001)  # the last oversleep, not paid back yet


def test_operations_queued_behind_a_busy_lock_keep_their_order():
    zs = _service(1e-6, [])
    order = []
    gate = threading.Event()

    def first():
        gate.wait(10.0)
        order.append("first")

    async def main():
        zs._inline = False  # the first operation goes to the worker and holds the lock there
        a = asyncio.ensure_future(zs.locked(first))
        await asyncio.sleep(0)
        zs._inline = True
        b = asyncio.ensure_future(zs.locked(order.append, "second"))  # must not overtake `first`
        await asyncio.sleep(0.05)
        assert order == []
        gate.set()
        await asyncio.gather(a, b)

    asyncio.run(main())
    zs.close()
    assert order == ["first", "second"]


def test_a_refusal_of_the_rules_is_a_failed_precondition_and_holds_nothing():
    """The wall driver answers the rules' Refused as FailedPrecondition, and sleeps only a hold it was told."""
    sleeps = []
    zs = _service(CostModel().time_scale, sleeps)
    (pfn,) = zs.rmqueue(0, 0, 1, 1, "t1", "i0").pfns
    with pytest.raises(FailedPrecondition, match="cpu 1 frees pfn"):
        zs.free_pages(1, [(pfn, 0, 1)], "t2", "i1", NODE)
    zs.close()
    assert sleeps == [zs.cost.wall(zs.cost.rmqueue_hold_us(1))]
