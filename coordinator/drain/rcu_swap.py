"""drain_all_pages by rcu-swap: Nicolas Saenz Julienne's design (Feb 2022, not merged).

The series' __drain_all_pages swaps every marked CPU's list-set pointer to its empty set,
calls synchronize_rcu() once, then frees each old set from the draining CPU (v2, 2022-02-08,
<20220208100750.1189808-3-nsaenzju@redhat.com>; docs/kernel-facts.md §13). So every marked CPU
finds its lists empty at once and refills them through zone->lock at once (docs/engine.md). Here the
swaps and the grace periods run for all marked CPUs at once (one RcuSwap on each CPU's
control stream: the node swaps, waits for its CPU's next quiescent state, and hands
over the old set's pages), so the drain waits for the slowest CPU's grace period, as
synchronize_rcu does. Each CPU's pages are committed (RcuRelease: from now on they are not
the node's) as soon as its own swap has answered, and once every swap has, freed into the
zone under zone->lock CPU by CPU: the same commit-then-free order as the remote pcp lock, so
a lapsed lease never lets the zone and a node both hold a page. Committing each CPU at once,
rather than after the slowest swap, keeps a CPU's grant within its lease while another CPU's
swap waits out its bound: with one RcuSwap reply lost (rpc-drop-replies), the drain waited 9 s
for it, every other CPU's grant expired meanwhile, and every part of the drain failed.

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
from node.mm.constants import Page


def drain_rcu_swap(drainer: DrainerView, marked: list[Member]) -> Program[list[CpuDrain]]:
    t0 = drainer.clock()
    swaps = yield Gather(tuple(_swap_and_commit(drainer, m) for m in marked))
    results = []
    for member, swapped in zip(marked, swaps, strict=True):
        result = CpuDrain(member.cpu)
        if isinstance(swapped, BaseException):
            result.ok, result.error = False, describe(swapped)
        else:
            swap, committed = swapped
            result.grace_period_s = swap.grace_period_s
            if not swap.gp_ok:
                result.ok = False
                result.error = (
                    f"cpu {member.cpu} reported no quiescent state within "
                    f"{drainer.gp_timeout_ms} ms; its old list set stays with it"
                )
            if isinstance(committed, BaseException):  # the node refused the commit
                result.ok, result.error = False, describe(committed)
            elif committed:
                try:
                    yield free_drained(member, committed, f"rcu-cpu{member.cpu}-{member.incarnation}-{swap.token}")
                    result.pages = sum(1 << order for _, order, _ in committed)
                except Exception as err:  # the zone refused the pages
                    result.ok, result.error = False, describe(err)
        result.duration_s = drainer.clock() - t0
        results.append(result)
    return results


def _swap_and_commit(
    drainer: DrainerView, member: Member
) -> Program[tuple[pb.RcuSwapReply, list[Page] | BaseException]]:
    """One CPU's swap, then at once the commit of what it handed over: its pages, none if it handed
    over nothing, or why the commit failed (the swap's grace period is reported either way)."""
    swap = yield from _swap(drainer, member)
    if not swap.token:
        return swap, []
    try:
        pages = validate.page_list(swap.pages)
        yield StopHere()
        yield from drainer.control.commit(
            member,
            pb.PcpControlRequest(rcu_release=pb.RcuReleaseRequest(cpu=member.cpu, token=swap.token, commit=True)),
        )
    except Exception as err:
        return swap, err
    return swap, pages


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
