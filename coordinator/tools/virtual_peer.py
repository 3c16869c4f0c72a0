"""The CPUs of a virtual cluster as the coordinator's drain driver reaches them (coordinator.drain.virtual's Peers).

A NodePeer joins each request that arrives over the simulated network to the node half the wall node's
interconnect (node.server) would call: the remote pcp lock (node.virtual.drain.VirtualRemotePcpLock),
the rcu-swap (VirtualRcuDrain), the workqueue (a work item queued on the VirtualCpu, flushed once it
ran), the audit's SetRunState (answered once the CPU has parked) and Snapshot. Whatever waits in
virtual time runs on a Strand and answers `Later`; a domain error is the reply's code, as on the wall
node's stream. `scale` is the rules' seconds per virtual second (coordinator.drain.virtual): a
request's leases and bounds are divided by it, a reply's durations multiplied.
CoordinatorZone is the zone service the drain and range rules' ZoneLocked effects and the audit's
check call, over the virtual zone's rules, under the virtual zone->lock the CPUs' zone requests queue
on (node.virtual.zone.ZoneLock): a ZoneLocked effect waits its turn, and its operations hold the lock
for the hold the rules return (a drained CPU's free: CostModel.zone_hold_us), as the wall zone
service's one thread sleeps it (coordinator.zone_service).
"""

from collections.abc import Callable
from typing import Any, Protocol

from coordinator.drain.virtual_ends import Answer, Later, LockedZone, Refusal
from node.api import validate
from node.api.errors import DOMAIN_ERRORS, FailedPrecondition, status_of
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu import OPERATOR, WorkItem
from node.mm.constants import Page
from node.mm.zone_rules import Held, Refused, ZoneReply
from node.rcu_drain_rule import check_rcu_swap
from node.remote_lock_rule import check_remote_lock
from node.sim.clock import EventQueue
from node.sim.sigstop import Sigstop
from node.virtual.drain import VirtualRcuDrain, VirtualRemotePcpLock
from node.virtual.run import VirtualCluster
from node.virtual.strand import Strand
from node.work_table import WorkTable

INCARNATION = "0"  # node.virtual.zone.LocalZone's until incarnations come from the RNG tree


def _refusal(err: Exception) -> pb.PcpControlReply:
    """A node half's domain error as the wall node's stream answers it (node.shared.interceptors)."""
    return pb.PcpControlReply(code=status_of(err).name, error=str(err))


class Process(Protocol):
    """The CPU's process as a request meets it: its incarnation (node.runtime's) and its coordinator
    epoch check (node.epoch's check_request): why a request of `epoch` is refused, or None."""

    incarnation: str

    def fence(self, epoch: int) -> str | None: ...


class _Fixed:
    """A process without membership (static): one incarnation, no epoch."""

    incarnation = INCARNATION

    def fence(self, epoch: int) -> str | None:
        return None


class NodePeer:
    """One virtual CPU as the drain driver reaches it (coordinator.drain.virtual_ends.Peer): each request,
    on arrival, goes where node.server sends the wall node's."""

    def __init__(self, cluster: VirtualCluster, cpu: int, scale: float = 1.0, process: Process | None = None) -> None:
        self.cluster = cluster
        self.cpu = cpu
        self.scale = scale
        self.process = process or _Fixed()
        self.work: WorkTable[WorkItem] = WorkTable(lambda item: item.done, lambda: cpu)  # queued, not yet flushed
        self.strands: dict[int, Strand] = {}  # requests being served, by number
        self._served = 0

    def control(self, message: Any, epoch: int = 0) -> Answer | Later:
        refused = self.process.fence(epoch)
        if refused is not None:  # the wall node answers the message with the error, its stream goes on
            return Answer(pb.PcpControlReply(code="FAILED_PRECONDITION", error=refused))
        op = message.WhichOneof("op")
        request = getattr(message, op)
        drain = self.cluster.drains[self.cpu]
        try:
            if op == "lock_drain":
                return self._serve(lambda strand: self._lock_drain(strand, drain, request))
            if op == "rcu_swap":
                return self._serve(lambda strand: self._rcu_swap(strand, drain, request))
            if op == "unlock" and isinstance(drain, VirtualRemotePcpLock):
                drain.unlock(validate.token(request.token), request.commit)
                return Answer(pb.PcpControlReply(unlocked=pb.Empty()))
            if op == "rcu_release" and isinstance(drain, VirtualRcuDrain):
                drain.release(validate.token(request.token), request.commit)
                return Answer(pb.PcpControlReply(rcu_released=pb.Empty()))
            if op == "abandon":
                return Answer(pb.PcpControlReply(abandoned=pb.AbandonReply(aborted=drain.abandon(request.request_id))))
            raise FailedPrecondition(f"cpu {self.cpu}: {op} does not apply to its pcp design")
        except DOMAIN_ERRORS as err:
            return Answer(_refusal(err))

    def _serve(self, handle: Callable[[Strand], pb.PcpControlReply]) -> Later:
        """Run handle(strand) on a Strand from now (node.server's handler awaiting its executor) and
        give its reply, or its refusal, once it has done its waiting."""
        later = Later()
        number = self._served
        self._served += 1

        def main(strand: Strand) -> None:
            try:
                later.give(handle(strand))
            except DOMAIN_ERRORS as err:
                later.give(_refusal(err))
            finally:
                del self.strands[number]

        queue = self.cluster.queue
        sigstop = self.cluster.cpus[self.cpu].sigstop  # the serving process's
        strand = self.strands[number] = Strand(queue, f"cpu{self.cpu}-rpc{number}", main, sigstop)
        strand.start(queue.clock())
        return later

    def _lock_drain(self, strand: Strand, drain: Any, request: pb.PcpLockDrainRequest) -> pb.PcpControlReply:
        # CPU hotplug is not modelled under virtual time: every virtual CPU is online.
        check_remote_lock(self.cpu, isinstance(drain, VirtualRemotePcpLock), self.cluster.profile, cpu_offline=False)
        assert isinstance(drain, VirtualRemotePcpLock)  # checked above
        lease = validate.count(request.lease_ms, validate.MAX_LEASE_MS, "lease_ms") / 1000.0 / self.scale
        taken = drain.lock_and_take(strand, lease, wait_timeout=lease, left=request.left, request_id=request.request_id)
        grant = pb.PcpLockDrainReply(
            token=taken.token,
            pages=validate.to_page_list(pb.PageList, taken.pages),
            lock_wait_s=taken.lock_wait_s * self.scale,
            left=taken.left,
        )
        return pb.PcpControlReply(lock_drain=grant)

    def _rcu_swap(self, strand: Strand, drain: Any, request: pb.RcuSwapRequest) -> pb.PcpControlReply:
        check_rcu_swap(self.cpu, isinstance(drain, VirtualRcuDrain))
        assert isinstance(drain, VirtualRcuDrain)  # checked above
        ms = validate.count(request.gp_timeout_ms, validate.MAX_LEASE_MS, "gp_timeout_ms")
        gp_timeout = ms / 1000.0 / self.scale
        lease = validate.count(request.lease_ms, validate.MAX_LEASE_MS, "lease_ms") / 1000.0 / self.scale
        token, pages, gp_s, gp_ok = drain.swap_and_take(strand, lease, gp_timeout, request.request_id)
        swap = pb.RcuSwapReply(
            token=token, pages=validate.to_page_list(pb.PageList, pages), grace_period_s=gp_s * self.scale, gp_ok=gp_ok
        )
        return pb.PcpControlReply(rcu_swap=swap)

    def call(self, method: str, request: Any, epoch: int = 0) -> Answer | Later:
        cluster, n = self.cluster, self.cpu
        refused = self.process.fence(epoch) if method != "Snapshot" else None  # node.server checks all but Snapshot
        if refused is not None:
            return Answer(Refusal("FAILED_PRECONDITION", refused))
        try:
            if method == "QueueWork":
                validate.work_kind(request.kind)
                self.work.make_room()
                item = cluster.queue_drain_work(n)
                self.work.add(item.id, item)
                return Answer(pb.QueueWorkReply(work_id=item.id))
            if method == "FlushWork":
                timeout_ms = validate.count(request.timeout_ms, validate.MAX_FLUSH_MS, "timeout_ms")
                return self._flush(self.work.get(request.work_id), timeout_ms / 1000.0 / self.scale)
        except DOMAIN_ERRORS as err:  # node.server's checks, answered as the wall call's status
            return Answer(Refusal(status_of(err).name, str(err)))
        if method == "SetRunState":
            cpu = cluster.cpus[n]
            reply = pb.RunStateReply(was_paused=cpu.held_paused_by(OPERATOR))
            cpu.set_paused(request.paused)
            if not request.paused:
                return Answer(reply)
            later = Later()
            cpu.when_parked(lambda: later.give(reply))
            return later
        if method == "Snapshot":
            return Answer(self._snapshot())
        raise ValueError(f"cpu {n}: the virtual cluster does not serve {method}")

    def _flush(self, item: WorkItem, timeout_s: float) -> Later:
        """flush_work: the reply once the item has run on the CPU (the item forgotten then), or `timeout_s`
        from now (the item kept for a later flush), as node.server's FlushWork answers."""
        later = Later()
        queue = self.cluster.queue
        timed_out = [False]

        def ran(it: WorkItem) -> None:
            if timed_out[0]:
                return
            self.work.forget(it.id)
            later.give(
                pb.FlushWorkReply(
                    done=it.error is None,
                    queue_delay_s=(it.started_at - it.queued_at) * self.scale,
                    run_s=(it.finished_at - it.started_at) * self.scale,
                    pages=it.result if isinstance(it.result, int) else 0,
                )
            )

        def timeout() -> None:
            if not item.done:
                timed_out[0] = True
                later.give(pb.FlushWorkReply(done=False, queue_delay_s=(queue.clock() - item.queued_at) * self.scale))

        item.add_done_callback(ran)
        if not item.done:
            queue.after(timeout_s, timeout)
        return later

    def _snapshot(self) -> pb.NodeSnapshot:
        cluster, n = self.cluster, self.cpu
        pcp, running = cluster.pcps[n], not cluster.cpus[n].parked
        errors = [] if running else cluster.ops.check_pcp(pcp)
        return pb.NodeSnapshot(
            cpu=n,
            pcp_pages=validate.to_page_list(pb.PageList, pcp.pages()),
            allocated=validate.to_page_list(pb.PageList, cluster.allocs[n].pages()),
            inflight=validate.to_page_list(pb.PageList, cluster.drains[n].inflight()),
            errors=errors,
            running=running,
            incarnation=self.process.incarnation,
        )

    def close(self) -> None:
        for strand in list(self.strands.values()):
            strand.close()


class _Turn:
    """One ZoneLocked effect's place in zone->lock's queue: the lock's release hands it over here."""

    def __init__(self, queue: EventQueue, granted: Callable[[], None]) -> None:
        self.queue = queue
        self.granted = granted

    def resume_soon(self) -> None:
        self.queue.at(self.queue.clock.now, self.granted)


class CoordinatorZone(LockedZone):
    """The zone service as the drain and range rules' ZoneLocked effects and the audit's check call it
    (coordinator.zone_service.ZoneService's free_pages, holdings, take_range, release_range, zone), over
    the virtual zone's rules."""

    def __init__(self, cluster: VirtualCluster) -> None:
        shared = cluster.zone
        self.rules = shared.rules
        self.zone = shared.zone
        self.lock = shared.lock
        self.cost = shared.cost
        self.queue = cluster.queue
        self._hold_us = 0.0  # what the operations of the ZoneLocked effect running now cost
        # Its coordinator process's (node.sim.sigstop), set by VirtualCoordinator: while that is stopped its
        # zone service applies nothing and ends no hold; once it is killed it applies nothing.
        self.sigstop = Sigstop(cluster.queue)

    def locked(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        """fn() once zone->lock is this effect's, in arrival order behind the CPUs' zone requests; then
        the lock held for what fn's operations cost (ZoneService._apply's sleep), then done."""
        turn = _Turn(self.queue, lambda: self._run(fn, done))
        if self.lock.take(turn):
            self._run(fn, done)

    def _run(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        if self.sigstop.killed:  # handed the lock after its process was killed: it passes it on
            self.lock.release()
            return
        if self.sigstop.held(self._run, fn, done):  # the lock handed over while the process is stopped
            return
        self._hold_us = 0.0
        value: Any = None
        error: BaseException | None = None
        try:
            value = fn()
        except Exception as err:  # a refusal: nothing changed, the lock is let go at once
            error = err
        self.queue.after(self.cost.wall(self._hold_us), self._release, done, value, error)

    def _release(
        self, done: Callable[[Any, BaseException | None], None], value: Any, error: BaseException | None
    ) -> None:
        if not self.sigstop.killed and self.sigstop.held(self._release, done, value, error):
            return
        self.lock.release()  # a killed one's too: the lock object outlives it (the next coordinator's zone shares it)
        done(value, error)  # a killed process's program ends at this step (VirtualDriver._step)

    def _held(self, held: Held) -> Any:
        self._hold_us += held.hold_us
        return held.value

    def free_pages(self, cpu: int, pages: list[Page], transfer_id: str, incarnation: str, stream: str) -> ZoneReply:
        try:
            return self._held(self.rules.free_pages(cpu, pages, transfer_id, incarnation, stream))
        except Refused as err:
            raise FailedPrecondition(str(err)) from None

    def cpu_dead(self, cpu: int) -> int:
        """page_alloc_cpu_dead (the reaper's kill, a replaced registration)."""
        return self._held(self.rules.cpu_dead(cpu))

    def claim(self, cpu: int, pages: list[Page]) -> int:
        try:
            return self.rules.claim(cpu, pages)
        except Refused as err:
            raise FailedPrecondition(str(err)) from None

    def holdings(self) -> dict[int, list]:
        return self.rules.holdings()

    def take_range(self, owner: int, start: int, nr_pages: int) -> tuple:
        """The range rules' take (coordinator.contig_rule): (blocks, None, None) or (None, busy pfn, holder)."""
        return self._held(self.rules.take_range(owner, start, nr_pages))

    def release_range(self, start: int, nr_pages: int) -> int:
        try:
            return self._held(self.rules.release_range(start, nr_pages))
        except Refused as err:
            raise FailedPrecondition(str(err)) from None
