"""The drain rules (coordinator.drain: the strategies, Control, drain_all_pages) run by the virtual driver
(coordinator.drain.virtual) against scripted CPUs, in virtual time: every instant is exact, so each rule's
timing is asserted as the rule states it, and one seed gives one trace."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from coordinator.drain import drain_all
from coordinator.drain.control import COMMIT_RETRY_S, LEASE_POLL_S, REVOKE_AFTER_S, Control
from coordinator.drain.virtual import VirtualDriver, VirtualMutex
from coordinator.drain.virtual_ends import Answer
from coordinator.membership import LEASE_MARGIN_S, Member, Membership
from node.api.errors import FailedPrecondition
from node.api.v1 import pcpsim_pb2 as pb
from node.mm import profile as profiles
from node.shared.timebase import TIME_SCALE
from node.sim.clock import EventQueue
from node.sim.net import LOOPBACK_ZONE_RTT_US, Latency, SimNetwork
from node.sim.rng import RngTree
from tests import hashseed

LEASE_S, DEAD_S = 0.5, 1.5  # the chaos scenarios' membership lease and dead timeout
HEARTBEAT_S = 0.1
ONE_WAY = Latency.scaled(LOOPBACK_ZONE_RTT_US, 1e-6 / 2 / TIME_SCALE)


def pages(*pfns: int) -> pb.PageList:
    return pb.PageList(pfn=list(pfns), order=[0] * len(pfns), migratetype=[0] * len(pfns))


def grant(token: int, pfns: tuple[int, ...], left: int = 0) -> pb.PcpControlReply:
    return pb.PcpControlReply(lock_drain=pb.PcpLockDrainReply(token=token, pages=pages(*pfns), left=left))


UNLOCKED = pb.PcpControlReply(unlocked=pb.Empty())
ABANDONED = Answer(pb.PcpControlReply(abandoned=pb.AbandonReply()))


@dataclass
class ScriptedCpu:
    """A CPU whose answers are scripted per operation, in order (the last one repeats); None is a lost
    request. `seen` lists the operations it received. An abandon nobody scripted is answered as by a
    node whose grant it did not end."""

    script: dict[str, list[Answer | None]]
    seen: list[str] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)

    def _next(self, op: str) -> Answer | None:
        self.seen.append(op)
        answers = self.script.get(op) or ([ABANDONED] if op == "abandon" else self.script[op])
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def control(self, message: Any, epoch: int = 0) -> Answer | None:
        self.messages.append(message)
        return self._next(message.WhichOneof("op"))

    def call(self, method: str, request: Any, epoch: int = 0) -> Answer | None:
        return self._next(method)


@dataclass
class View:
    """The drainer as a strategy sees it (coordinator.drain.strategy.DrainerView)."""

    clock: Callable[[], float]
    membership: Membership
    control: Control
    lease_ms: int = 500
    flush_timeout_ms: int = 2000
    gp_timeout_ms: int = 2000


class Cluster:
    def __init__(self, seed: int, cpus: dict[int, ScriptedCpu], beating: bool = True, stop_for_s=None):
        self.queue = EventQueue()
        rng = RngTree(seed)
        self.net = SimNetwork(self.queue, rng.stream("net"), ONE_WAY)
        self.membership = Membership(max(cpus) + 1, self.queue.clock, failure_timeout=LEASE_S, dead_timeout=DEAD_S)
        for cpu in cpus:  # registered without a channel: the virtual driver reaches CPUs as Peers
            member = Member(cpu, f"virtual:{cpu}", pb.ROLE_HOUSEKEEPING, None, None, 0.0, pcp_count=1)  # type: ignore[arg-type]
            member.incarnation = "a"
            self.membership.members[cpu] = member
        self.control = Control(self.membership, self.queue.clock)
        self.view = View(self.queue.clock, self.membership, self.control)
        self.freed: list[tuple[float, int, str]] = []
        self.dead: list[tuple[float, int]] = []
        self.revoked: list[tuple[float, int]] = []
        self.driver = VirtualDriver(
            self.control, self.queue, self.net, cpus, self, self._declare_dead, stop_for_s=stop_for_s
        )
        revoke = self.membership.revoke

        def revoke_noted(member: Member) -> None:
            self.revoked.append((self.queue.clock.now, member.cpu))
            revoke(member)

        self.membership.revoke = revoke_noted  # type: ignore[method-assign]
        if beating:
            for cpu in cpus:
                self.queue.at(0.0, self._beat, cpu)
        self.mutex = VirtualMutex()

    def _beat(self, cpu: int) -> None:
        """The node's heartbeats, until the coordinator refuses them (revoked or dead)."""
        try:
            self.membership.heartbeat(cpu, 1, "a")
        except FailedPrecondition:
            return
        self.queue.after(HEARTBEAT_S, self._beat, cpu)

    def free_pages(self, cpu: int, pages: list, transfer_id: str, incarnation: str, stream: str) -> None:
        """The zone service's free_pages, as the virtual driver calls it (this cluster is its zone)."""
        self.freed.append((self.queue.clock.now, cpu, transfer_id))

    def _declare_dead(self, member: Member) -> int:
        self.dead.append((self.queue.clock.now, member.cpu))
        self.membership.declare_dead(member)
        return 0

    def drain(self, strategy: pb.Strategy, trigger: pb.Trigger = pb.TRIGGER_DEMAND, until: float = 60.0):
        program = drain_all.drain_all_pages(self.view, self.mutex, strategy, True, trigger)
        return self.driver.run(program, until)

    def times(self, what: str) -> list[float]:
        """The instants of trace lines ending with `what`."""
        return [float(line.split()[0]) for line in self.driver.trace if line.endswith(what)]


def remote_cpu(unlock: list[Answer | None]) -> ScriptedCpu:
    return ScriptedCpu({"lock_drain": [Answer(grant(7, (64, 65, 66)), after_s=2e-6)], "unlock": unlock})


# ------------------------------------------------------------------ the chunked drain (v6.10+)
def test_a_chunked_drain_commits_each_grant_before_the_next_and_frees_it_while_the_next_holds_the_lock():
    """The node says in `left` what drain_pages_zone's loop still has to drain: the rule sends it back
    in the next lock_drain, only after the previous grant is committed (the lock is free in between),
    and frees the committed chunk once the next grant holds the lock, as the kernel frees a chunk
    under pcp->lock; the last chunk is freed after its commit. It stops at left 0."""
    cpu = ScriptedCpu(
        {
            "lock_drain": [Answer(grant(7, (64, 65), left=1), after_s=2e-6), Answer(grant(8, (66,)), after_s=2e-6)],
            "unlock": [Answer(UNLOCKED)],
        }
    )
    c = Cluster(1, {1: cpu})
    record = c.drain(pb.STRATEGY_REMOTE)
    assert record.status == pb.DrainAllReply.DONE and record.cpus[0].pages == 3
    assert cpu.seen == ["lock_drain", "unlock", "lock_drain", "unlock"]
    asked = [m.lock_drain.left for m in cpu.messages if m.WhichOneof("op") == "lock_drain"]
    assert asked == [0, 1]
    assert [line.split(" ", 1)[1] for line in c.driver.trace] == [
        "cpu1 PcpControl.lock_drain sent",
        "cpu1 PcpControl.lock_drain answered",
        "cpu1 PcpControl.unlock sent",
        "cpu1 PcpControl.unlock answered",
        "cpu1 PcpControl.lock_drain sent",
        "cpu1 PcpControl.lock_drain answered",
        "cpu1 frees 2 blocks drain-cpu1-a-7",
        "cpu1 PcpControl.unlock sent",
        "cpu1 PcpControl.unlock answered",
        "cpu1 frees 1 blocks drain-cpu1-a-8",
    ]


def test_a_node_that_grants_nothing_and_keeps_its_count_fails_its_cpu_instead_of_looping_for_ever():
    cpu = ScriptedCpu({"lock_drain": [Answer(grant(0, (), left=5), after_s=2e-6)], "unlock": [Answer(UNLOCKED)]})
    c = Cluster(1, {1: cpu})
    record = c.drain(pb.STRATEGY_REMOTE)
    assert record.status == pb.DrainAllReply.FAILED and cpu.seen == ["lock_drain", "lock_drain"]
    assert record.cpus[0].error == "InvalidArgument: cpu 1 granted nothing and left 5 of 5 to drain"


# ------------------------------------------------------------------ Control: the commit
def test_a_lost_commit_is_asked_again_after_its_attempt_and_the_pages_are_freed_once_after_the_answer():
    cpu = remote_cpu([None, Answer(UNLOCKED)])
    c = Cluster(1, {1: cpu})
    record = c.drain(pb.STRATEGY_REMOTE)
    assert record.status == pb.DrainAllReply.DONE and record.cpus[0].pages == 3
    assert cpu.seen == ["lock_drain", "unlock", "unlock"]
    first, second = c.times("unlock sent")
    # One attempt waits a membership lease, then the rule sleeps COMMIT_RETRY_S before asking again.
    assert c.times("unlock timed out") == [first + LEASE_S]
    assert second == first + LEASE_S + COMMIT_RETRY_S
    assert c.freed == [(c.times("unlock answered")[0], 1, "drain-cpu1-a-7")]
    assert c.dead == [] and c.revoked == []


def test_a_silent_stream_of_a_beating_cpu_is_revoked_then_declared_dead_the_instant_its_lease_is_provably_over():
    c = Cluster(1, {1: remote_cpu([None])})
    record = c.drain(pb.STRATEGY_REMOTE)
    assert record.status == pb.DrainAllReply.FAILED and "lease has run out: declared dead" in record.cpus[0].error
    assert c.freed == []  # never answered: the pages are taken back by page_alloc_cpu_dead, not freed twice
    checks = c.times("unlock timed out")  # the commit rule looks after each lost attempt
    commit_start = c.times("unlock sent")[0]
    # Revoked at the first check REVOKE_AFTER_S after the commit began, the heartbeats still coming then.
    ((revoked_at, _),) = c.revoked
    assert revoked_at == min(t for t in checks if t >= commit_start + REVOKE_AFTER_S)
    last_beat = c.membership.members[1].last_heartbeat
    assert revoked_at - HEARTBEAT_S < last_beat <= revoked_at
    # Declared dead at the first check at which the lease, no longer renewed, is provably over.
    over = last_beat + LEASE_S + LEASE_MARGIN_S
    ((dead_at, _),) = c.dead
    assert dead_at == min(t for t in checks if t >= over)
    assert all(t < over for t in checks if t < dead_at)


def test_a_cpu_that_stops_beating_is_declared_dead_without_revocation():
    c = Cluster(1, {1: remote_cpu([None])}, beating=False)
    c.drain(pb.STRATEGY_REMOTE)
    ((dead_at, _),) = c.dead
    assert c.revoked == [] and dead_at == min(t for t in c.times("unlock timed out") if t >= LEASE_S + LEASE_MARGIN_S)


# ------------------------------------------------------------------ grants that run out
def test_a_grant_that_expires_while_the_coordinator_is_stopped_is_refused_and_nothing_is_freed():
    """The chaos trap stops the coordinator between the grant and the commit for longer than the grant's
    lease: the node's lease has given the pages back to its lists, so it refuses the commit."""
    refused = pb.PcpControlReply(code="FAILED_PRECONDITION", error="token 7's lease expired")
    c = Cluster(1, {1: remote_cpu([Answer(refused)])}, stop_for_s=2.0)
    record = c.drain(pb.STRATEGY_REMOTE)
    (granted,) = c.times("lock_drain answered")
    (stopped,) = c.times("stopped for 2.0")
    (commit,) = c.times("unlock sent")
    assert stopped == granted and commit == granted + 2.0  # nothing of the coordinator ran meanwhile
    assert not record.cpus[0].ok and "NodeRefused: FAILED_PRECONDITION" in record.cpus[0].error
    assert c.freed == [] and c.dead == []


def test_a_swap_to_a_partitioned_cpu_is_given_up_at_the_first_look_after_its_lease_is_provably_over():
    """rcu-swap's bound is two grace periods and a round trip (9 s here); the request stops waiting once
    the lease is over, so the drain lets go of pcpu_drain_mutex for the reaper."""
    c = Cluster(1, {1: ScriptedCpu({"rcu_swap": [None]})}, beating=False)
    record = c.drain(pb.STRATEGY_RCU_SWAP)
    (given_up,) = c.times("given up on")
    over = LEASE_S + LEASE_MARGIN_S
    assert over <= given_up < over + LEASE_POLL_S
    assert record.duration_s < 9.0 and "membership lease ran out" in record.cpus[0].error
    assert c.dead == [] and not c.mutex.held


@pytest.mark.parametrize(
    "strategy,op,beating",
    [(pb.STRATEGY_REMOTE, "lock_drain", True), (pb.STRATEGY_RCU_SWAP, "rcu_swap", False)],
)
def test_a_request_the_drainer_stops_waiting_for_is_abandoned_by_its_id_at_once(strategy, op, beating):
    """A lock_drain whose answer does not come within its bound, and an rcu_swap whose CPU's lease runs
    out first: the drainer posts an abandon naming the request's id (its epoch above a count) at the
    instant it stops waiting, and goes on without waiting for the abandon's answer."""
    cpu = ScriptedCpu({op: [None]})
    c = Cluster(1, {1: cpu}, beating=beating)
    c.control.epoch = 3
    record = c.drain(strategy)
    (stopped,) = c.times("timed out") or c.times("given up on")
    assert c.times("PcpControl.abandon posted") == [stopped] and record.duration_s < stopped + 1e-3
    c.queue.run(c.queue.clock.now + 1e-3)  # the abandon's way to the CPU
    assert cpu.seen == [op, "abandon"]
    asked, abandon = cpu.messages
    request_id = getattr(asked, op).request_id
    assert request_id == (3 << 32) | 1 and abandon.abandon == pb.AbandonRequest(cpu=1, request_id=request_id)
    assert not record.cpus[0].ok


def test_a_stopped_coordinator_looks_at_no_lease_until_it_runs_again():
    """The trap stops the coordinator at cpu1's commit for 2 s while cpu2's swap (its reply lost, its
    node silent) waits on cpu2's lease, which runs out meanwhile. A stopped process runs no timer: the
    drain gives cpu2 up at the resume, not while stopped (it once looked every LEASE_POLL_S throughout)."""
    swapped = pb.PcpControlReply(rcu_swap=pb.RcuSwapReply(token=5, pages=pages(64, 65), gp_ok=True))
    cpu1 = ScriptedCpu(
        {"rcu_swap": [Answer(swapped)], "rcu_release": [Answer(pb.PcpControlReply(rcu_released=pb.Empty()))]}
    )
    c = Cluster(1, {1: cpu1, 2: ScriptedCpu({"rcu_swap": [None]})}, beating=False, stop_for_s=2.0)
    record = c.drain(pb.STRATEGY_RCU_SWAP)
    (stopped,) = c.times("stopped for 2.0")
    assert stopped < LEASE_S + LEASE_MARGIN_S < stopped + 2.0  # the lease runs out while stopped
    assert c.times("cpu2 given up on") == [stopped + 2.0]
    assert "membership lease ran out" in record.cpus[1].error


def test_each_swap_is_committed_as_it_answers_so_a_lost_swap_reply_elsewhere_fails_that_cpu_alone():
    """cpu2's swap reply is lost and its heartbeats come, so the drain waits out the swap's bound (two grace
    periods and a round trip, 9 s). cpu1's swap answered at once: its old set is committed then, within its
    grant's lease (0.5 s), and freed once every swap has answered; committed only after the slowest swap,
    it had expired by then and cpu1's part failed too (rpc-drop-replies under rcu-swap: every CPU's)."""
    swapped = pb.PcpControlReply(rcu_swap=pb.RcuSwapReply(token=5, pages=pages(64, 65), gp_ok=True))
    cpu1 = ScriptedCpu(
        {"rcu_swap": [Answer(swapped)], "rcu_release": [Answer(pb.PcpControlReply(rcu_released=pb.Empty()))]}
    )
    c = Cluster(1, {1: cpu1, 2: ScriptedCpu({"rcu_swap": [None]})})
    record = c.drain(pb.STRATEGY_RCU_SWAP)
    one, two = record.cpus
    assert one.ok and one.pages == 2 and not two.ok and "DEADLINE_EXCEEDED" in two.error
    (answered,) = c.times("rcu_swap answered")
    (commit,) = c.times("rcu_release sent")
    assert commit - answered < LEASE_S  # within the grant's lease
    ((freed_at, cpu, transfer_id),) = c.freed
    assert (cpu, transfer_id) == (1, "rcu-cpu1-a-5") and freed_at >= 9.0  # after the slowest swap


# ------------------------------------------------------------------ workqueue: gathered
def test_a_workqueue_drain_queues_on_every_cpu_at_once_then_flushes_each_in_turn():
    n = 8
    cpus = {
        cpu: ScriptedCpu(
            {
                "QueueWork": [Answer(pb.QueueWorkReply(work_id=100 + cpu), after_s=1e-6 * (n - cpu))],
                "FlushWork": [Answer(pb.FlushWorkReply(done=True, pages=10 * cpu), after_s=5e-6)],
            }
        )
        for cpu in range(n)
    }
    c = Cluster(3, cpus)
    record = c.drain(pb.STRATEGY_WORKQUEUE)
    assert record.status == pb.DrainAllReply.DONE and [r.pages for r in record.cpus] == [10 * i for i in range(n)]
    queued, answered = c.times("QueueWork sent"), c.times("QueueWork answered")
    assert len(set(queued)) == 1 and len(queued) == n  # gathered: all sent at one instant
    flushes = [float(line.split()[0]) for line in c.driver.trace if "FlushWork" in line]
    assert min(flushes) >= max(answered)  # flush only once every CPU has its work
    sent = [line.split()[1] for line in c.driver.trace if line.endswith("FlushWork sent")]
    assert sent == [f"cpu{i}" for i in range(n)]
    assert c.times("FlushWork sent")[1:] == pytest.approx(c.times("FlushWork answered")[:-1], abs=0)  # in turn


def test_a_lost_flush_fails_that_cpu_alone():
    cpus = {
        0: ScriptedCpu({"QueueWork": [Answer(pb.QueueWorkReply(work_id=1))], "FlushWork": [None]}),
        1: ScriptedCpu(
            {
                "QueueWork": [Answer(pb.QueueWorkReply(work_id=2))],
                "FlushWork": [Answer(pb.FlushWorkReply(done=True, pages=4))],
            }
        ),
    }
    record = Cluster(1, cpus).drain(pb.STRATEGY_WORKQUEUE)
    assert [r.ok for r in record.cpus] == [False, True] and record.cpus[
        0
    ].error == "DEADLINE_EXCEEDED: Deadline Exceeded"


# ------------------------------------------------------------------ pcpu_drain_mutex
def test_a_reclaim_drain_finds_the_mutex_held_and_skips_while_a_demand_drain_waits_its_turn():
    c = Cluster(1, {1: remote_cpu([None, Answer(UNLOCKED)])})
    records: list = []
    first = drain_all.drain_all_pages(c.view, c.mutex, pb.STRATEGY_REMOTE, True, pb.TRIGGER_DEMAND)
    c.driver.start(first, lambda value, error: records.append(("first", value)))
    c.queue.run(0.1)  # the first drain holds the mutex, its commit lost
    skipped = c.driver.run(
        drain_all.drain_all_pages(c.view, c.mutex, pb.STRATEGY_REMOTE, True, pb.TRIGGER_RECLAIM), 60.0
    )
    assert skipped.status == pb.DrainAllReply.SKIPPED
    second = c.driver.run(drain_all.drain_all_pages(c.view, c.mutex, pb.STRATEGY_REMOTE, True, pb.TRIGGER_DEMAND), 60.0)
    ((_, done),) = records
    assert second.mutex_wait_s == done.started_at + done.duration_s - second.started_at > 0
    assert not c.mutex.held


# ------------------------------------------------------------------ determinism
def scenario(seed: int) -> list[str]:
    cpus = {
        0: ScriptedCpu(
            {"QueueWork": [Answer(pb.QueueWorkReply(work_id=1))], "FlushWork": [Answer(pb.FlushWorkReply(done=True))]}
        ),
        1: ScriptedCpu(
            {"QueueWork": [Answer(pb.QueueWorkReply(work_id=2))], "FlushWork": [Answer(pb.FlushWorkReply(done=True))]}
        ),
    }
    c = Cluster(seed, cpus)
    c.drain(pb.STRATEGY_WORKQUEUE)
    c.driver.peers = {0: remote_cpu([None, Answer(UNLOCKED)]), 1: remote_cpu([Answer(UNLOCKED)])}
    c.drain(pb.STRATEGY_REMOTE)
    return c.driver.trace


def test_one_seed_gives_one_trace_and_another_seed_another():
    assert scenario(7) == scenario(7)
    assert scenario(7) != scenario(8)  # the network's latencies are drawn from the seed


def test_the_trace_does_not_depend_on_the_process_hash_seed():
    """Two processes with different string hash salts: the same trace, byte for byte."""
    import hashlib

    code = (
        "import hashlib; from tests.unit.test_drain_virtual import scenario; "
        "print(hashlib.sha256('\\n'.join(scenario(7)).encode()).hexdigest())"
    )
    digests = hashseed.outputs(code, timeout=120)
    assert digests == {hashlib.sha256("\n".join(scenario(7)).encode()).hexdigest()}


# ------------------------------------------------------------------ the audit's orchestration
def audit_cluster_of(snapshot_cpu1: Answer | None):
    from coordinator.audit_rule import audit
    from coordinator.zone_service import ZoneService
    from node.mm.zone import Zone
    from node.shared.timebase import CostModel

    def cpu(n: int, snapshot: Answer | None) -> ScriptedCpu:
        return ScriptedCpu({"SetRunState": [Answer(pb.RunStateReply(was_paused=False))], "Snapshot": [snapshot]})

    snap = Answer(pb.NodeSnapshot(cpu=0), after_s=3e-6)
    cpus = {0: cpu(0, snap), 1: cpu(1, snapshot_cpu1)}
    c = Cluster(1, cpus)
    c.queue.run(0.0)  # the first heartbeats: both CPUs present
    # The zone service's own rules only (holdings): its zone->lock worker thread never starts.
    c.driver.zone = ZoneService(Zone(1 << 20, 8192, 2), CostModel(), sleep=lambda s: None)
    return c, cpus, lambda: c.driver.run(audit(c.membership, c.mutex), 60.0)


def test_the_audit_parks_every_cpu_snapshots_checks_and_resumes_them():
    c, cpus, run = audit_cluster_of(Answer(pb.NodeSnapshot(cpu=1)))
    report = run()
    assert report.ok, report.errors
    assert [cpu.seen for cpu in cpus.values()] == [["SetRunState", "Snapshot", "SetRunState"]] * 2
    steps = [line.split(" ", 1)[1] for line in c.driver.trace]
    checked = steps.index("audit: the zone's records against every CPU's")
    parked = [i for i, step in enumerate(steps) if step.endswith("SetRunState answered")][:2]
    snapshots = [i for i, step in enumerate(steps) if "Snapshot" in step]
    assert max(parked) < min(snapshots) and max(snapshots) < checked  # park all, snapshot all, then check
    assert not c.mutex.held


def test_the_audit_counts_a_member_whose_heartbeats_stopped_counting_before_it_is_declared_dead():
    """A revoked member, or one whose heartbeats are late, still holds every page the zone gave it until
    page_alloc_cpu_dead takes them back. Sweep seed 4180 under the wall engine: the audit skipped such a
    CPU, then found its blocks unreported and said "not ok"."""
    c, cpus, run = audit_cluster_of(Answer(pb.NodeSnapshot(cpu=1)))
    c.membership.revoke(c.membership.members[1])
    assert [m.cpu for m in c.membership.present()] == [0]
    report = run()
    assert report.ok, report.errors
    assert [cpu.seen for cpu in cpus.values()] == [["SetRunState", "Snapshot", "SetRunState"]] * 2


def test_an_audit_that_cannot_snapshot_a_cpu_fails_naming_it_and_resumes_every_cpu():
    from node.api.errors import Unavailable

    c, cpus, run = audit_cluster_of(None)
    with pytest.raises(Unavailable, match="could not snapshot every CPU: DEADLINE_EXCEEDED"):
        run()
    assert [cpu.seen.count("SetRunState") for cpu in cpus.values()] == [2, 2]  # paused, then resumed
    assert not c.mutex.held and not c.times("audit: the zone's records against every CPU's")


# ------------------------------------------------------------------ one rule, two drivers
class WallStream:
    """A ScriptedCpu behind the wall driver's control stream (member.control): a lost request takes its
    timeout on the fake clock and breaks the stream, as AioReplyStream does."""

    def __init__(self, cpu: ScriptedCpu, clock):
        self.cpu, self.clock = cpu, clock

    async def request(self, message, timeout):
        import grpc

        from node.shared.reply_stream import StreamBroken

        answer = self.cpu.control(message)
        if answer is None:
            self.clock.now += timeout
            raise StreamBroken(grpc.StatusCode.DEADLINE_EXCEEDED, "no reply")
        self.clock.now += answer.after_s
        return answer.reply


class WallZone:
    """The zone service as the wall driver uses it: fn under zone->lock."""

    def __init__(self):
        self.freed: list[str] = []

    async def locked(self, fn, *args):
        return fn(*args)

    def free_pages(self, cpu, pages, transfer_id, incarnation, stream):
        self.freed.append(transfer_id)


@pytest.mark.parametrize(
    "unlock",
    [
        [None, Answer(UNLOCKED)],
        [Answer(pb.PcpControlReply(code="FAILED_PRECONDITION", error="token 7's lease expired"))],
    ],
    ids=["lost-then-answered", "refused"],
)
def test_the_wall_driver_runs_the_same_rule_to_the_same_record(monkeypatch, unlock):
    """drain_remote under the wall driver (asyncio, a fake clock, the same scripted CPU) and under the
    virtual one: the same messages, pages, verdicts and errors; only the durations are each driver's."""
    import asyncio

    from coordinator.drain import control as control_mod
    from coordinator.drain.remote import drain_remote
    from coordinator.drain.wall import WallDriver
    from tests.clock import FakeClock

    virtual_cpu = remote_cpu(list(unlock))
    v = Cluster(1, {1: virtual_cpu})
    virtual = v.driver.run(drain_remote(v.view, [v.membership.members[1]]), 60.0)

    monkeypatch.setattr(control_mod, "COMMIT_RETRY_S", 0)  # real asyncio sleeps: keep the test short
    wall_cpu = remote_cpu(list(unlock))
    clock = FakeClock()
    membership = Membership(2, clock, failure_timeout=LEASE_S, dead_timeout=DEAD_S)
    member = Member(1, "virtual:1", pb.ROLE_HOUSEKEEPING, None, None, clock(), incarnation="a")  # type: ignore[arg-type]
    member.control = WallStream(wall_cpu, clock)  # type: ignore[assignment]
    membership.members[1] = member
    control = Control(membership, clock)
    zone = WallZone()
    view = View(clock, membership, control)
    wall = asyncio.run(WallDriver(control, zone).run(drain_remote(view, [member])))

    def outcome(results):
        return [(r.cpu, r.pages, r.ok, r.error, r.wait_s) for r in results]

    assert outcome(wall) == outcome(virtual)
    assert wall_cpu.seen == virtual_cpu.seen
    assert zone.freed == [tid for _, _, tid in v.freed]


@pytest.mark.parametrize(
    "default,kernel,asked,refused",
    [
        (pb.STRATEGY_REMOTE, "6.1", pb.STRATEGY_RCU_SWAP, "not RCU list sets"),
        (pb.STRATEGY_RCU_SWAP, "6.1", pb.STRATEGY_REMOTE, "no pcp lock to take"),
        (pb.STRATEGY_RCU_SWAP, "6.1", pb.STRATEGY_QPW, "no pcp lock to take"),
        (pb.STRATEGY_WORKQUEUE, "5.19", pb.STRATEGY_REMOTE, "kernel 5.19 guards the pcp with a local_lock"),
        (pb.STRATEGY_WORKQUEUE, "5.19", pb.STRATEGY_QPW, "kernel 5.19 guards the pcp with a local_lock"),
        (pb.STRATEGY_REMOTE, "6.1", pb.STRATEGY_WORKQUEUE, None),
        (pb.STRATEGY_RCU_SWAP, "5.19", pb.STRATEGY_WORKQUEUE, None),
        (pb.STRATEGY_RCU_SWAP, "5.19", pb.STRATEGY_UNSPECIFIED, None),  # the what-if on the old kernel
        (pb.STRATEGY_REMOTE, "6.1", pb.STRATEGY_QPW, None),
    ],
)
def test_a_strategy_the_cpus_cannot_run_is_refused_before_any_cpu_is_marked(default, kernel, asked, refused):
    """Each node refuses it too (node.rcu_drain_rule, node.remote_lock_rule), but only once marked and asked:
    a drain that could only fail on every CPU is refused at resolve."""
    if refused is None:
        assert drain_all.resolve(default, asked, pb.TRIGGER_DEMAND, profiles.get(kernel))[1] == pb.TRIGGER_DEMAND
    else:
        with pytest.raises(FailedPrecondition, match=refused):
            drain_all.resolve(default, asked, pb.TRIGGER_DEMAND, profiles.get(kernel))
