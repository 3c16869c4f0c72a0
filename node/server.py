"""The node's gRPC servicer (the interconnect): thin wrappers over the CPU, pcp and lock.

Nothing here runs on the CPU thread. Work for the CPU is queued (QueueWork) and the
remote pcp lock is taken from this thread (PcpLockDrain / PcpUnlock), as in the kernel
a remote drain reads another CPU's memory instead of running code on it.
"""

import asyncio

from node.api import validate
from node.api.errors import FailedPrecondition, InvalidArgument, NotFound, rpc, serve_stream
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc
from node.cpu import OPERATOR
from node.remote_lock import MAX_LEASE_S

MAX_LEASE_MS = int(MAX_LEASE_S * 1000)
MAX_FLUSH_MS = 600_000
# Work items kept for FlushWork. A caller that queues work and never flushes it would
# otherwise grow this map without bound: past the limit the oldest finished item is
# forgotten (its FlushWork then gets NOT_FOUND), and if none has finished the queue is full.
MAX_WORK_ITEMS = 1024


class NodeServicer(pb_grpc.NodeServicer):
    def __init__(self, node, faults):
        self.node = node  # node.runtime.NodeRuntime
        self.faults = faults  # node.shared.faults.Faults
        self._work = {}   # work_id -> (WorkItem, asyncio.Future)

    def _check_cpu(self, cpu: int) -> None:
        if cpu != self.node.cpu_id:
            raise InvalidArgument(f"cpu {cpu} is not served here (this node is cpu {self.node.cpu_id})")

    def _pcp_state(self) -> pb.PcpState:
        pcp = self.node.pcp
        return pb.PcpState(cpu=self.node.cpu_id, count=pcp.count, high=pcp.high, batch=pcp.batch,
                           free_factor=pcp.free_factor, list_pages=[len(lst) for lst in pcp.lists],
                           locked=pcp.lock.locked(), remote_token=self.node.remote_lock.holder_token() if self.node.remote_lock else 0)

    @rpc
    async def GetPcp(self, request, context):
        self._check_cpu(request.cpu)
        return self._pcp_state()

    @rpc
    async def PcpLockDrain(self, request, context):
        return await self._lock_drain(request)

    @rpc
    async def PcpUnlock(self, request, context):
        return await self._unlock(request)

    async def PcpControl(self, request_iterator, context):
        """PcpLockDrain and PcpUnlock on the drainer's long-lived stream."""
        async for reply in serve_stream(request_iterator, pb.PcpControlReply, {
                "lock_drain": ("lock_drain", self._lock_drain), "unlock": ("unlocked", self._unlock),
                "rcu_swap": ("rcu_swap", self._rcu_swap), "rcu_release": ("rcu_released", self._rcu_release)},
                "PcpControl", self.faults):
            yield reply

    async def _lock_drain(self, request) -> pb.PcpLockDrainReply:
        self._check_cpu(request.cpu)
        if self.node.remote_lock is None:
            raise FailedPrecondition(f"cpu {self.node.cpu_id} keeps its pcp lists behind an RCU pointer: "
                                     "there is no pcp lock to take (drain it with rcu-swap or workqueue)")
        if not self.node.profile.remote_drain and not self.node.cpu_offline:
            raise FailedPrecondition(f"cpu {self.node.cpu_id} runs kernel {self.node.profile.name}: its pcp is "
                                     f"guarded by a {self.node.profile.pcp_lock} no other CPU can take "
                                     "(drain it with workqueue)")
        lease_ms = validate.count(request.lease_ms, MAX_LEASE_MS, "lease_ms")
        lease = lease_ms / 1000.0
        token, pages, wait = await self.node.remote_lock.lock_and_take(lease, wait_timeout=lease)
        return pb.PcpLockDrainReply(token=token, pages=validate.to_page_list(pb.PageList, pages),
                                    lock_wait_s=wait)

    async def _unlock(self, request) -> pb.Empty:
        self._check_cpu(request.cpu)
        if request.token == 0:
            raise InvalidArgument("token 0 is never granted")
        await self.node.remote_lock.unlock(request.token, request.commit)
        return pb.Empty()

    async def _rcu_swap(self, request) -> pb.RcuSwapReply:
        self._check_cpu(request.cpu)
        if self.node.rcu_drain is None:
            raise FailedPrecondition(f"cpu {self.node.cpu_id} runs the v6.0 pcp spinlock, not RCU list sets "
                                     "(start the cluster with --strategy rcu-swap)")
        gp_timeout_ms = validate.count(request.gp_timeout_ms, MAX_LEASE_MS, "gp_timeout_ms")
        lease_ms = validate.count(request.lease_ms, MAX_LEASE_MS, "lease_ms")
        token, pages, gp_s, gp_ok = await self.node.rcu_drain.swap_and_take(lease_ms / 1000.0,
                                                                            gp_timeout_ms / 1000.0)
        return pb.RcuSwapReply(token=token, pages=validate.to_page_list(pb.PageList, pages),
                               grace_period_s=gp_s, gp_ok=gp_ok)

    async def _rcu_release(self, request) -> pb.Empty:
        self._check_cpu(request.cpu)
        if self.node.rcu_drain is None:
            raise FailedPrecondition(f"cpu {self.node.cpu_id} has no rcu-swap grants")
        if request.token == 0:
            raise InvalidArgument("token 0 is never granted")
        await self.node.rcu_drain.release(request.token, request.commit)
        return pb.Empty()

    @rpc
    async def QueueWork(self, request, context):
        self._check_cpu(request.cpu)
        if request.kind != pb.WORK_DRAIN_LOCAL_PAGES:
            raise InvalidArgument(f"unknown work kind {request.kind}")
        self._forget_flushed_work()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        item = self.node.queue_drain_work()
        item.add_done_callback(
            lambda it: loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(it)))
        self._work[item.id] = (item, fut)
        return pb.QueueWorkReply(work_id=item.id)

    def _forget_flushed_work(self) -> None:
        if len(self._work) < MAX_WORK_ITEMS:
            return
        done = next((wid for wid, (_, fut) in self._work.items() if fut.done()), None)
        if done is None:
            raise FailedPrecondition(f"{len(self._work)} work items queued on cpu {self.node.cpu_id} "
                                     f"and none finished: flush some first")
        del self._work[done]

    @rpc
    async def FlushWork(self, request, context):
        self._check_cpu(request.cpu)
        timeout_ms = validate.count(request.timeout_ms, MAX_FLUSH_MS, "timeout_ms")
        entry = self._work.get(request.work_id)
        if entry is None:
            raise NotFound(f"no work item {request.work_id} on cpu {self.node.cpu_id}")
        item, fut = entry
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_ms / 1000.0)
        except asyncio.TimeoutError:
            return pb.FlushWorkReply(done=False, queue_delay_s=self.node.cpu.clock() - item.queued_at)
        del self._work[request.work_id]
        return pb.FlushWorkReply(done=item.error is None,
                                 queue_delay_s=item.started_at - item.queued_at,
                                 run_s=item.finished_at - item.started_at,
                                 pages=item.result or 0)

    @rpc
    async def SetRunState(self, request, context):
        self._check_cpu(request.cpu)
        if request.cpu_offline and not request.paused:
            raise InvalidArgument("cpu_offline is only for pausing")
        # Callers of this RPC share one hold; the agent's own (a node rejoining) is apart from it.
        was_paused = self.node.cpu.held_paused_by(OPERATOR)
        ok = await asyncio.get_running_loop().run_in_executor(
            None, self.node.cpu.set_paused, request.paused)
        if not ok:
            raise InvalidArgument("the CPU did not reach a safe point in time")
        if request.cpu_offline or not request.paused:
            self.node.cpu_offline = request.cpu_offline
        return pb.RunStateReply(was_paused=was_paused)

    @rpc
    async def Snapshot(self, request, context):
        self._check_cpu(request.cpu)
        node = self.node
        # Read on this thread while the CPU's may run: every structure is copied whole, and the
        # invariants are checked only on a parked CPU, where they must hold (mid-operation they need not).
        running = not node.cpu.parked
        return pb.NodeSnapshot(
            cpu=node.cpu_id, pcp=self._pcp_state(),
            pcp_pages=validate.to_page_list(pb.PageList, node.pcp.pages()),
            allocated=validate.to_page_list(pb.PageList, node.alloc.pages()),
            inflight=validate.to_page_list(pb.PageList, node.remote_drain.inflight()),
            errors=[] if running else node.check_pcp(), running=running,
            grants=[_grant_record(g) for g in node.remote_lock.records()] if node.remote_lock else [],
            incarnation=node.incarnation, rejoins=node.rejoins, lease_left_s=node.lease_left())

    @rpc
    async def GetStats(self, request, context):
        self._check_cpu(request.cpu)
        return self.node.stats(reset=request.reset)

    @rpc
    async def SetFaults(self, request, context):
        return self.faults.set(request)


_OUTCOMES = {"held": pb.GrantRecord.HELD, "committed": pb.GrantRecord.COMMITTED,
             "aborted": pb.GrantRecord.ABORTED, "expired": pb.GrantRecord.EXPIRED}


def _grant_record(g) -> pb.GrantRecord:
    return pb.GrantRecord(token=g.token, outcome=_OUTCOMES[g.outcome], pages=len(g.pages),
                          granted_at=g.granted_at, ended_at=g.ended_at, lease_s=g.lease_s,
                          committed_after_expiry=g.committed_after_expiry,
                          stale_commits_refused=g.stale_commits_refused)

