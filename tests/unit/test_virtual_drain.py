"""The node halves of the remote drains in virtual time (node.virtual.drain, node.virtual.pcp_lock): the
rules the wall node runs (node.grants, node.remote_lock_rule, node.rcu_drain_rule, node.rcu_gp), their
effects at exact virtual instants, and one event log per seed."""

import pytest

from node.alloc import PageAllocator
from node.api.errors import FailedPrecondition
from node.grants import base_pages
from node.mm import pcp as pcpmod
from node.mm import pcp_rcu
from node.mm import profile as profiles
from node.mm.constants import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
from node.mm.lock import spin_is_locked, spin_locked
from node.mm.zone import ZONE_START_PFN, Zone
from node.shared.timebase import TIME_SCALE
from node.sim.clock import EventQueue
from node.sim.net import LOOPBACK_ZONE_RTT_US, Latency, SimNetwork
from node.sim.rng import RngTree
from node.virtual.cpu import VirtualCpu
from node.virtual.drain import VirtualRcuDrain, VirtualRemotePcpLock
from node.virtual.pcp_lock import VirtualPcpLock
from node.virtual.run import KERNEL
from node.virtual.strand import Strand
from node.virtual.zone import LocalZone, SharedZone
from tests.leaks import forbid_wall_clock_and_shared_random

PERIOD_S = 20e-6  # the task's allocation period, kernel time
STEP_S = 1e-6  # its kernel work before each allocation
LEASE_S = 100e-6


class Churn:
    """A task that allocates one order-0 page each period (migratetypes in turn) after STEP_S of work,
    keeps the last `keep` and frees the older ones, and records when each allocation started and ended."""

    rt = False

    def __init__(self, alloc: PageAllocator, migratetypes: tuple[int, ...], keep: int = 8) -> None:
        self.alloc = alloc
        self.migratetypes = migratetypes
        self.keep = keep
        self.next_wake = PERIOD_S
        self.held: list[int] = []
        self.allocations: list[tuple[float, float]] = []

    def rebase(self, now: float) -> None:
        self.next_wake = now + PERIOD_S

    def step(self, cpu) -> None:
        self.next_wake += PERIOD_S
        cpu.occupy(STEP_S)
        start = cpu.clock()
        pfn = self.alloc.alloc_pages(0, self.migratetypes[len(self.allocations) % len(self.migratetypes)])
        self.allocations.append((start, cpu.clock()))
        if pfn is not None:
            self.held.append(pfn)
        while len(self.held) > self.keep:
            self.alloc.free_pages(self.held.pop(0))


class RefillHook(LocalZone):
    """The CPU's zone, calling `on_refill` when a refill (rmqueue_bulk, under the pcp lock) starts."""

    on_refill = None

    def rmqueue_bulk(self, order: int, count: int, migratetype: int) -> list[int]:
        if self.on_refill is not None:
            self.on_refill()
        return super().rmqueue_bulk(order, count, migratetype)


class Node:
    """One virtual CPU running Churn on its own zone, with the node half of a remote drain."""

    def __init__(self, seed: int, rcu_swap: bool = False, migratetypes=(MIGRATE_MOVABLE,)) -> None:
        self.queue = EventQueue()
        self.clock = self.queue.clock
        rng = RngTree(seed)
        net = SimNetwork(self.queue, rng.stream("net"), Latency.scaled(LOOPBACK_ZONE_RTT_US, 1e-6 / 2 / TIME_SCALE))
        zone = Zone(ZONE_START_PFN, 1 << 14, 1)
        batch = zone.zone_batchsize()
        high = zone.zone_highsize(batch, 1)
        self.cpu = VirtualCpu(0, self.queue)
        self.rcu = self.cpu.rcu
        self.drain: VirtualRcuDrain | VirtualRemotePcpLock
        if rcu_swap:
            self.pcp = pcp_rcu.RcuPerCpuPages(0, high, batch)
            self.drain = VirtualRcuDrain(self.pcp, self.rcu, self.queue)
            ops = pcp_rcu
        else:
            self.lock = self.cpu.pcp_lock()
            self.pcp = pcpmod.PerCpuPages(0, high, batch, lock=self.lock)
            self.drain = VirtualRemotePcpLock(self.pcp, self.queue)
            ops = profiles.pcp_ops(profiles.get(profiles.DEFAULT_KERNEL))
        self.zone = RefillHook(SharedZone(zone, KERNEL, net), self.cpu)
        self.alloc = PageAllocator(self.cpu, self.pcp, self.zone, coordinator_stub=None, ops=ops)
        self.task = Churn(self.alloc, migratetypes)
        self.cpu.sources = [self.task]
        self.log: list[str] = []
        self.cpu.on_event = lambda cpu, what, detail: self.note(f"cpu{cpu} {what} {detail}")
        self.strands: list[Strand] = []
        self.cpu.start()

    def note(self, line: str) -> None:
        self.log.append(f"{self.clock()!r} {line}")

    def serve(self, at: float, main) -> Strand:
        """Run main(strand) from virtual time `at`: the node's interconnect serving a drainer's request."""
        strand = Strand(self.queue, f"rpc{len(self.strands)}", main)
        self.strands.append(strand)
        strand.start(at)
        return strand

    def close(self) -> None:
        self.cpu.stop()
        for strand in self.strands:
            strand.close()

    def fell_back(self, start: float, end: float) -> list[float]:
        """When the allocations that found the pcp lock held (and went to the buddy) started, in [start, end)."""
        return [t0 for t0, _, kind in self.alloc.fallbacks.between(start, end) if kind == "alloc" and t0 < end]

    def started(self, start: float, end: float) -> list[float]:
        return [t0 for t0, _ in self.task.allocations if start <= t0 < end]

    def text(self) -> str:
        lines = list(self.log)
        lines += [f"fallback {t0!r} {t1!r} {kind}" for t0, t1, kind in self.alloc.fallbacks.between(0.0, self.clock())]
        lines += [
            f"grant {g.token} {g.outcome} {g.granted_at!r} {g.ended_at!r} {base_pages(g.pages)}"
            for g in self.drain.records()
        ]
        s = self.pcp.stats
        lines.append(
            f"pcp {self.pcp.count} trylock {s.trylock_fail_alloc} {s.trylock_fail_free} events {self.queue.executed}"
        )
        return "\n".join(lines) + "\n"


@pytest.fixture
def make():
    nodes: list[Node] = []

    def build(*args, **kwargs) -> Node:
        nodes.append(Node(*args, **kwargs))
        return nodes[-1]

    yield build
    for node in nodes:
        node.close()


def drain_during_a_refill(node: Node, hold_s: float, commit: bool | None) -> dict:
    """A drainer arrives while the CPU holds its pcp lock across a refill's zone round trip (its second
    allocation: the MOVABLE list is empty, the UNMOVABLE one is not), takes the lock and the pages,
    holds them `hold_s` (its round trip to the zone), then commits, aborts, or (None) never comes back."""
    seen: dict = {}
    assert isinstance(node.drain, VirtualRemotePcpLock)
    drain = node.drain

    def drainer(strand: Strand) -> None:
        seen["arrived"] = strand.clock()
        node.note("rpc lock_and_take")
        token, pages, wait, _ = drain.lock_and_take(strand, LEASE_S, wait_timeout=LEASE_S)
        node.note(f"rpc granted {token} pages {len(pages)} wait {wait!r}")
        seen.update(token=token, pages=pages, wait=wait, granted=strand.clock())
        strand.wait_until(strand.clock() + hold_s)
        if commit is not None:
            drain.unlock(token, commit)
            node.note(f"rpc unlock {token} commit {commit}")
        seen["ended"] = strand.clock()

    def refill() -> None:
        if node.pcp.count and "arrived" not in seen and not node.strands:
            node.serve(node.clock(), drainer)

    node.zone.on_refill = refill
    node.queue.run(400e-6)
    return seen


def test_a_remote_drainer_waits_for_the_cpus_refill_then_the_cpus_trylocks_fail_while_it_holds_the_lock(make):
    """The drainer's blocking acquire ends at the very instant the CPU's refill releases the lock (its wait
    is the rest of the round trip); from then until the commit, exactly the allocations that start in that
    window meet the held lock, fail their trylock and fall back to the buddy, and none outside it."""
    node = make(1, migratetypes=(MIGRATE_UNMOVABLE, MIGRATE_MOVABLE))
    seen = drain_during_a_refill(node, hold_s=50e-6, commit=True)
    refill_end = next(t1 for t0, t1 in node.task.allocations if t0 <= seen["arrived"] <= t1)
    assert seen["granted"] == refill_end and seen["wait"] == refill_end - seen["arrived"] > 0
    assert node.lock.contended == 1 and seen["token"] == 1
    (grant,) = node.drain.records()
    assert (grant.outcome, grant.granted_at, grant.ended_at) == ("committed", seen["granted"], seen["ended"])
    assert node.drain.drained_pages == base_pages(seen["pages"]) > 0
    window = node.started(grant.granted_at, grant.ended_at)
    assert len(window) >= 2 and node.fell_back(grant.granted_at, grant.ended_at) == window
    assert node.fell_back(0.0, node.clock()) == window  # none before the grant, none after the commit
    assert node.pcp.stats.trylock_fail_alloc == len(window)
    assert not set(seen["pages"]) & set(node.pcp.pages())  # committed: they left this CPU


def test_an_expired_grant_puts_the_pages_back_at_the_lease_end_and_fences_the_late_commit(make):
    """A drainer that never comes back: at granted_at + lease exactly, the pages are back on the lists and
    the lock is free, so allocations after that instant use the pcp again; the drainer's late commit is
    refused and counted."""
    node = make(2, migratetypes=(MIGRATE_UNMOVABLE, MIGRATE_MOVABLE))
    seen = drain_during_a_refill(node, hold_s=LEASE_S, commit=None)
    assert seen["ended"] == seen["granted"] + LEASE_S
    (grant,) = node.drain.records()
    assert (grant.outcome, grant.ended_at) == ("expired", seen["granted"] + LEASE_S)
    assert node.drain.lease_expiries == 1 and node.drain.held is None
    window = node.started(grant.granted_at, grant.ended_at)
    assert window and node.fell_back(0.0, node.clock()) == window
    late = []
    node.serve(node.clock(), lambda strand: late.append(refused(node.drain, seen["token"])))
    node.queue.run(node.clock())
    assert late == [
        "token 1 no longer holds the pcp lock of cpu 0: it was expired (lease ran out: its pages are back on the lists)"
    ]
    assert node.drain.stale_commits_refused == grant.stale_commits_refused == 1
    assert node.drain.drained_pages == 0


def test_a_stopped_nodes_lease_runs_out_at_its_resume_before_the_commit_that_waited_for_it(make):
    """The node is stopped (SIGSTOP) just after its grant, for three leases. A stopped process runs no
    timer: the grant expires at the resume (it once expired mid-stop, at granted_at + lease), before the
    drainer's commit, which the network held for the stopped node and hands over at that same instant;
    the commit is refused and the pages are back on the lists."""
    node = make(2, migratetypes=(MIGRATE_UNMOVABLE, MIGRATE_MOVABLE))
    assert isinstance(node.drain, VirtualRemotePcpLock)
    drain = node.drain
    seen: dict = {}

    def drainer(strand: Strand) -> None:
        token, pages, _, _ = drain.lock_and_take(strand, LEASE_S, wait_timeout=LEASE_S)
        seen.update(granted=strand.clock(), pages=pages)
        drain.sigstop.stop()
        resume = seen["resume"] = strand.clock() + 3 * LEASE_S

        def sigcont() -> None:  # as the nemesis heals a stop: the process first, then its endpoint
            drain.sigstop.cont()  # what fell due meanwhile runs from now
            strand.resume_soon()  # and then the commit, held for the stopped node, is read

        node.queue.at(resume, sigcont)
        strand.wait_resumed()
        with pytest.raises(FailedPrecondition) as err:
            drain.unlock(token, commit=True)
        seen["refused"] = str(err.value)

    def refill() -> None:
        if node.pcp.count and not node.strands:
            node.serve(node.clock(), drainer)

    node.zone.on_refill = refill
    node.queue.run(400e-6)
    (grant,) = drain.records()
    assert seen["pages"] and (grant.outcome, grant.ended_at) == ("expired", seen["resume"])
    assert seen["resume"] > seen["granted"] + LEASE_S  # its lease's end fell inside the stop
    assert "it was expired (lease ran out" in seen["refused"] and drain.stale_commits_refused == 1
    assert drain.lease_expiries == 1 and drain.drained_pages == 0 and not drain.sigstop.stopped


def refused(drain: VirtualRemotePcpLock, token: int) -> str:
    with pytest.raises(FailedPrecondition) as err:
        drain.unlock(token, commit=True)
    return str(err.value)


def busy_work(node: Node, at: float, seconds: float) -> list:
    """A work item of `seconds` of kernel work queued on the CPU at `at`: no quiescent state until it ends."""
    items: list = []
    cpu = node.cpu
    node.queue.at(at, lambda: items.append(cpu.queue_work("busy", lambda: cpu.occupy(seconds))))
    return items


def test_an_rcu_swap_drain_waits_for_the_cpus_next_quiescent_state_in_virtual_time(make):
    """Swapped while the CPU runs 40 us of kernel work, the drainer's grace period ends at the instant the
    work item ends (the CPU's next quiescent state) and it is handed every page the CPU had; a second
    drainer whose bound is shorter than the work gives up at exactly its bound, the pages staying the CPU's."""
    node = make(3, rcu_swap=True)
    assert isinstance(node.drain, VirtualRcuDrain)
    drain = node.drain
    results: list = []

    def drainer(gp_timeout: float):
        def main(strand: Strand) -> None:
            before = sorted(node.pcp.pages())
            token, pages, gp_s, ok = drain.swap_and_take(strand, LEASE_S, gp_timeout)
            results.append((strand.clock(), before, token, sorted(pages), gp_s, ok))
            if token:
                drain.release(token, commit=True)

        return main

    items = busy_work(node, 105e-6, 40e-6)
    node.serve(115e-6, drainer(10e-6))  # gives up at 125 us, during the work
    node.queue.run(130e-6)
    ((t, before, token, pages, gp_s, ok),) = results
    assert (t, token, pages, ok) == (115e-6 + 10e-6, 0, [], False) and gp_s == t - 115e-6
    assert node.rcu.gp_timeouts == 1 and node.pcp.gp_pending and sorted(node.pcp.pages()) == before
    node.serve(135e-6, drainer(1e-3))  # the work ends at 145 us: the pending grace period with it
    node.queue.run(300e-6)
    (item,) = items
    t, before, token, pages, gp_s, ok = results[1]
    assert item.finished_at == 145e-6 and t == item.finished_at and ok and token
    assert gp_s == item.finished_at - 135e-6 and pages == before
    assert node.rcu.gp_timeouts == 1 and drain.records()[0].outcome == "committed"


def test_a_request_abandoned_while_it_waits_for_the_lock_gives_the_lock_back_at_once_and_takes_nothing(make):
    """The drainer's lock_drain waits for the CPU's refill to let go of the pcp lock, and its drainer
    abandons it meanwhile (node.grants): at the instant the lock is its, it gives it back and is refused,
    so no grant is made and no allocation of the CPU ever meets the drainer's lock."""
    node = make(1, migratetypes=(MIGRATE_UNMOVABLE, MIGRATE_MOVABLE))
    assert isinstance(node.drain, VirtualRemotePcpLock)
    drain = node.drain
    seen: dict = {}

    def drainer(strand: Strand) -> None:
        seen["arrived"] = strand.clock()
        node.queue.after(0.1e-6, drain.abandon, 5)  # while it waits for the lock
        with pytest.raises(FailedPrecondition) as err:
            drain.lock_and_take(strand, LEASE_S, wait_timeout=LEASE_S, request_id=5)
        seen["refused"] = (strand.clock(), str(err.value))

    def refill() -> None:
        if node.pcp.count and not node.strands:
            node.serve(node.clock(), drainer)

    node.zone.on_refill = refill
    node.queue.run(400e-6)
    refused_at, error = seen["refused"]
    assert error == "request 5 was abandoned by its drainer: nothing is granted for it"
    assert refused_at > seen["arrived"] + 0.1e-6 and node.lock.contended == 1  # it did wait for the lock
    assert drain.records() == [] and drain.grants == 0 and not spin_is_locked(node.lock)
    assert node.fell_back(0.0, node.clock()) == [] and node.pcp.stats.trylock_fail_alloc == 0


def test_an_rcu_swap_abandoned_during_its_grace_period_strands_what_it_took_and_grants_nothing(make):
    """An rcu-swap's drainer abandons the swap while its grace period waits for the CPU's work item to
    end: once the grace period is over the old set's pages are stranded (the CPU's still, first to go at
    the next drain, as an aborted grant's), nothing is granted and the swap is refused."""
    node = make(3, rcu_swap=True)
    assert isinstance(node.drain, VirtualRcuDrain)
    drain = node.drain
    seen: dict = {}

    def drainer(strand: Strand) -> None:
        seen["before"] = sorted(node.pcp.pages())
        node.queue.after(10e-6, drain.abandon, 9)
        with pytest.raises(FailedPrecondition) as err:
            drain.swap_and_take(strand, LEASE_S, 1e-3, request_id=9)
        seen["refused"] = (strand.clock(), str(err.value))

    items = busy_work(node, 105e-6, 40e-6)
    node.serve(115e-6, drainer)
    node.queue.run(300e-6)
    (item,) = items
    refused_at, error = seen["refused"]
    assert refused_at == item.finished_at == 145e-6 and "request 9 was abandoned" in error
    assert drain.records() == [] and not node.pcp.gp_pending
    assert sorted(node.pcp.stranded) == seen["before"]  # every page the set in use had at the swap
    assert set(seen["before"]) <= set(node.pcp.pages())  # still the CPU's (its lists refilled since)


def run_text(seed: int) -> str:
    node = Node(seed, migratetypes=(MIGRATE_UNMOVABLE, MIGRATE_MOVABLE))
    try:
        drain_during_a_refill(node, hold_s=50e-6, commit=True)
        return node.text()
    finally:
        node.close()


def test_one_seed_gives_one_event_log_and_another_seed_another():
    first = run_text(7)
    assert first == run_text(7)
    assert first != run_text(8)
    assert " committed " in first and "fallback " in first and "rpc granted 1 " in first


def test_a_drain_in_virtual_time_reads_no_wall_clock_and_draws_no_unseeded_number(monkeypatch):
    forbid_wall_clock_and_shared_random(monkeypatch)
    assert "rpc unlock 1 commit True" in run_text(7)


def test_a_virtual_pcp_lock_serves_waiters_in_arrival_order_and_a_bounded_wait_gives_up_at_its_bound():
    """A drainer holds the lock from 0 to 10 us; the CPU (the owner, through spin_locked) spins on it
    from 1 us, another drainer from 2 us for at most 3 us. That one gives up at 5 us; at 10 us the release
    hands the lock to the CPU, and a trylock at that very instant fails (a waiter is queued, as
    queued_spin_trylock fails on a non-zero lock word); the CPU releases it at 12 us and it is free."""
    queue = EventQueue()
    events: list = []

    def drainer(hold: float, timeout: float):
        def main(strand: Strand) -> None:
            ok = lock.acquire_as(strand, timeout=timeout)
            events.append((strand.clock(), strand.fiber.name, ok))
            if ok:
                strand.wait_until(strand.clock() + hold)
                lock.release()
                events.append((strand.clock(), "trylock", lock.acquire_as(strand, blocking=False)))

        return main

    def cpu(strand: Strand) -> None:
        with spin_locked(lock):
            events.append((strand.clock(), "cpu", True))
            strand.wait_until(strand.clock() + 2e-6)

    owner = Strand(queue, "cpu", cpu)
    lock = VirtualPcpLock(queue, owner)
    strands = [Strand(queue, "a", drainer(10e-6, -1)), owner, Strand(queue, "b", drainer(0.0, 3e-6))]
    for strand, at in zip(strands, (0.0, 1e-6, 2e-6), strict=True):
        strand.start(at)
    try:
        queue.run(20e-6)
    finally:
        for strand in strands:
            strand.close()
    assert events == [(0.0, "a", True), (2e-6 + 3e-6, "b", False), (10e-6, "trylock", False), (10e-6, "cpu", True)]
    assert not spin_is_locked(lock) and (lock.acquisitions, lock.contended, lock.trylock_failures) == (2, 2, 1)
    with pytest.raises(RuntimeError):
        lock.release()


def test_a_waiter_whose_fiber_ends_while_it_waits_is_skipped_by_the_release():
    """A run that ends (its fibers closed) while a drainer waits for the lock leaves no waiter behind
    that a release would hand the lock to."""
    queue = EventQueue()

    def holder(strand: Strand) -> None:
        lock.acquire_as(strand)
        strand.wait_until(10e-6)
        lock.release()

    holding, waiting = Strand(queue, "a", holder), Strand(queue, "b", lambda strand: lock.acquire_as(strand))
    lock = VirtualPcpLock(queue, holding)
    holding.start(0.0)
    waiting.start(1e-6)
    queue.run(5e-6)
    waiting.close()
    queue.run(20e-6)
    holding.close()
    assert not spin_is_locked(lock) and lock.contended == 1
