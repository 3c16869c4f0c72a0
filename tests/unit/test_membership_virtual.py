"""Membership, the reaper and the node's agent under virtual time: the same rules as the wall engine
(coordinator.membership_rule, registration_rule, reaper_rule; node.agent_rule, node.epoch_rule), driven
by coordinator.virtual_members and node.virtual.agent over node.sim's queue and network. Every instant
asserted here follows from the seed; nothing reads a wall clock."""

from dataclasses import dataclass, field
from typing import Any

import pytest

from coordinator.drain.control import Control
from coordinator.drain.effects import Lock, Sleep, Unlock
from coordinator.drain.virtual import VirtualDriver, VirtualMutex
from coordinator.membership import LEASE_MARGIN_S, Membership
from coordinator.virtual_members import VirtualMembers
from node.agent_rule import REGISTER_BACKOFF_S, REGISTER_TIMEOUT_S
from node.api.v1 import pcpsim_pb2 as pb
from node.identity import Ids
from node.shared.timebase import TIME_SCALE
from node.sim.clock import EventQueue
from node.sim.net import LOOPBACK_ZONE_RTT_US, Latency, SimNetwork
from node.sim.rng import RngTree
from node.virtual.agent import VirtualAgent

ONE_WAY = Latency.scaled(LOOPBACK_ZONE_RTT_US, 1e-6 / 2 / TIME_SCALE)
FAILURE_S = 0.5  # the chaos scenarios' settings: lease 0.5 s, dead timeout 1.5 s
BEAT_S = 0.05
REAP_S = FAILURE_S / 4  # as coordinator.__main__ runs the reaper
PAGES = [(100, 0, 0), (101, 0, 0)]


class ZoneService:
    """The zone service's two calls registration and the reaper make, recorded."""

    def __init__(self) -> None:
        self.cpu_dead_calls: list[int] = []
        self.claimed: list[int] = []

    def cpu_dead(self, cpu: int) -> int:
        self.cpu_dead_calls.append(cpu)
        return len(PAGES)

    def claim(self, cpu: int, holdings: list[Any]) -> int:
        self.claimed.append(cpu)
        return len(holdings)


@dataclass
class Host:
    lease_until: float = float("inf")
    parked: bool = False
    incarnation: str = ""
    pages: list[tuple[int, int, int]] = field(default_factory=lambda: list(PAGES))
    discards: int = 0

    def pcp_count(self) -> int:
        return len(self.pages)

    def holdings(self) -> list[tuple[int, int, int]]:
        return list(self.pages)

    def when_parked(self, fn) -> None:
        fn()  # parks at once

    def discard(self) -> None:
        self.pages.clear()
        self.discards += 1

    def park(self, parked: bool) -> None:
        self.parked = parked

    def set_pageset(self, high: int, batch: int, high_max: int) -> None:
        pass

    def zone_heard(self, free_pages: int, reclaim_active: bool, below_high: bool) -> None:
        pass


class Lossy:
    """A coordinator that applies every request and loses the first `lose` Register answers; it keeps
    every Register request it saw."""

    def __init__(self, inner: VirtualMembers, lose: int = 0) -> None:
        self.inner = inner
        self.lose = lose
        self.registers: list[pb.RegisterRequest] = []

    def handle(self, method: str, request: Any, reply: Any) -> None:
        if method == "Register":
            self.registers.append(request)
            if self.lose:
                self.lose -= 1
                self.inner.handle(method, request, lambda answer: None)
                return
        self.inner.handle(method, request, reply)


class Cluster:
    def __init__(self, seed: int, dead_s: float = 1.5, lose: int = 0, epoch: int = 0) -> None:
        tree = RngTree(seed)
        self.queue = queue = EventQueue()
        self.net = SimNetwork(queue, tree.stream("net"), ONE_WAY)
        self.membership = Membership(2, queue.clock, failure_timeout=FAILURE_S, dead_timeout=dead_s)
        self.zone = ZoneService()
        self.mutex = VirtualMutex()
        members: list[VirtualMembers] = []
        self.peers: dict[int, Any] = {}
        self.control = Control(self.membership, queue.clock)
        self.driver = VirtualDriver(self.control, queue, self.net, self.peers, self.zone, lambda m: members[0].kill(m))
        self.members = VirtualMembers(self.membership, self.driver, self.mutex, epoch=epoch)
        members.append(self.members)
        self.coordinator = Lossy(self.members, lose)
        self.host = Host()
        request = pb.RegisterRequest(cpu=1, address="virtual:1", role=pb.ROLE_HOUSEKEEPING)
        self.agent = VirtualAgent(
            queue, self.net, self.host, self.coordinator, request, Ids(tree.stream("cpu1-ids")), BEAT_S
        )
        self.agent.trace = self.driver.trace  # one trace, in event order
        self.agent.start()
        self.members.start_reaper(REAP_S)

    def at(self, when: float, fn: Any) -> None:
        self.queue.at(when, fn)

    def run(self, until: float) -> None:
        self.queue.run(until)


def test_a_cpu_registers_beats_and_runs_with_a_lease_renewed_from_each_heartbeat_sent():
    c = Cluster(seed=1)
    c.run(1.0)
    member = c.membership.members[1]
    assert not c.host.parked and member.incarnation == c.agent.incarnation and not member.dead
    # The lease runs from the last answered heartbeat's sending, so it ends within a beat and a lease of now.
    assert 1.0 < c.host.lease_until <= 1.0 + FAILURE_S
    assert c.membership.is_up(member)


@pytest.mark.parametrize("dead_s", [1.5, 0.6])
def test_a_silent_cpu_is_declared_dead_at_the_first_reaper_round_the_rule_allows(dead_s):
    """dead 1.5 s: the dead timeout decides; dead 0.6 s: the lease and its margin (0.75 s) do."""
    c = Cluster(seed=2, dead_s=dead_s)
    c.at(1.0, c.agent.stop)
    c.run(4.0)
    member = c.membership.members[1]
    assert member.dead and c.zone.cpu_dead_calls == [1]
    ((died, cpu),) = c.members.deaths
    heard = member.last_heartbeat  # when the coordinator received the last heartbeat
    assert cpu == 1 and heard < 1.0 + BEAT_S
    bound = max(dead_s, FAILURE_S + LEASE_MARGIN_S)
    # Rounds run every REAP_S from 0: the first at or after heard + bound, not one earlier.
    rounds = [0.0]
    while rounds[-1] < heard + bound:
        rounds.append(rounds[-1] + REAP_S)
    assert died == rounds[-1]
    assert f"{died!r} cpu1 declared dead" in c.driver.trace


def test_a_lost_register_answer_is_asked_again_with_the_same_incarnation_and_the_cpu_runs_again():
    c = Cluster(seed=3)
    c.run(1.0)
    c.members.kill(c.membership.members[1])  # declared dead: it must register afresh
    c.coordinator.lose = 1  # and the answer to that registration is lost
    c.run(1.0 + 1.0 + REGISTER_TIMEOUT_S + REGISTER_BACKOFF_S[0] + 1.0)
    first, *again = [r.incarnation for r in c.coordinator.registers]
    assert len(again) == 2 and again[0] == again[1] != first  # asked again, unchanged
    assert c.host.discards == 1 and not c.host.parked and not c.agent.in_doubt
    assert c.membership.members[1].incarnation == again[0] and not c.membership.members[1].dead
    assert any(line.endswith("cpu1 Register timed out") for line in c.driver.trace)


def test_a_retried_registration_is_answered_while_a_drain_holds_pcpu_drain_mutex():
    """Seed 800 of a 1,000-seed sweep: a drain took the mutex right after a new process's registration
    and waited for that process's work, which runs only once the process hears it is registered; its
    retry waited for the mutex, until the drain's flush timeout. A retry that changes nothing does not."""
    c = Cluster(seed=3)
    c.run(1.0)
    c.members.kill(c.membership.members[1])
    c.coordinator.lose = 1
    now = 1.0
    while c.coordinator.lose:  # until the new process's registration is applied, its answer lost
        now += 0.01
        c.run(now)
    assert c.host.parked and c.membership.members[1].incarnation == c.agent.incarnation
    held_s = 10 * REGISTER_TIMEOUT_S

    def drain():  # holds pcpu_drain_mutex as a drain waiting for this CPU's work does
        yield Lock(c.mutex)
        yield Sleep(held_s)
        yield Unlock(c.mutex)

    c.driver.start(drain(), lambda value, error: None)
    c.run(now + REGISTER_TIMEOUT_S + REGISTER_BACKOFF_S[-1] + 1.0)
    asked = [r.incarnation for r in c.coordinator.registers].count(c.agent.incarnation)
    assert c.mutex.held and asked == 2  # asked again once, answered at once
    assert not c.host.parked and not c.agent.in_doubt and c.zone.cpu_dead_calls == [1, 1]  # the kill, the new process


def test_a_revoked_lease_refuses_further_heartbeats_and_the_cpu_registers_afresh():
    c = Cluster(seed=4)
    c.run(1.0)
    old = c.membership.members[1]
    c.membership.revoke(old)
    heard = old.last_heartbeat
    c.run(3.0)
    assert old.last_heartbeat == heard  # not renewed from the revocation on
    refused = [line for line in c.driver.trace if "Heartbeat refused: FAILED_PRECONDITION" in line]
    assert refused and float(refused[0].split()[0]) >= 1.0
    new = c.membership.members[1]
    assert new is not old and new.incarnation != old.incarnation and c.zone.cpu_dead_calls == [1]
    assert c.host.discards == 1 and not c.host.parked


def test_a_reply_of_a_newer_coordinator_epoch_makes_the_agent_register_again_resuming():
    c = Cluster(seed=5, epoch=1)
    c.run(1.0)
    assert c.agent.epoch.registered == 1
    c.members.epoch = 2  # a successor coordinator answers from now on
    before = len(c.coordinator.registers)
    c.run(3.0)
    resumed = c.coordinator.registers[before]
    assert resumed.resume and resumed.incarnation == c.coordinator.registers[0].incarnation
    assert list(resumed.holdings.pfn) == [pfn for pfn, _, _ in PAGES]
    # It knew this incarnation but claimed nothing for it (not recovering): the node starts afresh.
    afresh = c.coordinator.registers[before + 1]
    assert not afresh.resume and c.host.discards == 1 and not c.host.parked
    assert c.agent.epoch.registered == 2


class Silent:
    """A CPU whose control stream answers nothing (partitioned)."""

    def control(self, message: Any, epoch: int = 0) -> None:
        return None

    def call(self, method: str, request: Any, epoch: int = 0) -> None:
        return None


def test_a_drains_declare_dead_goes_through_the_same_kill_once():
    """A commit that goes unanswered while the CPU is silent declares it dead once its lease has run
    out (coordinator.drain.control), through VirtualMembers.kill; the reaper then finds nothing to do."""
    c = Cluster(seed=6)
    c.run(1.0)
    c.agent.stop()
    c.peers[1] = Silent()
    member = c.membership.members[1]
    commit = pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=1, token=7, commit=True))
    outcome: list[Any] = []
    c.driver.start(c.control.commit(member, commit), lambda value, error: outcome.append(error))
    c.run(5.0)
    assert outcome and "lease has run out" in str(outcome[0])
    ((died, cpu),) = c.members.deaths
    assert cpu == 1 and c.zone.cpu_dead_calls == [1] and member.dead
    # The lease decided, not the reaper's dead timeout (1.5 s).
    assert FAILURE_S + LEASE_MARGIN_S <= died - member.last_heartbeat < 1.5


def trace(seed: int) -> list[str]:
    c = Cluster(seed=seed, lose=1)
    c.at(1.0, c.agent.stop)
    c.run(4.0)
    return [*c.driver.trace, c.agent.incarnation]


def test_one_seed_gives_one_trace_and_another_seed_another():
    assert trace(7) == trace(7)
    assert trace(7) != trace(8)
