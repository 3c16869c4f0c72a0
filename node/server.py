"""The node's gRPC servicer (the interconnect): each method converts its request, calls the
runtime (node.runtime) or the work-item table (node.workqueue, node.work_table) and converts the result.

Nothing here runs on the CPU thread. Work for the CPU is queued (QueueWork) and the
remote pcp lock is taken from this thread (PcpLockDrain / PcpUnlock), as in the kernel
a remote drain reads another CPU's memory instead of running code on it. Domain errors
and faults are applied around every method by node.shared.interceptors. The methods a
coordinator drives check its epoch first (node.epoch): a replaced one is refused.
"""

import asyncio

from node.api import validate
from node.api.errors import InvalidArgument, Unavailable
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.mm.lock import spin_is_locked
from node.shared.reply_stream import serve_ops, until_stopping
from node.workqueue import WorkItems

STOP_GRACE_S = 0.5  # what a stopping node's server gives the calls in flight (node.__main__)
STREAM_HOLD_S = 0.8 * STOP_GRACE_S  # a grant held keeps a drainer's stream this long past the stop, no longer


class NodeServicer(pb_grpc.NodeServicer):
    def __init__(self, node, faults):
        self.node = node  # node.runtime.NodeRuntime
        self.faults = faults  # node.shared.faults.Faults
        self.work = WorkItems(node)
        # Set when the process stops: each drainer's PcpControl stream ends at its next idle moment
        # (node.shared.reply_stream.until_stopping), so the server's stop need not wait out its grace.
        self.stopping = asyncio.Event()
        self._control_ops = {
            "lock_drain": ("lock_drain", self._lock_drain),
            "unlock": ("unlocked", self._unlock),
            "rcu_swap": ("rcu_swap", self._rcu_swap),
            "rcu_release": ("rcu_released", self._rcu_release),
            "abandon": ("abandoned", self._abandon),
        }

    def _check_epoch(self, context) -> None:
        self.node.epoch.check_request(context.invocation_metadata())

    def _check_cpu(self, cpu: int) -> None:
        if cpu != self.node.cpu_id:
            raise InvalidArgument(f"cpu {cpu} is not served here (this node is cpu {self.node.cpu_id})")

    def _pcp_state(self) -> pb.PcpState:
        pcp = self.node.pcp
        return pb.PcpState(
            cpu=self.node.cpu_id,
            count=pcp.count,
            high=pcp.high,
            high_min=pcp.high_min,  # both high itself without v6.7's auto-tuning (pcp.pageset_update)
            high_max=pcp.high_max,
            batch=pcp.batch,
            free_factor=pcp.free_factor,
            list_pages=[len(lst) for lst in pcp.lists],
            locked=spin_is_locked(pcp.lock),
            remote_token=self.node.remote_drain.holder_token(),  # the pcp lock's grant, or the list set's
        )

    async def GetPcp(self, request, context):
        self._check_cpu(request.cpu)
        return self._pcp_state()

    async def PcpLockDrain(self, request, context):
        self._check_epoch(context)
        return await self._lock_drain(request)

    async def PcpUnlock(self, request, context):
        self._check_epoch(context)
        return await self._unlock(request)

    async def PcpControl(self, request_iterator, context):
        """PcpLockDrain and PcpUnlock (and the rcu-swap pair) on the drainer's long-lived stream."""
        requests = until_stopping(request_iterator, self.stopping, self._granted, STREAM_HOLD_S)
        async for reply in serve_ops(self._epoch_checked(requests, context), pb.PcpControlReply, self._control_ops):
            yield reply

    def _granted(self) -> bool:
        """A drainer holds a grant of this CPU's pages (its unlock or commit is still to come)."""
        try:
            return self.node.remote_drain.holder_token() != 0
        except Unavailable:  # still registering: no drainer holds anything
            return False

    async def _epoch_checked(self, requests, context):
        """Each message against the epoch in the stream's headers, not only the stream's opening: a stream
        a coordinator opened before this node heard of its successor stays open (a refused message is
        answered with the error, the stream goes on)."""
        metadata = context.invocation_metadata()
        async for request in requests:
            self.node.epoch.check_request(metadata)
            yield request

    async def _lock_drain(self, request) -> pb.PcpLockDrainReply:
        self._check_cpu(request.cpu)
        lock = self.node.remote_pcp_lock()
        lease = validate.count(request.lease_ms, validate.MAX_LEASE_MS, "lease_ms") / 1000.0
        taken = await lock.lock_and_take(lease, wait_timeout=lease, left=request.left, request_id=request.request_id)
        return pb.PcpLockDrainReply(
            token=taken.token,
            pages=validate.to_page_list(pb.PageList, taken.pages),
            lock_wait_s=taken.lock_wait_s,
            left=taken.left,
        )

    async def _unlock(self, request) -> pb.Empty:
        self._check_cpu(request.cpu)
        await self.node.remote_lock.unlock(validate.token(request.token), request.commit)
        return pb.Empty()

    async def _rcu_swap(self, request) -> pb.RcuSwapReply:
        self._check_cpu(request.cpu)
        rcu_drain = self.node.rcu_swap()
        gp_timeout_ms = validate.count(request.gp_timeout_ms, validate.MAX_LEASE_MS, "gp_timeout_ms")
        lease_ms = validate.count(request.lease_ms, validate.MAX_LEASE_MS, "lease_ms")
        token, pages, gp_s, gp_ok = await rcu_drain.swap_and_take(
            lease_ms / 1000.0, gp_timeout_ms / 1000.0, request.request_id
        )
        return pb.RcuSwapReply(
            token=token, pages=validate.to_page_list(pb.PageList, pages), grace_period_s=gp_s, gp_ok=gp_ok
        )

    async def _rcu_release(self, request) -> pb.Empty:
        self._check_cpu(request.cpu)
        rcu_drain = self.node.rcu_grants()
        await rcu_drain.release(validate.token(request.token), request.commit)
        return pb.Empty()

    async def _abandon(self, request) -> pb.AbandonReply:
        self._check_cpu(request.cpu)
        if not request.request_id:
            raise InvalidArgument("abandon names no request (request_id 0: a request without one cannot be abandoned)")
        return pb.AbandonReply(aborted=self.node.remote_drain.abandon(request.request_id))

    async def QueueWork(self, request, context):
        self._check_epoch(context)
        self._check_cpu(request.cpu)
        validate.work_kind(request.kind)
        return pb.QueueWorkReply(work_id=self.work.queue_drain().id)

    async def FlushWork(self, request, context):
        self._check_epoch(context)
        self._check_cpu(request.cpu)
        timeout_ms = validate.count(request.timeout_ms, validate.MAX_FLUSH_MS, "timeout_ms")
        item, ran = await self.work.flush(request.work_id, timeout_ms / 1000.0)
        if not ran:
            return pb.FlushWorkReply(done=False, queue_delay_s=self.node.cpu.clock() - item.queued_at)
        return pb.FlushWorkReply(
            done=item.error is None,
            queue_delay_s=item.started_at - item.queued_at,
            run_s=item.finished_at - item.started_at,
            pages=item.result or 0,
        )

    async def SetRunState(self, request, context):
        self._check_epoch(context)
        self._check_cpu(request.cpu)
        was_paused = await asyncio.get_running_loop().run_in_executor(
            None, self.node.set_run_state, request.paused, request.cpu_offline
        )
        return pb.RunStateReply(was_paused=was_paused)

    async def Snapshot(self, request, context):
        self._check_cpu(request.cpu)
        node = self.node
        # Read on this thread while the CPU's may run: every structure is copied whole, and the
        # invariants are checked only on a parked CPU, where they must hold (mid-operation they need not).
        running = not node.cpu.parked
        return pb.NodeSnapshot(
            cpu=node.cpu_id,
            pcp=self._pcp_state(),
            pcp_pages=validate.to_page_list(pb.PageList, node.pcp.pages()),
            allocated=validate.to_page_list(pb.PageList, node.alloc.pages()),
            inflight=validate.to_page_list(pb.PageList, node.remote_drain.inflight()),
            errors=[] if running else node.check_pcp(),
            running=running,
            grants=[_grant_record(g) for g in node.remote_drain.records()],
            incarnation=node.incarnation,
            rejoins=node.rejoins,
            lease_left_s=node.lease_left(),
            coordinator_epoch=node.epoch.highest,
            registered_epoch=node.epoch.registered,
            stale_requests_refused=node.epoch.stale_requests_refused,
            stale_replies_ignored=node.epoch.stale_replies_ignored,
        )

    async def GetStats(self, request, context):
        self._check_cpu(request.cpu)
        window = None
        if request.events_from_s or request.events_to_s:
            window = validate.event_window(request.events_from_s, request.events_to_s)
        stats = self.node.stats(reset=request.reset)
        if window is not None:
            stats.events.extend(self.node.events(*window))
        return stats

    async def SetFaults(self, request, context):
        # A node learns the cluster's size only when it registers: its peers are checked against MAX_CPUS.
        return self.faults.set(request, "node")


_OUTCOMES = {
    "held": pb.GrantRecord.HELD,
    "committed": pb.GrantRecord.COMMITTED,
    "aborted": pb.GrantRecord.ABORTED,
    "expired": pb.GrantRecord.EXPIRED,
}


def _grant_record(g) -> pb.GrantRecord:
    return pb.GrantRecord(
        token=g.token,
        outcome=_OUTCOMES[g.outcome],
        pages=len(g.pages),
        granted_at=g.granted_at,
        ended_at=g.ended_at,
        lease_s=g.lease_s,
        committed_after_expiry=g.committed_after_expiry,
        stale_commits_refused=g.stale_commits_refused,
    )
