"""Membership leases as the coordinator can prove them, and what rests on them: a drain's
commit asked again until answered (a node is declared dead only once its lease has provably
run out, never because one commit went unanswered), and a node's Register asked again, the
same incarnation, until answered (a lost answer must not park its CPU for ever)."""

import asyncio
import time

import grpc
import pytest

from coordinator.drain import control as control_mod
from coordinator.drain.control import REVOKE_AFTER_S, Control, NodeRefused
from coordinator.drain.effects import Failed
from coordinator.drain.wall import WallDriver
from coordinator.membership import LEASE_MARGIN_S, Membership
from node.agent import Agent
from node.api.errors import FailedPrecondition
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu import MEMBERSHIP
from node.epoch import CoordinatorEpoch
from node.shared.faults import InjectedRpcError
from node.shared.reply_stream import StreamBroken
from node.shared.timebase import lease_clock
from tests.clock import FakeClock

LOST = StreamBroken(grpc.StatusCode.DEADLINE_EXCEEDED, "no reply")
COMMIT = pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=1, token=7, commit=True))


def test_the_lease_clock_counts_like_the_monotonic_clock():
    """Each lease-clock read is bracketed by two monotonic reads, so a preemption between the reads (a
    loaded host) widens the bracket instead of failing the test: the lease clock's interval must lie
    within the monotonic intervals that contain and are contained by it (1 ms of slack: the two clocks
    tick apart only while the machine is suspended)."""
    m0 = time.monotonic()
    a = lease_clock()
    m1 = time.monotonic()
    time.sleep(0.02)
    m2 = time.monotonic()
    b = lease_clock()
    m3 = time.monotonic()
    assert m2 - m1 - 0.001 <= b - a <= m3 - m0 + 0.001
    assert b - a >= 0.02 - 0.001


# ------------------------------------------------------------------ the rule
def test_a_lease_is_over_only_a_margin_after_the_last_heartbeat_received():
    async def main():
        clock = FakeClock()
        m = Membership(2, clock, failure_timeout=1.0, dead_timeout=1.1)
        member = m.register(1, "127.0.0.1:1", pb.ROLE_HOUSEKEEPING, incarnation="a")
        clock.now += 1.0 + LEASE_MARGIN_S - 0.01
        # Silent past the dead timeout, but the node may still be using its pages.
        assert not m.lease_expired(member) and m.overdue() == []
        clock.now += 0.01
        assert m.lease_expired(member) and m.overdue() == [member]
        m.heartbeat(1, 0, "a")
        assert not m.lease_expired(member) and m.overdue() == []
        await m.close()

    asyncio.run(main())


def test_a_revoked_lease_is_no_longer_renewed_and_then_runs_out():
    async def main():
        clock = FakeClock()
        m = Membership(2, clock, failure_timeout=1.0, dead_timeout=3.0)
        member = m.register(1, "127.0.0.1:1", pb.ROLE_HOUSEKEEPING, incarnation="a")
        m.revoke(member)
        with pytest.raises(FailedPrecondition, match="revoked"):
            m.heartbeat(1, 0, "a")
        assert member not in m.online() and m.is_current(member) and m.alive() == 1
        clock.now += 1.0 + LEASE_MARGIN_S
        assert m.lease_expired(member)
        await m.close()

    asyncio.run(main())


# ------------------------------------------------------------------ the drain's commit
class FakeReaper:
    def __init__(self, membership):
        self.membership = membership
        self.killed = []

    async def kill(self, member):
        self.membership.declare_dead(member)
        self.killed.append(member.cpu)
        return 0


class ScriptedControl:
    """A member's control stream: each request takes its timeout on the fake clock and is lost,
    or answers. `beat` is called per request (the node's heartbeats meanwhile)."""

    def __init__(self, clock, answer_after: int, beat=lambda: None):
        self.clock = clock
        self.answer_after = answer_after
        self.beat = beat
        self.timeouts = []

    async def request(self, message, timeout):
        self.timeouts.append(timeout)
        self.beat()
        if len(self.timeouts) > self.answer_after:
            return pb.PcpControlReply()
        self.clock.now += timeout
        raise LOST

    def close(self):
        pass


def commit_run(monkeypatch, answer_after: int, heartbeats: bool, unsafe: bool = False):
    """Commit to cpu1 (lease 0.5 s, dead timeout 1.5 s, the chaos scenarios' settings)."""
    monkeypatch.setattr(control_mod, "COMMIT_RETRY_S", 0)

    async def main():
        clock = FakeClock()
        m = Membership(2, clock, failure_timeout=0.5, dead_timeout=1.5)
        member = m.register(1, "127.0.0.1:1", pb.ROLE_HOUSEKEEPING, incarnation="a")

        def beat():
            if heartbeats and not member.revoked:
                m.heartbeat(1, 0, "a")

        member.control = stream = ScriptedControl(clock, answer_after, beat)
        control = Control(m, clock)
        control.reaper = reaper = FakeReaper(m)
        control.declare_dead_on_lost_commit = unsafe
        error = None
        try:
            await WallDriver(control).run(control.commit(member, COMMIT))
        except NodeRefused as err:
            error = str(err)
        await m.close()
        return error, reaper.killed, stream.timeouts, member

    return asyncio.run(main())


def test_lost_commits_are_asked_again_each_within_a_lease_and_no_live_cpu_is_declared_dead(monkeypatch):
    error, killed, timeouts, member = commit_run(monkeypatch, answer_after=6, heartbeats=True)
    assert error is None and killed == [] and not member.revoked
    assert timeouts == [0.5] * 7  # 3 s of lost commits: six attempts lost, the seventh answered


def test_the_old_commit_declares_a_live_cpu_dead_after_one_lost_attempt(monkeypatch):
    error, killed, timeouts, _ = commit_run(monkeypatch, answer_after=6, heartbeats=True, unsafe=True)
    assert killed == [1] and "within the dead timeout" in error
    assert timeouts == [1.5]  # the first attempt used the whole dead timeout


def test_a_silent_cpu_is_declared_dead_once_its_lease_has_provably_run_out(monkeypatch):
    error, killed, timeouts, _ = commit_run(monkeypatch, answer_after=100, heartbeats=False)
    assert killed == [1] and "lease has run out" in error
    assert sum(timeouts) >= 0.5 + LEASE_MARGIN_S and len(timeouts) == 2


def test_a_broken_control_stream_of_a_beating_cpu_revokes_its_lease_then_reaps_it(monkeypatch):
    """Heartbeats come, commits are never answered: bounded, and its pages are taken back
    only once the lease it can no longer renew has run out."""
    error, killed, timeouts, member = commit_run(monkeypatch, answer_after=100, heartbeats=True)
    assert member.revoked and killed == [1] and "lease has run out" in error
    revoked_after = REVOKE_AFTER_S / 0.5
    assert revoked_after <= len(timeouts) <= revoked_after + 3


def test_a_commit_answered_after_the_cpu_was_replaced_mid_drain_stops(monkeypatch):
    monkeypatch.setattr(control_mod, "COMMIT_RETRY_S", 0)

    async def main():
        clock = FakeClock()
        m = Membership(2, clock, failure_timeout=0.5, dead_timeout=1.5)
        member = m.register(1, "127.0.0.1:1", pb.ROLE_HOUSEKEEPING, incarnation="a")
        member.control = ScriptedControl(clock, 100, lambda: m.register(1, "127.0.0.1:2", 1, incarnation="b"))
        control = Control(m, clock)
        control.reaper = reaper = FakeReaper(m)
        with pytest.raises(NodeRefused, match="replaced"):
            await WallDriver(control).run(control.commit(member, COMMIT))
        assert reaper.killed == []
        await m.close()

    asyncio.run(main())


# ------------------------------------------------------------------ the node's Register
class FakeCpu:
    def __init__(self):
        self.pausers = set()

    def set_paused(self, paused, timeout, by):
        (self.pausers.add if paused else self.pausers.discard)(by)
        return True

    def held_paused_by(self, by):
        return by in self.pausers


class FakeRuntime:
    def __init__(self):
        self.cpu_id = 1
        self.incarnation = "a"
        self.lease_until = 0.0
        self.cpu = FakeCpu()
        self.pcp = type("P", (), {"count": 0})()
        self.zone = type("Z", (), {})()
        self.epoch = CoordinatorEpoch()

    def set_pageset(self, high, batch, high_max):
        pass

    def discard(self):
        self.incarnation = "b"  # a new incarnation, as NodeRuntime.discard takes

    def holdings(self):
        return []


class Coordinator:
    """Register applies every request and loses the first `lost` answers; heartbeats of an
    incarnation it registered succeed, others are refused (declared dead)."""

    def __init__(self, lost: int):
        self.lost = lost
        self.registered = []

    async def Register(self, request, timeout):
        self.registered.append(request.incarnation)
        if len(self.registered) <= self.lost:
            raise InjectedRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "reply lost")
        return pb.RegisterReply(lease_ms=500, heartbeat_interval_ms=50, high=10, batch=2)

    async def Heartbeat(self, request, timeout):
        if request.incarnation not in self.registered:
            raise InjectedRpcError(grpc.StatusCode.FAILED_PRECONDITION, "cpu 1 was declared dead")
        return pb.HeartbeatReply(heartbeat_interval_ms=50, high=10, batch=2)


class NoFaults:
    async def outbound(self, method, peer, timeout):
        pass


def rejoin_run(monkeypatch, lost: int, register_once: bool):
    monkeypatch.setattr("node.agent.REGISTER_BACKOFF_S", (0.001, 0.002))

    async def main():
        coordinator, runtime = Coordinator(lost), FakeRuntime()
        agent = Agent(coordinator, runtime, pb.RegisterRequest(cpu=1), NoFaults(), FakeClock(), register_once)
        await agent.heartbeat_once()  # refused: discard, take incarnation b, register
        await agent.heartbeat_once()  # b is known to the coordinator: answered OK
        return coordinator.registered, runtime.cpu.held_paused_by(MEMBERSHIP), agent.in_doubt

    return asyncio.run(main())


def test_a_register_whose_answer_is_lost_is_asked_again_with_the_same_incarnation(monkeypatch):
    registered, parked, in_doubt = rejoin_run(monkeypatch, lost=3, register_once=False)
    assert registered == ["b"] * 4 and not parked and not in_doubt


def test_the_old_register_once_leaves_the_cpu_parked_though_its_heartbeats_succeed(monkeypatch):
    registered, parked, in_doubt = rejoin_run(monkeypatch, lost=1, register_once=True)
    assert registered == ["b"] and parked and in_doubt


def test_a_heartbeat_answered_while_nothing_is_in_doubt_lets_a_parked_cpu_run():
    async def main():
        runtime = FakeRuntime()
        coordinator = Coordinator(lost=0)
        coordinator.registered.append("a")
        agent = Agent(coordinator, runtime, pb.RegisterRequest(cpu=1), NoFaults(), FakeClock())
        runtime.cpu.set_paused(True, 1.0, MEMBERSHIP)
        agent.recovering = True
        coordinator.Heartbeat = recovering_reply(coordinator.Heartbeat)
        await agent.heartbeat_once()
        assert runtime.cpu.held_paused_by(MEMBERSHIP)  # the coordinator still rebuilds its zone
        coordinator.Heartbeat = Coordinator.Heartbeat.__get__(coordinator)
        await agent.heartbeat_once()
        assert not runtime.cpu.held_paused_by(MEMBERSHIP)

    asyncio.run(main())


def recovering_reply(heartbeat):
    async def wrapped(request, timeout):
        reply = await heartbeat(request, timeout)
        reply.recovering = True
        return reply

    return wrapped


# ------------------------------------------------------------------ a request nothing depends on yet
class SilentControl:
    """A control stream that never answers (a partitioned node), counting cancellations."""

    def __init__(self):
        self.cancelled = 0

    async def request(self, message, timeout):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    def close(self):
        pass


def test_a_lock_or_swap_request_stops_waiting_once_the_lease_has_run_out(monkeypatch):
    """Taking the lock or swapping the list sets gives up when the member's membership lease has
    provably run out, long before its own bound (rcu-swap's: two grace periods and a round trip),
    so the drain lets go of pcpu_drain_mutex and the reaper can declare the CPU dead."""
    monkeypatch.setattr(control_mod, "LEASE_POLL_S", 0.001)

    async def main():
        clock = FakeClock()
        m = Membership(2, clock, failure_timeout=0.5, dead_timeout=1.5)
        member = m.register(1, "127.0.0.1:1", pb.ROLE_HOUSEKEEPING, incarnation="a")
        member.control = stream = SilentControl()
        control = Control(m, clock)
        swap = pb.PcpControlRequest(rcu_swap=pb.RcuSwapRequest(cpu=1, gp_timeout_ms=2000, lease_ms=500))
        asking = asyncio.ensure_future(
            WallDriver(control).run(control.request(member, 9.0, swap, until_lease_expires=True))
        )
        await asyncio.sleep(0.02)
        assert not asking.done()  # the lease still runs: it waits
        clock.now += 0.5 + LEASE_MARGIN_S
        with pytest.raises(Failed, match="lease ran out"):
            await asyncio.wait_for(asking, 5.0)
        assert stream.cancelled == 1 and m.is_current(member)  # given up on, not declared dead
        await m.close()

    asyncio.run(main())
