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
its own token and lease, committed before the next lock_drain, so the target CPU's own trylock can
win between two, and freed into the zone while the next chunk's grant holds the lock (the kernel
frees a chunk under the lock: see drain_pages_zone). Under a one-hold profile `left` is always 0:
one grant, committed, then freed, as before."""

from coordinator.drain.effects import Program, StopHere, describe
from coordinator.drain.record import CpuDrain
from coordinator.drain.strategy import DrainerView, free_drained
from coordinator.membership_rule import Member
from node.api import validate
from node.api.errors import InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.constants import Page


def drain_pages_zone(drainer: DrainerView, member: Member) -> Program[CpuDrain]:
    result = CpuDrain(member.cpu)
    t0 = drainer.clock()
    lease_s = drainer.lease_ms / 1000.0
    left = 0
    # A committed chunk not yet freed into the zone (see free_committed).
    committed: list[tuple[list[Page], str]] = []
    try:
        while True:
            request = pb.PcpLockDrainRequest(cpu=member.cpu, lease_ms=drainer.lease_ms, left=left)
            reply = yield from drainer.control.request(
                member, lease_s, pb.PcpControlRequest(lock_drain=request), until_lease_expires=True
            )
            # The kernel frees a chunk inside its pcp lock hold (free_pcppages_bulk under pcp->lock), so
            # the CPU cannot refill while it is freed; here a chunk is freed only once committed, so it
            # is freed under the next chunk's grant. Freed after the next commit instead, it would leave
            # the lock free for the whole free, and a CPU that allocates meanwhile refills up to
            # batch << 5 pages (6.12's alloc_factor) each time: the loop then went on for seconds.
            yield from free_committed(member, committed, result)
            grant = reply.lock_drain
            result.wait_s += grant.lock_wait_s
            if grant.token:
                yield StopHere()
                pages = validate.page_list(grant.pages)
                unlock = pb.PcpUnlockRequest(cpu=member.cpu, token=grant.token, commit=True)
                yield from drainer.control.commit(member, pb.PcpControlRequest(unlock=unlock))
                committed.append((pages, f"drain-cpu{member.cpu}-{member.incarnation}-{grant.token}"))
            elif grant.left and left and grant.left >= left:
                # Each turn of the kernel's loop frees pages or lowers its count; a node answering
                # neither would keep this drain, and pcpu_drain_mutex, for ever.
                raise InvalidArgument(f"cpu {member.cpu} granted nothing and left {grant.left} of {left} to drain")
            left = grant.left
            if not left:
                break
    except Exception as err:  # the node or the zone refused, or the stream broke
        result.ok, result.error = False, describe(err)
    try:
        # The last chunk, or the one committed before a later chunk failed: its pages left the node.
        yield from free_committed(member, committed, result)
    except Exception as err:
        result.ok, result.error = False, result.error or describe(err)
    result.duration_s = drainer.clock() - t0
    return result


def free_committed(member: Member, committed: list[tuple[list[Page], str]], result: CpuDrain) -> Program[None]:
    """Free the committed chunk into the zone (once: it leaves `committed` first) and count its pages."""
    while committed:
        pages, transfer_id = committed.pop()
        yield free_drained(member, pages, transfer_id)
        result.pages += sum(1 << order for _, order, _ in pages)


def drain_remote(drainer: DrainerView, marked: list[Member]) -> Program[list[CpuDrain]]:
    """__drain_all_pages on v6.0+: the calling CPU drains each marked CPU in turn."""
    results = []
    for member in marked:
        results.append((yield from drain_pages_zone(drainer, member)))
    return results
