"""drain_all_pages by workqueue (up to v5.19): queue_work_on(cpu, mm_percpu_wq,
drain_local_pages_wq) on every marked CPU, then flush_work on each in turn. The work runs
on the target CPU's thread; the caller waits for every CPU, each flush bounded by
flush_timeout_ms so a dead or partitioned CPU fails its part instead of wedging the drain."""

from coordinator.drain.effects import Call, Failed, Gather, Program, StopHere, describe
from coordinator.drain.record import CpuDrain
from coordinator.drain.strategy import DrainerView
from coordinator.membership_rule import Member
from node.api.v1 import pcpsim_pb2 as pb

QUEUE_TIMEOUT_S = 2.0


def drain_workqueue(drainer: DrainerView, marked: list[Member]) -> Program[list[CpuDrain]]:
    t0 = drainer.clock()
    queued = yield Gather(tuple(_queue_work_on(m) for m in marked))
    yield StopHere()
    results = []
    for member, work in zip(marked, queued, strict=True):
        result = CpuDrain(member.cpu)
        if isinstance(work, BaseException):
            result.ok, result.error = False, describe(work)
        else:
            yield from _flush_work(drainer, member, work.work_id, result)
        result.duration_s = drainer.clock() - t0
        results.append(result)
    return results


def _queue_work_on(member: Member) -> Program[pb.QueueWorkReply]:
    reply: pb.QueueWorkReply = yield Call(
        member,
        "QueueWork",
        pb.QueueWorkRequest(cpu=member.cpu, kind=pb.WORK_DRAIN_LOCAL_PAGES),
        QUEUE_TIMEOUT_S,
        QUEUE_TIMEOUT_S,
    )
    return reply


def _flush_work(drainer: DrainerView, member: Member, work_id: int, result: CpuDrain) -> Program[None]:
    timeout_ms = drainer.flush_timeout_ms
    try:
        reply: pb.FlushWorkReply = yield Call(
            member,
            "FlushWork",
            pb.FlushWorkRequest(cpu=member.cpu, work_id=work_id, timeout_ms=timeout_ms),
            timeout_ms / 1000.0 + 2.0,
            timeout_ms / 1000.0,
        )
        result.pages, result.wait_s, result.ok = reply.pages, reply.queue_delay_s, reply.done
        if not reply.done:
            result.error = f"flush timed out after {timeout_ms} ms"
    except Failed as err:
        result.ok, result.error = False, describe(err)
