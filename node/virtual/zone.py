"""The zone as a virtual CPU sees it: the zone's rules in this process, over the simulated network.

The wall engine's CPU sends each zone operation to the coordinator (node.zone_client) and blocks on
the reply; the coordinator applies it with the zone's rules (node.mm.zone_rules) one at a time in
arrival order under zone->lock, holding the lock for the hold the rules return
(coordinator.zone_service). Here the same rules run in virtual time: the CPU's fiber waits one
network latency (node.sim.net) for its request to arrive, queues FIFO for zone->lock (ZoneLock),
applies the operation with the shared ZoneRules, holds the lock for the hold it returned, and waits
one more latency for the reply. The pcp code in node.mm calls LocalZone through ZoneOps exactly as
it calls the gRPC client, and gets the same answer: the pages, `watermark_failed` when the zone
refused a refill at its min watermark, the zone's free pages and ZONE_RECLAIM_ACTIVE as of the
reply, and node.zone_retry_rule.ZoneRefused when the rules refuse a request (FAILED_PRECONDITION on the
wire). A refused refill sends node.alloc's caller into direct reclaim, whose DrainAllPages request
goes to CoordinatorStub.

The drain a DrainAllPages request runs is the coordinator's: SharedZone.drain_all_pages, set by the
whole-cluster driver (coordinator.tools.virtual_cluster), starts drain_all_pages on arrival and the
reply goes back once it has ended. Without a driver (a VirtualCluster alone) the request and its
answer travel the network and nothing is drained, so the allocation's retry after reclaim finds the
zone as it was. Heartbeats, which refresh a CPU's free pages and ZONE_RECLAIM_ACTIVE between zone
replies as they refresh a wall node's, are the whole-cluster driver's too (coordinator.tools.virtual_host's
`zone_heard`), and so is a CPU's incarnation (its agent's, node.virtual.agent, drawn from the run's
seed; "0" in a VirtualCluster alone). A transfer id is "cpu<n>-<count>", counted per CPU process from 1:
the wall client's also carries its process's boot id, which the incarnation stands for here, as the
zone keys each transfer by both.
"""

import collections
import concurrent.futures
import itertools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from node.epoch_rule import EpochRule
from node.mm.constants import Page
from node.mm.zone import Zone
from node.mm.zone_rules import NODE, Held, Refused, ZoneReply, ZoneRules
from node.shared.timebase import CostModel
from node.shared.transfer_log import blocks
from node.sim.net import SimNetwork
from node.sim.sigstop import Sigstop
from node.virtual.cpu import VirtualCpu
from node.virtual.zone_rpc import CoordinatorKilled, NotApplied
from node.zone_retry_rule import ZoneRefused

R = TypeVar("R")
COORDINATOR = "zone"  # the coordinator's end of every link (the zone and the control plane are one process)


class Holder(Protocol):
    """Who holds zone->lock: a CPU's fiber (VirtualCpu), or the coordinator's zone service, whose
    ZoneLocked effects wait as events (coordinator.tools.virtual_peer.CoordinatorZone)."""

    def resume_soon(self) -> None: ...


class ZoneLock:
    """zone->lock in virtual time: one holder, waiters served in the order they arrived."""

    def __init__(self) -> None:
        self.holder: Holder | None = None
        self.waiters: collections.deque[Holder] = collections.deque()
        self.acquisitions = 0
        self.contended = 0

    def acquire(self, cpu: VirtualCpu) -> None:
        if self.holder is not None:
            self.contended += 1
            self.waiters.append(cpu)
            try:
                cpu.wait_resumed()  # `release` resumes it as the holder
            except BaseException:  # the CPU's process was killed (its fiber closed): its request is dropped
                if self.holder is cpu:
                    self.release()  # handed over to it already: pass the lock on
                else:
                    self.waiters.remove(cpu)
                raise
        else:
            self.holder = cpu
        self.acquisitions += 1

    def take(self, holder: Holder) -> bool:
        """acquire for a holder that is no fiber and cannot wait here: True if the lock is `holder`'s now,
        else False, `holder` queued and its resume_soon() called once `release` hands the lock over."""
        self.acquisitions += 1
        if self.holder is None:
            self.holder = holder
            return True
        self.contended += 1
        self.waiters.append(holder)
        return False

    def release(self) -> None:
        if self.waiters:
            self.holder = self.waiters.popleft()
            self.holder.resume_soon()
        else:
            self.holder = None


class SharedZone:
    """The one zone every virtual CPU reaches: the rules over the model, its lock and its costs (in
    kernel time: a hold of the rules' kernel microseconds lasts cost.wall(us) virtual seconds)."""

    def __init__(self, zone: Zone, cost: CostModel, net: SimNetwork) -> None:
        self.zone = zone
        self.cost = cost
        self.net = net
        self.lock = ZoneLock()
        self.rules = ZoneRules(zone, cost)
        self.drain_requests = 0  # DrainAllPages requests that reached the coordinator's end
        # The coordinator's end of DrainAllPages (trigger reclaim): drain_all_pages(done) starts the drain
        # and calls done() once it has ended, whatever its outcome. None: answered at once, nothing drained.
        self.drain_all_pages: Callable[[Callable[[], None]], None] | None = None
        # A chaos run's: each round trip a request under the network's fault rules (node.virtual.zone_rpc).
        self.rpc: Callable[[LocalZone, str, Callable[[], Callable[[str | None], Any]]], Any] | None = None
        self.epoch = 0  # the epoch of the coordinator whose zone `rules` is (a zone reply's coordinator_epoch)
        # The membership fence of the coordinator whose zone `rules` is (coordinator.server's _as_live):
        # live(cpu, incarnation) raises Refused (its `code` NOT_FOUND or FAILED_PRECONDITION) for a CPU
        # that never registered with it, was declared dead or was replaced. None: no membership (static).
        self.live: Callable[[int, str], None] | None = None
        # The Sigstop of the coordinator process whose zone `rules` is (node.sim.sigstop): the zone's side of
        # a request is its work, which waits while it is stopped and ends once it is killed (LocalZone.apply).
        # None: a process never stopped.
        self.sigstop: Sigstop | None = None


class LocalZone:
    """One CPU's ZoneOps (node.mm.pcp.ZoneOps), like node.zone_client.ZoneClient is one node's."""

    def __init__(self, shared: SharedZone, cpu: VirtualCpu, incarnation: str = "0") -> None:
        self.shared = shared
        self.cpu = cpu
        self.incarnation = incarnation
        self._ids = itertools.count(1)
        # As ZoneClient's: what the last reply said.
        self.free_pages = shared.zone.free_pages
        self.reclaim_active = shared.zone.reclaim_active
        self.below_high = shared.zone.below_high
        self.watermark_failed = False
        self.lock_wait_s = 0.0  # virtual seconds this CPU's zone requests queued for zone->lock (ZoneClient's)
        self.calls = 0
        self.transfer_log: Any = None  # node.shared.transfer_log.TransferLog's kind, or None (as ZoneClient's)
        self.answered_epoch = 0  # the epoch of the zone that answered the last round trip (its reply's)
        self.registration = EpochRule()  # its agent's (node.virtual.agent), which sets it; without one: no epochs
        self._out = (cpu.cpu, COORDINATOR)  # the node's zone stream, one link each way
        self._back = (COORDINATOR, cpu.cpu)

    def _transfer_id(self) -> str:
        return f"cpu{self.cpu.cpu}-{next(self._ids)}"

    def _round_trip(self, op: Callable[[ZoneRules], Held[R]], method: str) -> R:
        """op(rules) applied under zone->lock one network latency after now, holding the lock for the
        hold it returns; returns once the reply is back, one more latency later. A refusal of the rules
        comes back as the wall client's ZoneRefused, after the same trip. With the shared zone's `rpc`
        (a chaos run: node.virtual.zone_rpc), the trip is a request under the network's fault rules,
        sent again until its outcome is known: each attempt reaches the zone of the coordinator serving
        when it arrives, so a retry after a coordinator's restart reaches the new one's, and a refusal
        carries that coordinator's epoch, as a wall zone reply does (ZoneRefused.other_zone)."""
        shared, cpu = self.shared, self.cpu
        self.calls += 1
        latest = shared.epoch  # the epoch of the coordinator its latest attempt reached
        inc = self.incarnation

        # The two nested functions' annotations are strings: a def evaluates its annotations each time
        # it runs, and these (typing subscriptions and a union) made 65,464 calls into typing in the
        # 64-CPU bench span's 21,822 round trips (docs/benchmarks.md).
        def send() -> "Callable[[str | None], Held[R] | Refused | NotApplied]":
            """An attempt sent now: what the zone serving at its arrival does then (`refused`: why that
            coordinator answers UNAVAILABLE unapplied, as a restarted one rebuilding its zone does; None:
            under zone->lock, its membership fence first, a CPU it does not know as this incarnation
            changing nothing, then its rules). Until 2026-12-06 the zone serving at the sending answered,
            which a message held across a second coordinator's start (sweep seed 18) made the old one."""

            def arrive(refused: str | None) -> "Held[R] | Refused | NotApplied":
                nonlocal latest
                rules, latest, live, stop = shared.rules, shared.epoch, shared.live, shared.sigstop
                if refused is not None:
                    return NotApplied(refused)

                def at_zone() -> "Held[R]":
                    if live is not None:
                        live(cpu.cpu, inc)
                    return op(rules)

                return self.apply(at_zone, stop)

            return arrive

        outcome: Held[R] | Refused
        try:
            if shared.rpc is not None:
                outcome = shared.rpc(self, method, send)
            else:
                cpu.wait_until(shared.net.arrival(self._out))
                arrived = send()(None)  # no coordinator that could refuse it unapplied: never NotApplied
                assert not isinstance(arrived, NotApplied)
                outcome = arrived
                cpu.wait_until(shared.net.arrival(self._back))
        except ZoneRefused as err:  # UNAVAILABLE: the coordinator serving the latest attempt recovers
            err.other_zone = self.registration.unregistered(latest)
            raise
        if isinstance(outcome, Refused):
            raise ZoneRefused(outcome.code, str(outcome), other_zone=self.registration.unregistered(latest))
        self.answered_epoch = latest
        return outcome.value

    def apply(self, op: Callable[[], Held[R]], stop: Sigstop | None) -> Held[R] | Refused:
        """From this CPU's fiber, at the zone: op() under zone->lock, the lock held for the hold it returns.
        It is the work of the coordinator process (`stop`: its Sigstop), and a stopped wall coordinator's
        zone service neither applies a request nor ends a hold: op() waits for its SIGCONT once the lock is
        this request's, and so does the lock's release at the hold's end. A killed one answers nothing:
        CoordinatorKilled, once the lock is this request's or at the hold's end, the lock let go (the
        network has reset the request: its sender sees the stream fail)."""
        shared, cpu = self.shared, self.cpu
        arrived = cpu.clock()
        shared.lock.acquire(cpu)
        end = cpu.clock()
        self.lock_wait_s += end - arrived
        try:
            self._wait_cont(stop)
            try:
                outcome: Held[R] | Refused = op()
            except Refused as err:
                outcome = err
            if isinstance(outcome, Held):
                end = cpu.clock() + shared.cost.wall(outcome.hold_us)
                cpu.wait_until(end)
                self._wait_cont(stop)
        finally:
            if cpu.clock() < end:  # the CPU's process was killed during the hold: the zone's end holds on
                cpu.queue.at(end, self._release, stop)
            else:
                self._release(stop)
        return outcome

    def _wait_cont(self, stop: Sigstop | None) -> None:
        """From this CPU's fiber: wait until the coordinator process `stop` is not stopped."""
        while stop is not None and stop.stopped:
            if stop.killed:
                raise CoordinatorKilled()
            stop.held(self.cpu.resume_soon, True)  # serving: this CPU's own stop does not hold it up
            self.cpu.wait_resumed()

    def _release(self, stop: Sigstop | None) -> None:
        """zone->lock let go by the coordinator `stop`: at its SIGCONT if it is stopped now; now if it was
        killed (the lock object outlives it: the next coordinator's zone shares it)."""
        if stop is None or stop.killed or not stop.held(self.shared.lock.release):
            self.shared.lock.release()

    def _note(self, reply: ZoneReply) -> None:
        self.free_pages = reply.free_pages
        self.reclaim_active = reply.reclaim_active
        self.below_high = reply.below_high

    def rmqueue_bulk(self, order: int, count: int, migratetype: int) -> list[int]:
        cpu, tid, inc = self.cpu.cpu, self._transfer_id(), self.incarnation
        reply = self._round_trip(lambda z: z.rmqueue(cpu, order, migratetype, count, tid, inc), "ZoneStream.rmqueue")
        self._note(reply)
        self.watermark_failed = not reply.watermark_ok
        if self.transfer_log is not None and reply.pfns:
            pages = [[pfn, order] for pfn in reply.pfns]
            self.transfer_log.write("refill", inc=inc, pages=pages, epoch=self.answered_epoch)
        return list(reply.pfns)

    def rmqueue_buddy(self, order: int, migratetype: int) -> int | None:
        pfns = self.rmqueue_bulk(order, 1, migratetype)
        return pfns[0] if pfns else None

    def free_pcppages_bulk(self, pages: list[Page], commit: bool = False) -> None:
        if pages:
            batch = list(pages)
            cpu, tid, inc = self.cpu.cpu, self._transfer_id(), self.incarnation
            log = self.transfer_log  # as node.zone_client's: the pages leave when the free is sent
            if log is not None:
                log.write("free", inc=inc, pages=blocks(batch))
            try:
                self._note(
                    self._round_trip(lambda z: z.free_pages(cpu, batch, tid, inc, NODE, commit), "ZoneStream.free")
                )
            except Exception as err:  # not the process's end (a kill unwinding a virtual CPU's fiber): it keeps nothing
                if isinstance(err, ZoneRefused) and err.other_zone:
                    return  # given up: the new zone, which counts free what no node claims, owes them to nobody
                if log is not None:
                    log.write("keep", inc=inc, pages=blocks(batch))
                raise

    def free_one_page(self, pfn: int, order: int, migratetype: int) -> None:
        self.free_pcppages_bulk([(pfn, order, migratetype)])


class DrainAllPages:
    """The DrainAllPages RPC as node.alloc's direct reclaim calls it (`.future(request, timeout)`): the
    request reaches the coordinator's end one latency later, runs the coordinator's drain there (if a
    driver set SharedZone.drain_all_pages), and the answer comes back one latency after it ended, on
    the event queue."""

    def __init__(self, shared: SharedZone, cpu: VirtualCpu) -> None:
        self.shared = shared
        self.cpu = cpu

    def future(self, request, timeout: float | None = None) -> concurrent.futures.Future:
        shared, queue = self.shared, self.cpu.queue
        answer: concurrent.futures.Future = concurrent.futures.Future()

        def reply() -> None:
            queue.at(shared.net.arrival((COORDINATOR, self.cpu.cpu)), answer.set_result, None)

        def arrived() -> None:
            shared.drain_requests += 1
            if shared.drain_all_pages is None:
                reply()
            else:
                shared.drain_all_pages(reply)

        queue.at(shared.net.arrival((self.cpu.cpu, COORDINATOR)), arrived)
        return answer


class CoordinatorStub:
    """The coordinator's RPCs a virtual CPU calls besides the zone's: what node.alloc.PageAllocator
    takes as `coordinator_stub` (a pb_grpc.CoordinatorStub on the wall engine)."""

    def __init__(self, shared: SharedZone, cpu: VirtualCpu) -> None:
        self.DrainAllPages = DrainAllPages(shared, cpu)
