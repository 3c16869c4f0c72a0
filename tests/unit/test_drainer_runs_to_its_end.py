"""coordinator.drain.drainer.Drainer on the wall driver: a drain_all_pages whose caller goes away (its
DrainAllPages call cancelled) runs to its end and is recorded, as the kernel's drain does. Sweep seed
4508 under the wall engine: an rcu-swap drain had committed cpu4's pages when its call broke, and the
cancellation stopped it before it freed them into the zone: 71 pages lost."""

import asyncio
import time

import pytest

from coordinator.drain import drainer as drainer_mod
from coordinator.drain.effects import Sleep
from coordinator.drain.record import DrainRecord
from coordinator.membership import Membership
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import profile as profiles


async def test_a_drain_whose_caller_is_cancelled_frees_what_it_committed_and_is_recorded(monkeypatch):
    steps: list[str] = []
    committed = asyncio.Event()

    def program(drainer, mutex, strategy, force_all_cpus, trigger):
        steps.append("committed")  # the nodes have let the pages go
        committed.set()
        yield Sleep(0.05)  # the caller is cancelled here
        steps.append("freed")  # into the zone
        return DrainRecord(pb.DrainAllReply.DONE, strategy, trigger, started_at=0.0)

    monkeypatch.setattr(drainer_mod.drain_all, "drain_all_pages", program)
    membership = Membership(2)
    try:
        d = drainer_mod.Drainer(membership, None, pb.STRATEGY_RCU_SWAP, time.monotonic, profile=profiles.get("6.1"))
        call = asyncio.ensure_future(d.drain_all_pages(pb.STRATEGY_RCU_SWAP))
        await committed.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        deadline = time.monotonic() + 5.0
        while not d.history and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert steps == ["committed", "freed"]
        assert [r.status for r in d.history] == [pb.DrainAllReply.DONE]
    finally:
        await membership.close()
