"""drain_all_pages by workqueue (up to v5.19): queue_work_on(cpu, mm_percpu_wq,
drain_local_pages_wq) on every marked CPU, then flush_work on each in turn. The work runs
on the target CPU's thread; the caller waits for every CPU, each flush bounded by
flush_timeout_ms so a dead or partitioned CPU fails its part instead of wedging the drain."""

import asyncio

import grpc

from coordinator.drain.control import describe
from coordinator.drain.record import CpuDrain
from coordinator.drain.strategy import DrainerView
from coordinator.membership import Member
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.faults import InjectedRpcError

QUEUE_TIMEOUT_S = 2.0


async def drain_workqueue(drainer: DrainerView, marked: list[Member]) -> list[CpuDrain]:
    t0 = drainer.clock()
    queued = await asyncio.gather(*(_queue_work_on(drainer, m) for m in marked), return_exceptions=True)
    drainer.control.stop_here_if_trapped()
    results = []
    for member, work in zip(marked, queued, strict=True):
        result = CpuDrain(member.cpu)
        if isinstance(work, BaseException):
            result.ok, result.error = False, describe(work)
        else:
            await _flush_work(drainer, member, work.work_id, result)
        result.duration_s = drainer.clock() - t0
        results.append(result)
    return results


async def _queue_work_on(drainer: DrainerView, member: Member) -> pb.QueueWorkReply:
    await drainer.control.outbound("QueueWork", member.cpu, QUEUE_TIMEOUT_S)
    reply: pb.QueueWorkReply = await member.stub.QueueWork(
        pb.QueueWorkRequest(cpu=member.cpu, kind=pb.WORK_DRAIN_LOCAL_PAGES), timeout=QUEUE_TIMEOUT_S
    )
    return reply


async def _flush_work(drainer: DrainerView, member: Member, work_id: int, result: CpuDrain) -> None:
    timeout_ms = drainer.flush_timeout_ms
    try:
        await drainer.control.outbound("FlushWork", member.cpu, timeout_ms / 1000.0)
        reply: pb.FlushWorkReply = await member.stub.FlushWork(
            pb.FlushWorkRequest(cpu=member.cpu, work_id=work_id, timeout_ms=timeout_ms),
            timeout=timeout_ms / 1000.0 + 2.0,
        )
        result.pages, result.wait_s, result.ok = reply.pages, reply.queue_delay_s, reply.done
        if not reply.done:
            result.error = f"flush timed out after {timeout_ms} ms"
    except (grpc.aio.AioRpcError, InjectedRpcError) as err:
        result.ok, result.error = False, describe(err)
