"""zone->lock in the zone service: where an operation runs and which modeled holds are slept.

No wall-clock time is asserted: the tests look at threads and at the sleeps requested."""

import asyncio
import threading

import pytest

from coordinator.zone_service import NODE, SLEEP_MIN_S, ZoneService
from node.api.errors import FailedPrecondition
from node.mm.zone import Zone
from node.shared.timebase import CostModel


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
    sleeps = []
    zs = _service(CostModel().time_scale, sleeps)

    async def main():
        here = threading.get_ident()
        ran_on = await zs.locked(threading.get_ident)
        await zs.locked(zs.rmqueue, 0, 0, 1, 4, "t1", "i0")
        return here, ran_on

    here, ran_on = asyncio.run(main())
    zs.close()
    assert ran_on != here
    assert len(sleeps) == 1 and sleeps[0] == zs.cost.rmqueue_hold(4) >= SLEEP_MIN_S


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
    assert sleeps == [zs.cost.rmqueue_hold(1)]
