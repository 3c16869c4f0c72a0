"""The pieces of the fault-tolerant protocol that are pure logic: the remote lock's lease and
fencing, the fenced allocator, take_page_off_buddy and the zone's claim (rebuild), the
coordinator's membership liveness, and the reaper's hotplug path."""

import asyncio

import grpc
import pytest

from coordinator.hotplug import Reaper
from coordinator.membership import Membership
from coordinator.pageset import Pageset
from coordinator.registration import Registration
from coordinator.store import Store
from coordinator.zone_service import ZoneService
from node.agent import Agent
from node.agent_rule import ask_again
from node.alloc import PageAllocator
from node.api.errors import FailedPrecondition, NotFound, Unavailable, status_of
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu import Cpu
from node.epoch import CoordinatorEpoch
from node.mm import pcp_high
from node.mm.audit import audit
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.lock import spin_is_locked
from node.mm.pcp import PerCpuPages, free_pcppages_bulk
from node.mm.zone import PageStateError, Zone
from node.remote_lock import RemotePcpLock
from node.shared.reply_stream import StreamBroken
from node.shared.timebase import CostModel
from node.zone_client import ZoneClient
from node.zone_retry_rule import UNAVAILABLE_RETRIES, ZoneRefused
from tests.clock import FakeClock


def filled(n_allocs=200):
    """A pcp over an in-process zone, with pages on its lists, and the allocator on top."""
    zone = Zone(0, 65536, 2)
    zone.watermark_failed = False
    pcp = PerCpuPages(0, high=518, batch=63)
    alloc = PageAllocator(Cpu(0, sleep=lambda s: None), pcp, zone, coordinator_stub=None)
    held = [alloc.alloc_pages(0, MIGRATE_MOVABLE) for _ in range(n_allocs)]
    for pfn in held[::2]:
        alloc.free_pages(pfn)
    return zone, pcp, alloc


# ------------------------------------------------------------------ remote lock
def test_an_expired_lease_puts_the_pages_back_and_fences_the_late_commit():
    async def main():
        _, pcp, _ = filled()
        lock = RemotePcpLock(pcp, FakeClock())
        before = sorted(pcp.pages())
        token, *_ = await lock.lock_and_take(lease_s=0.01, wait_timeout=1.0)
        assert token and pcp.count == 0 and spin_is_locked(pcp.lock) and lock.holder_token() == token
        await asyncio.sleep(0.05)
        assert not spin_is_locked(pcp.lock) and sorted(pcp.pages()) == before and lock.holder_token() == 0
        with pytest.raises(FailedPrecondition, match="lease ran out"):
            await lock.unlock(token, commit=True)
        assert sorted(pcp.pages()) == before
        (grant,) = lock.records()
        assert (grant.outcome, grant.stale_commits_refused, grant.committed_after_expiry) == ("expired", 1, False)

    asyncio.run(main())


def test_a_commit_is_idempotent_and_an_abort_after_it_is_refused():
    async def main():
        _, pcp, _ = filled()
        lock = RemotePcpLock(pcp, FakeClock())
        token, pages, *_ = await lock.lock_and_take(lease_s=5.0, wait_timeout=1.0)
        await lock.unlock(token, commit=True)
        assert pcp.count == 0 and not spin_is_locked(pcp.lock)
        await lock.unlock(token, commit=True)  # the retry of a commit whose reply was lost
        with pytest.raises(FailedPrecondition, match="it was committed"):
            await lock.unlock(token, commit=False)
        with pytest.raises(FailedPrecondition, match="never granted"):
            await lock.unlock(token + 1, commit=True)
        assert lock.drained_pages == sum(1 << o for _, o, _ in pages)

    asyncio.run(main())


def test_without_fencing_a_late_commit_is_applied_and_recorded():
    """The broken variant: the late commit is accepted although the pages are back on the lists."""

    async def main():
        _, pcp, _ = filled()
        lock = RemotePcpLock(pcp, FakeClock(), fencing=False)
        token, *_ = await lock.lock_and_take(lease_s=0.01, wait_timeout=1.0)
        await asyncio.sleep(0.05)
        await lock.unlock(token, commit=True)
        assert pcp.count > 0 and lock.records()[0].committed_after_expiry

    asyncio.run(main())


def test_discard_forgets_the_grant_and_releases_the_lock():
    async def main():
        _, pcp, _ = filled()
        lock = RemotePcpLock(pcp, FakeClock())
        token, *_ = await lock.lock_and_take(lease_s=5.0, wait_timeout=1.0)
        lock.discard()
        assert not spin_is_locked(pcp.lock) and lock.inflight() == [] and pcp.count == 0
        with pytest.raises(FailedPrecondition):
            await lock.unlock(token, commit=True)

    asyncio.run(main())


# ------------------------------------------------------------------ fenced allocator
def test_a_fenced_allocator_refuses_without_touching_pcp_or_zone():
    zone, pcp, alloc = filled()
    fenced = [True]
    alloc.fenced = lambda: fenced[0]
    state = (zone.free_pages, pcp.count, dict(alloc.allocated))
    assert alloc.alloc_pages(0, MIGRATE_MOVABLE) is None
    assert (alloc.fenced_refusals, alloc.alloc_failures) == (1, 1)
    assert (zone.free_pages, pcp.count, dict(alloc.allocated)) == state
    fenced[0] = False
    assert alloc.alloc_pages(0, MIGRATE_MOVABLE) is not None


def lease_runs_out_in(zone: Zone, op: str, fenced: list[bool]) -> None:
    """The zone's `op` answers, and the CPU's lease has run out by the time the answer is in hand (the
    node was SIGSTOPped with the request in flight, past its lease)."""
    answer = getattr(zone, op)

    def answered_late(*args):
        result = answer(*args)
        fenced[0] = True
        return result

    setattr(zone, op, answered_late)


def test_a_page_whose_refill_is_answered_after_the_lease_ran_out_is_not_handed_out():
    """Sweep seed 1127: the lease held when the allocation started and had run out when its refill was
    answered, and the coordinator had meanwhile declared the CPU dead and given the refill's pages to
    another CPU. The page goes back to the pcp list, not to the task; with the lease renewed, the next
    allocation takes it from there, without a refill."""
    zone = Zone(0, 65536, 2)
    zone.watermark_failed = False
    pcp = PerCpuPages(0, high=518, batch=63)
    fenced = [False]
    alloc = PageAllocator(Cpu(0, sleep=lambda s: None), pcp, zone, coordinator_stub=None, fenced=lambda: fenced[0])
    lease_runs_out_in(zone, "rmqueue_bulk", fenced)
    assert alloc.alloc_pages(0, MIGRATE_MOVABLE) is None
    assert (alloc.fenced_refusals, alloc.alloc_failures, alloc.allocs, alloc.allocated) == (1, 1, 0, {})
    refilled, free = pcp.count, zone.free_pages
    assert refilled > 0
    del zone.rmqueue_bulk  # the zone's own again
    fenced[0] = False
    assert alloc.alloc_pages(0, MIGRATE_MOVABLE) is not None
    assert (pcp.count, zone.free_pages, alloc.allocs) == (refilled - 1, free, 1)
    assert audit(zone, {"pcp": pcp.pages(), "allocated": alloc.pages()}).ok  # nothing lost, nothing twice


def test_a_page_answered_after_the_lease_ran_out_and_refused_back_by_the_zone_is_the_zones():
    """The same with an order-10 page, which the pcp never caches: it goes back to the zone, which
    refuses it from a CPU it declared dead. The refusal reaches the task's step as a refused refill's
    does, and the page is nowhere on this CPU (the zone took it back with the rest)."""
    zone, _pcp, alloc = filled()
    fenced = [False]
    alloc.fenced = lambda: fenced[0]
    lease_runs_out_in(zone, "rmqueue_buddy", fenced)

    def declared_dead(*args):
        raise ZoneRefused("FAILED_PRECONDITION", "cpu 0 was declared dead")

    zone.free_one_page = declared_dead
    before = dict(alloc.allocated)
    with pytest.raises(ZoneRefused):
        alloc.alloc_pages(10, MIGRATE_MOVABLE)
    assert alloc.allocated == before and (alloc.fenced_refusals, alloc.alloc_failures) == (1, 1)


def test_a_free_the_zone_refuses_leaves_the_page_with_the_task():
    class Refusing:
        reclaim_active = False
        lock_wait_s = 0.0

        def free_one_page(self, *a):
            raise ConnectionError("zone unreachable")

    _zone, _pcp, alloc = filled()
    pfn = alloc.alloc_pages(10, MIGRATE_MOVABLE)  # order 10: never cached, freed straight to the zone
    alloc.zone = Refusing()
    with pytest.raises(ConnectionError):
        alloc.free_pages(pfn)
    assert pfn in alloc.allocated


# ------------------------------------------------------------------ rebuild
def test_take_page_off_buddy_splits_the_free_block_and_refuses_what_is_not_free():
    zone = Zone(0, 8192, 1)
    free0 = zone.free_pages
    mt = zone.take_page_off_buddy(1029, 0)  # inside the free order-10 block at 1024
    assert zone.free_pages == free0 - 1
    assert zone.free_block_at(1024) == (2, mt) and zone.free_block_at(1028) == (0, mt)
    assert zone.free_block_at(1030) == (1, mt) and zone.free_block_at(1032) == (3, mt)
    assert zone.free_block_at(1536) == (9, mt) and zone.free_block_at(1029) is None
    with pytest.raises(PageStateError, match="not wholly free"):
        zone.take_page_off_buddy(1028, 2)  # contains 1029, now taken
    with pytest.raises(PageStateError, match="not an aligned block"):
        zone.take_page_off_buddy(1030, 2)
    zone.free_one_page(1029, 0, mt)
    assert zone.free_pages == free0 and zone.free_block_at(1024) == (10, mt)


def test_claim_is_all_or_nothing_and_records_the_owner():
    service = ZoneService(Zone(0, 8192, 2), CostModel(time_scale=0), sleep=lambda s: None)
    zone = service.zone
    free0 = zone.free_pages
    service.claim(1, [(2048, 3, 1), (4096, 0, 1)])
    assert service.owned == {2048: (1, 3), 4096: (1, 0)} and zone.free_pages == free0 - 9
    with pytest.raises(FailedPrecondition, match="cpu 0 reports holding pages"):
        service.claim(0, [(5000, 0, 1), (2050, 0, 1)])  # the second overlaps cpu1's block
    assert 5000 not in service.owned and zone.free_pages == free0 - 9
    report = audit(zone, {"cpu1": [(2048, 3), (4096, 0)]})
    assert report.ok, report.errors
    service.close()


# ------------------------------------------------------------------ membership and the reaper
def test_membership_tells_unknown_from_dead_from_replaced():
    async def main():
        clock = FakeClock()
        m = Membership(4, clock, failure_timeout=1.0, dead_timeout=3.0)
        with pytest.raises(NotFound):
            m.live(1, "a")
        member = m.register(1, "127.0.0.1:1", 1, incarnation="a")
        assert m.live(1, "a") is member
        with pytest.raises(FailedPrecondition, match="replaced"):
            m.live(1, "b")
        clock.now += 2.0
        assert member not in m.online() and m.overdue() == []
        clock.now += 1.0
        assert m.overdue() == [member]
        m.declare_dead(member)
        with pytest.raises(FailedPrecondition, match="declared dead"):
            m.heartbeat(1, 5, "a")
        assert m.alive() == 0 and not m.is_current(member)
        await m.close()

    asyncio.run(main())


def test_a_node_beats_at_the_longer_of_its_interval_and_the_coordinators_pace(monkeypatch):
    """The agent takes each reply's heartbeat_interval_ms and waits the longer of it and its own."""

    class Stub:
        def __init__(self):
            self.paces = [200, 10, 0]  # ms, one per reply

        async def Heartbeat(self, request, timeout):
            return pb.HeartbeatReply(heartbeat_interval_ms=self.paces.pop(0), high=10, batch=2)

    class Faults:
        async def outbound(self, method, peer, timeout):
            pass

    runtime = type(
        "Rt",
        (),
        {
            "cpu_id": 0,
            "incarnation": "a",
            "lease_until": 0.0,
            "pcp": type("P", (), {"count": 0})(),
            "zone": type("Z", (), {})(),
            "set_pageset": lambda self, high, batch, high_max: None,
            "cpu": type("C", (), {"held_paused_by": lambda self, by: False})(),
            "epoch": CoordinatorEpoch(),
        },
    )()
    waits = []

    async def wait_for(aw, timeout):
        aw.close()  # never awaited: this stands for the sleep between beats
        waits.append(timeout)
        if len(waits) == 3:
            stop.set()
        raise TimeoutError

    monkeypatch.setattr("node.agent.asyncio.wait_for", wait_for)
    agent = Agent(Stub(), runtime, pb.RegisterRequest(cpu=0), Faults(), clock=FakeClock())
    stop = asyncio.Event()
    asyncio.run(agent.run(0.05, stop))
    assert waits == [0.2, 0.05, 0.05]


def test_the_coordinator_paces_heartbeats_to_its_budget_within_a_quarter_of_the_failure_timeout():
    async def main():
        m = Membership(64, FakeClock(), failure_timeout=1.0, dead_timeout=3.0, heartbeat_budget=256)
        assert m.heartbeat_interval() == 0.0
        for cpu in range(16):
            m.register(cpu, f"127.0.0.1:{1000 + cpu}", pb.ROLE_IDLE)
        assert m.heartbeat_interval() == 16 / 256
        for cpu in range(16, 64):
            m.register(cpu, f"127.0.0.1:{1000 + cpu}", pb.ROLE_IDLE)
        assert m.heartbeat_interval() == 0.25  # 64 / 256, and a quarter of the failure timeout
        await m.close()

    asyncio.run(main())
    with pytest.raises(ValueError):
        Membership(2, FakeClock(), heartbeat_budget=0)


@pytest.mark.parametrize("failure,dead,lease", [(1.0, 1.0, None), (1.0, 3.0, 3.0)])
def test_membership_refuses_a_lease_that_could_outlive_the_dead_timeout(failure, dead, lease):
    with pytest.raises(ValueError):
        Membership(2, FakeClock(), failure_timeout=failure, dead_timeout=dead, lease=lease)


def test_the_reaper_takes_a_dead_cpus_pages_back_and_recomputes_high():
    async def main():
        clock = FakeClock()
        zone = Zone(0, 65536, 2)
        service = ZoneService(zone, CostModel(time_scale=0), sleep=lambda s: None)
        m = Membership(2, clock, failure_timeout=1.0, dead_timeout=3.0)
        pageset = Pageset(zone, 15, 2)
        drainer = type("D", (), {"pcpu_drain_mutex": asyncio.Lock()})()
        for cpu in (0, 1):
            m.register(cpu, f"127.0.0.1:{cpu + 1}", 1, incarnation=str(cpu))
        pageset.zone_pcp_update(m.alive())
        high2, high_max2 = pageset.high, pageset.high_max
        assert high_max2 == pcp_high.high_max(65536, 15, 2)
        held = service.rmqueue(1, 0, MIGRATE_MOVABLE, 8, "t1", "1").pfns
        free = zone.free_pages
        dead = []
        reaper = Reaper(m, service, drainer, pageset, on_dead=lambda cpu, pages: dead.append((cpu, pages)))
        clock.now += 3.5
        m.heartbeat(0, 0, "0")
        assert await reaper.reap() == [1]
        assert dead == [(1, 8)] and zone.free_pages == free + 8 and not service.owned
        assert pageset.high == zone.zone_highsize(15, 1) > high2 and len(held) == 8
        # v6.7+'s high_max over the same online CPUs (zone_set_pageset_high_and_batch): one CPU, twice as many.
        assert pageset.high_max == pcp_high.high_max(65536, 15, 1) == 2 * high_max2
        assert await reaper.reap() == []  # once
        service.close()
        await m.close()

    asyncio.run(main())


def test_a_process_the_reaper_declared_dead_cannot_claim_its_pages_from_the_next_coordinator(tmp_path):
    """Sweep seed 1938 (2026-12-06): cpu1, cut off past the dead timeout, is declared dead, its pages go
    back to the zone, and the coordinator dies before cpu1 hears of it. The next coordinator, on the
    same state directory and recovering, refuses cpu1's claim of those pages (its process is in the
    store's dead) and takes a live process's claim. Before, it took both, and the live CPU that then
    held some of those pages had its own refused, or held them twice with cpu1."""

    async def main():
        clock = FakeClock()
        zone = Zone(0, 65536, 2)
        service = ZoneService(zone, CostModel(time_scale=0), sleep=lambda s: None)
        store = Store.open(str(tmp_path))
        store.begin_epoch()
        m = Membership(2, clock, failure_timeout=1.0, dead_timeout=3.0)
        m.graveyard = store
        for cpu in (0, 1):
            m.register(cpu, f"127.0.0.1:{cpu + 1}", 1, incarnation=f"inc{cpu}")
        mine = [service.rmqueue(cpu, 0, MIGRATE_MOVABLE, 8, f"t{cpu}", f"inc{cpu}").pfns for cpu in (0, 1)]
        drainer = type("D", (), {"pcpu_drain_mutex": asyncio.Lock()})()
        reaper = Reaper(m, service, drainer, Pageset(zone, 15, 2))
        clock.now += 3.5
        m.heartbeat(0, 0, "inc0")
        assert await reaper.reap() == [1] and store.declared_dead(1, "inc1")
        service.close()
        await m.close()
        # The next coordinator: the same directory, a new zone (every page free), recovering.
        later = Store.open(str(tmp_path))
        later.begin_epoch()
        zone2 = Zone(0, 65536, 2)
        service2 = ZoneService(zone2, CostModel(time_scale=0), sleep=lambda s: None)
        m2 = Membership(2, clock, failure_timeout=1.0, dead_timeout=3.0)
        m2.graveyard = later
        recovering = type("R", (), {"active": True})()
        drainer2 = type("D", (), {"pcpu_drain_mutex": asyncio.Lock()})()
        registration = Registration(m2, service2, drainer2, Pageset(zone2, 15, 2), recovering)
        free = zone2.free_pages
        claims = [[(pfn, 0, MIGRATE_MOVABLE) for pfn in pfns] for pfns in mine]
        assert await registration.register(1, "127.0.0.1:2", 1, "", "inc1", True, claims[1], 1) == (0, False)
        assert zone2.free_pages == free  # nothing claimed for the dead process
        assert await registration.register(0, "127.0.0.1:1", 1, "", "inc0", True, claims[0], 1) == (0, True)
        assert zone2.free_pages == free - 8
        service2.close()
        await m2.close()

    asyncio.run(main())


def test_a_coordinator_fenced_in_the_store_answers_a_replacing_registration_unavailable(tmp_path):
    """Sweep seed 4066 under the wall engine: cpu1's new process registers with a coordinator a newer one
    has replaced (both listen on one port), whose store refuses to bury the old process. That answer is
    UNAVAILABLE, so the node asks again (node.agent_rule.ask_again) and reaches the current coordinator;
    as FAILED_PRECONDITION, a refusal, the node exited. The old process stays the member."""

    async def main():
        zone = Zone(0, 65536, 2)
        service = ZoneService(zone, CostModel(time_scale=0), sleep=lambda s: None)
        store = Store.open(str(tmp_path))
        store.begin_epoch()
        m = Membership(2, FakeClock(), failure_timeout=1.0, dead_timeout=3.0)
        m.graveyard = store
        drainer = type("D", (), {"pcpu_drain_mutex": asyncio.Lock()})()
        registration = Registration(m, service, drainer, Pageset(zone, 15, 2), type("R", (), {"active": False})())
        await registration.register(1, "127.0.0.1:2", 1, "", "old", False, [], 0)
        Store.open(str(tmp_path)).begin_epoch()  # a second coordinator starts on the same directory
        with pytest.raises(Unavailable, match="epoch 2 has started") as refused:
            await registration.register(1, "127.0.0.1:3", 1, "", "new", False, [], 0)
        assert ask_again(status_of(refused.value).name, stopping=False, give_up=False)
        assert m.members[1].incarnation == "old" and not m.members[1].dead
        service.close()
        await m.close()

    asyncio.run(main())


# ------------------------------------------------------------------ the zone client
class ScriptedStream:
    """Answers from a script: an exception is raised, anything else returned."""

    timeout = 0.01

    def __init__(self, script):
        self.script = list(script)
        self.sent = []

    def request(self, message):
        self.sent.append(message)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def close(self):
        pass


def zone_client(script):
    client = ZoneClient(grpc.insecure_channel("127.0.0.1:1"), 0, "inc")
    client._stream = ScriptedStream(script)
    return client


def test_a_zone_request_of_unknown_outcome_is_sent_again_with_its_key_until_answered():
    """Lost replies and broken streams leave the outcome unknown: the same request (same
    transfer id) goes again, as often as it takes; the answer is then the zone's."""
    lost = StreamBroken(grpc.StatusCode.DEADLINE_EXCEEDED, "no reply")
    broken = StreamBroken(grpc.StatusCode.UNAVAILABLE, "closed")
    answer = pb.ZoneReply(rmqueue=pb.RmqueueReply(pfn=[64, 65], watermark_ok=True))
    client = zone_client([lost, broken, lost, lost, lost, lost, lost, answer])
    assert client.rmqueue_bulk(0, 2, MIGRATE_MOVABLE) == [64, 65]
    sent = client._stream.sent
    assert len(sent) == 8 and len({m.rmqueue.transfer_id for m in sent}) == 1
    assert client.unknown_outcomes == 7


@pytest.mark.parametrize("fenced", [False, True])
def test_a_refusal_unavailable_is_asked_again_a_few_times_unless_the_lease_ran_out(monkeypatch, fenced):
    """node.zone_retry_rule, as the wall client follows it: a refusal UNAVAILABLE (not applied) is asked
    again UNAVAILABLE_RETRIES times, 0.05 s x n after the n-th, and then refused; a CPU whose lease ran out
    gives up at the first."""
    pauses: list[float] = []
    monkeypatch.setattr("node.zone_client.time.sleep", pauses.append)
    refusal = pb.ZoneReply(code="UNAVAILABLE", error="the coordinator is rebuilding its zone")
    client = zone_client([refusal] * (UNAVAILABLE_RETRIES + 1))
    client.fenced = lambda: fenced
    with pytest.raises(ZoneRefused, match="rebuilding"):
        client.rmqueue_bulk(0, 2, MIGRATE_MOVABLE)
    expected = [] if fenced else [pytest.approx(0.05 * n) for n in range(1, UNAVAILABLE_RETRIES + 1)]
    assert pauses == expected
    assert len(client._stream.sent) == len(expected) + 1


def test_a_definite_refusal_is_not_retried_and_keeps_the_pages_on_the_pcp():
    _, pcp, _ = filled()
    before = sorted(pcp.pages())
    client = zone_client(
        [
            StreamBroken(grpc.StatusCode.DEADLINE_EXCEEDED, "lost"),
            pb.ZoneReply(code="FAILED_PRECONDITION", error="cpu 0 was declared dead"),
        ]
    )
    client.reclaim_active = False
    with pytest.raises(ZoneRefused, match="declared dead"):
        free_pcppages_bulk(client, 10, pcp, 0)
    assert sorted(pcp.pages()) == before and len(client._stream.sent) == 2


def test_a_free_refused_by_a_coordinator_this_cpu_never_registered_with_gives_its_pages_up():
    """Seed 516 of the 1,000-seed sweep: a free in flight across a coordinator's restart (so the node
    could not register and claim its pages) is refused by the new coordinator, whose zone counts them
    free and has handed them out: keeping them would hold them twice. The same refusal from the
    coordinator the node registered with keeps them (a refused free changes nothing)."""

    class Lines:
        def __init__(self):
            self.lines = []

        def write(self, ev, **fields):
            self.lines.append({"ev": ev, **fields})

    for epoch, kept in ((2, False), (1, True)):
        _, pcp, _ = filled()
        before = sorted(pcp.pages())
        client = zone_client(
            [
                StreamBroken(grpc.StatusCode.UNAVAILABLE, "the coordinator died"),
                pb.ZoneReply(code="FAILED_PRECONDITION", error="the zone records it as free", coordinator_epoch=epoch),
            ]
        )
        client.epoch.reply("Register", 1)
        client.transfer_log = log = Lines()
        client.reclaim_active = False
        if kept:
            with pytest.raises(ZoneRefused, match="records it as free"):
                free_pcppages_bulk(client, 10, pcp, 0)
            assert sorted(pcp.pages()) == before
        else:
            assert free_pcppages_bulk(client, 10, pcp, 0) == 10
            assert len(pcp.pages()) == len(before) - 10
        assert [line["ev"] for line in log.lines] == ["free", "keep"] if kept else ["free"]


def test_a_batched_free_that_fails_half_way_leaves_the_rest_with_the_task():
    """free_unref_page_list meets a zone that stops answering after the first direct free: the
    page it freed is gone, every page on a pcp list is there, and the rest are still held."""
    zone, _pcp, alloc = filled()
    big = [alloc.alloc_pages(10, MIGRATE_MOVABLE) for _ in range(3)]  # uncached: freed straight to the zone
    small = [alloc.alloc_pages(0, MIGRATE_MOVABLE) for _ in range(3)]
    real = zone.free_one_page
    calls = []

    def flaky(pfn, order, mt):
        calls.append(pfn)
        if len(calls) > 1:
            raise ConnectionError("zone unreachable")
        real(pfn, order, mt)

    zone.free_one_page = flaky
    with pytest.raises(ConnectionError):
        alloc.free_pages_list(big + small)
    assert big[0] not in alloc.allocated and zone.free_block_at(big[0]) is not None
    assert all(pfn in alloc.allocated for pfn in big[1:] + small)
