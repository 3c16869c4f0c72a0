"""drain_all_pages by rcu-swap: Nicolas Saenz Julienne's design (Feb 2022, not merged).

The series' __drain_all_pages swaps every marked CPU's list-set pointer to its empty set,
calls synchronize_rcu() once, then frees each old set from the draining CPU (v2, 2022-02-08,
<20220208100750.1189808-3-nsaenzju@redhat.com>; docs/kernel-facts.md §13). So every marked CPU
finds its lists empty at once and refills them through zone->lock at once (docs/engine.md). Here the
swaps and the grace periods run for all marked CPUs at once (one RcuSwap on each CPU's
control stream: the node swaps, waits for its CPU's next quiescent state, and hands
over the old set's pages), so the drain waits for the slowest CPU's grace period, as
synchronize_rcu does. Then, CPU by CPU, the pages are committed (RcuRelease: from now
on they are not the node's) and only then freed into the zone under zone->lock, the
same commit-then-free order as the remote pcp lock, so a lapsed lease never lets the
zone and a node both hold a page.

A CPU that reports no quiescent state within the drainer's gp_timeout_ms fails its
part of the drain (ok=False, the grace period it waited recorded); its old set stays
with it until a later drain's grace period.
"""

from coordinator.drain.effects import Gather, Program, StopHere, describe
from coordinator.drain.record import CpuDrain
from coordinator.drain.strategy import DrainerView, free_drained
from coordinator.membership_rule import CONTROL_TIMEOUT_S, Member
from node.api import validate
from node.api.v1 import pcpsim_pb2 as pb


def drain_rcu_swap(drainer: DrainerView, marked: list[Member]) -> Program[list[CpuDrain]]:
    t0 = drainer.clock()
    swaps = yield Gather(tuple(_swap(drainer, m) for m in marked))
    results = []
    for member, swap in zip(marked, swaps, strict=True):
        result = CpuDrain(member.cpu)
        if isinstance(swap, BaseException):
            result.ok, result.error = False, describe(swap)
        else:
            result.grace_period_s = swap.grace_period_s
            if not swap.gp_ok:
                result.ok = False
                result.error = (
                    f"cpu {member.cpu} reported no quiescent state within "
                    f"{drainer.gp_timeout_ms} ms; its old list set stays with it"
                )
            if swap.token:
                try:
                    result.pages = yield from _commit_and_free(drainer, member, swap)
                except Exception as err:  # the node refused the commit, or the zone the pages
                    result.ok, result.error = False, describe(err)
        result.duration_s = drainer.clock() - t0
        results.append(result)
    return results


def _swap(drainer: DrainerView, member: Member) -> Program[pb.RcuSwapReply]:
    # Up to two grace periods: an earlier one that timed out, then this swap's.
    timeout = 2 * drainer.gp_timeout_ms / 1000.0 + CONTROL_TIMEOUT_S
    reply = yield from drainer.control.request(
        member,
        timeout,
        pb.PcpControlRequest(
            rcu_swap=pb.RcuSwapRequest(cpu=member.cpu, gp_timeout_ms=drainer.gp_timeout_ms, lease_ms=drainer.lease_ms)
        ),
        until_lease_expires=True,
    )
    swap: pb.RcuSwapReply = reply.rcu_swap
    return swap


def _commit_and_free(drainer: DrainerView, member: Member, swap: pb.RcuSwapReply) -> Program[int]:
    pages = validate.page_list(swap.pages)
    yield StopHere()
    yield from drainer.control.commit(
        member, pb.PcpControlRequest(rcu_release=pb.RcuReleaseRequest(cpu=member.cpu, token=swap.token, commit=True))
    )
    yield free_drained(member, pages, f"rcu-cpu{member.cpu}-{member.incarnation}-{swap.token}")
    return sum(1 << order for _, order, _ in pages)
