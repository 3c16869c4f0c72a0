"""drain_pages_zone(cpu, zone) run from the draining CPU against a remote CPU's pcp (v6.0+).

On the member's control stream: take that CPU's pcp lock and its pages (a lease with a
fencing token), commit (the node checks the token still holds the lock and lets the pages
go, which also releases the lock), then free the pages into the zone under zone->lock. The
target CPU runs nothing. node.remote_lock explains why this order is safe. A commit whose
reply is lost is asked again until the node answers or is no longer a member
(coordinator.drain.control), so every drain resolves within the lease plus the dead timeout."""

from coordinator.drain.effects import Program, StopHere, describe
from coordinator.drain.record import CpuDrain
from coordinator.drain.strategy import DrainerView, free_drained
from coordinator.membership_rule import Member
from node.api import validate
from node.api.v1 import pcpsim_pb2 as pb


def drain_pages_zone(drainer: DrainerView, member: Member) -> Program[CpuDrain]:
    result = CpuDrain(member.cpu)
    t0 = drainer.clock()
    lease_s = drainer.lease_ms / 1000.0
    try:
        reply = yield from drainer.control.request(
            member,
            lease_s,
            pb.PcpControlRequest(lock_drain=pb.PcpLockDrainRequest(cpu=member.cpu, lease_ms=drainer.lease_ms)),
            until_lease_expires=True,
        )
        grant = reply.lock_drain
        result.wait_s = grant.lock_wait_s
        if grant.token:
            yield StopHere()
            pages = validate.page_list(grant.pages)
            yield from drainer.control.commit(
                member, pb.PcpControlRequest(unlock=pb.PcpUnlockRequest(cpu=member.cpu, token=grant.token, commit=True))
            )
            yield free_drained(member, pages, f"drain-cpu{member.cpu}-{member.incarnation}-{grant.token}")
            result.pages = sum(1 << order for _, order, _ in pages)
    except Exception as err:  # the node or the zone refused, or the stream broke
        result.ok, result.error = False, describe(err)
    result.duration_s = drainer.clock() - t0
    return result


def drain_remote(drainer: DrainerView, marked: list[Member]) -> Program[list[CpuDrain]]:
    """__drain_all_pages on v6.0+: the calling CPU drains each marked CPU in turn."""
    results = []
    for member in marked:
        results.append((yield from drain_pages_zone(drainer, member)))
    return results
