"""drain_pages_zone(cpu, zone) run from the draining CPU against a remote CPU's pcp (v6.0+).

On the member's control stream: take that CPU's pcp lock and its pages (a lease with a
fencing token), commit (the node checks the token still holds the lock and lets the pages
go, which also releases the lock), then free the pages into the zone under zone->lock. The
target CPU runs nothing. node.remote_lock explains why this order is safe. A commit whose
reply is lost is asked again until the node answers or is no longer a member
(coordinator.drain.control), so every grant resolves within the lease plus the dead timeout.

From v6.10 (55f77df7d715; 66eca1021a42 in v6.11) the kernel drains in chunks of at most
batch << CONFIG_PCP_BATCH_SCALE_MAX pages, the lock dropped between them. The node knows its profile
and batch, so it sizes each chunk and says in the grant's `left` what the loop still has to drain
(node.remote_lock_rule); this program loops as drain_pages_zone does: one grant per chunk, each with
its own token and lease, committed and freed before the next lock_drain, so the target CPU's own
trylock can win between two. Under a one-hold profile `left` is always 0: one grant, as before."""

from coordinator.drain.effects import Program, StopHere, describe
from coordinator.drain.record import CpuDrain
from coordinator.drain.strategy import DrainerView, free_drained
from coordinator.membership_rule import Member
from node.api import validate
from node.api.errors import InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb


def drain_pages_zone(drainer: DrainerView, member: Member) -> Program[CpuDrain]:
    result = CpuDrain(member.cpu)
    t0 = drainer.clock()
    lease_s = drainer.lease_ms / 1000.0
    left = 0
    try:
        while True:
            request = pb.PcpLockDrainRequest(cpu=member.cpu, lease_ms=drainer.lease_ms, left=left)
            reply = yield from drainer.control.request(
                member, lease_s, pb.PcpControlRequest(lock_drain=request), until_lease_expires=True
            )
            grant = reply.lock_drain
            result.wait_s += grant.lock_wait_s
            if grant.token:
                yield StopHere()
                pages = validate.page_list(grant.pages)
                unlock = pb.PcpUnlockRequest(cpu=member.cpu, token=grant.token, commit=True)
                yield from drainer.control.commit(member, pb.PcpControlRequest(unlock=unlock))
                yield free_drained(member, pages, f"drain-cpu{member.cpu}-{member.incarnation}-{grant.token}")
                result.pages += sum(1 << order for _, order, _ in pages)
            elif grant.left and left and grant.left >= left:
                # Each turn of the kernel's loop frees pages or lowers its count; a node answering
                # neither would keep this drain, and pcpu_drain_mutex, for ever.
                raise InvalidArgument(f"cpu {member.cpu} granted nothing and left {grant.left} of {left} to drain")
            left = grant.left
            if not left:
                break
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
