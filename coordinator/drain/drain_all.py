"""drain_all_pages and drain_pages as rules: pcpu_drain_mutex, cpus_with_pcps, the strategy, the record.

Models __drain_all_pages() of mm/page_alloc.c (v6.1, read in torvalds/linux at dac22531bbd4; the
workqueue form in stored pre-6.0 copies; docs/kernel-facts.md §22):
- pcpu_drain_mutex: a global drain (direct reclaim, zone == NULL in the kernel) that
  finds a drain running returns at once (SKIPPED); a zone-specific caller (on demand,
  like alloc_contig_range or memory offline) waits for the mutex.
- cpus_with_pcps: built from each online CPU's last reported pcp count, a racy read
  as in the kernel; force_all_cpus marks every online CPU. The kernel tests the zone's pcp
  (zone-specific) or any populated zone's (zone == NULL); the model's one zone makes them one.
- then the strategy drains the marked CPUs: workqueue (up to v5.19, .workqueue), remote
  (v6.0+, .remote), rcu-swap (Saenz Julienne's series, not merged, .rcu_swap) or qpw (the
  pw_queue_on proposal, not merged, .qpw: remote or workqueue for all CPUs by one switch).
drain_pages(cpu) is page_alloc_cpu_dead's drain of one CPU from a surviving one: never by
queueing work on it, so remote (or rcu-swap on the RCU design) whatever the default. The kernel
runs it without pcpu_drain_mutex; the model's callers hold it (coordinator.cpu_hotplug).
The mutex is the driver's object (an asyncio.Lock in the coordinator process, a virtual one in
virtual time), taken and let go through effects; every drain returns its DrainRecord.
"""

from coordinator.drain.effects import Lock, Program, Unlock
from coordinator.drain.qpw import qpw_strategy
from coordinator.drain.rcu_swap import drain_rcu_swap
from coordinator.drain.record import STRATEGIES, STRATEGY_NAMES, TRIGGER_NAMES, DrainRecord
from coordinator.drain.remote import drain_remote
from coordinator.drain.strategy import DrainerView, DrainStrategy
from coordinator.drain.workqueue import drain_workqueue
from coordinator.membership_rule import Member
from node.api.errors import FailedPrecondition, InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.profile import KernelProfile

DRAIN_BY_STRATEGY: dict[pb.Strategy, DrainStrategy] = {
    pb.STRATEGY_WORKQUEUE: drain_workqueue,
    pb.STRATEGY_REMOTE: drain_remote,
    pb.STRATEGY_RCU_SWAP: drain_rcu_swap,
    pb.STRATEGY_QPW: qpw_strategy(drain_workqueue, drain_remote),
}


def unrunnable(strategy: pb.Strategy, default: pb.Strategy, profile: KernelProfile) -> str | None:
    """Why a cluster's CPUs cannot be drained by `strategy` (None: they can). Their pcp design is the
    cluster's default strategy's (RegisterReply.strategy: RCU list sets under rcu-swap, the pcp
    spinlock otherwise) and their kernel profile's; each node refuses the same (node.rcu_drain_rule,
    node.remote_lock_rule), but only once a drain has marked and asked it."""
    rcu = default == pb.STRATEGY_RCU_SWAP
    if strategy == pb.STRATEGY_RCU_SWAP and not rcu:
        return "the CPUs run the v6.0 pcp spinlock, not RCU list sets (start the cluster with --strategy rcu-swap)"
    if strategy in (pb.STRATEGY_REMOTE, pb.STRATEGY_QPW):  # qpw: remote once a CPU is isolated
        if rcu:
            return "the CPUs keep their pcp lists behind an RCU pointer: there is no pcp lock to take"
        if not profile.remote_drain:
            return (
                f"kernel {profile.name} guards the pcp with a {profile.pcp_lock} that no other CPU can take; "
                "use workqueue (its own) or rcu-swap (a what-if)"
            )
    return None


def resolve(
    default: pb.Strategy, strategy: pb.Strategy, trigger: pb.Trigger, profile: KernelProfile
) -> tuple[pb.Strategy, pb.Trigger]:
    """Validate a request's strategy and trigger, filling in defaults: a strategy the cluster's CPUs
    cannot run is refused before any CPU is marked."""
    if strategy == pb.STRATEGY_UNSPECIFIED:
        strategy = default
    if strategy not in STRATEGY_NAMES:
        raise InvalidArgument(
            f"unknown strategy {strategy}; known: " + ", ".join(f"{v} ({k})" for k, v in STRATEGIES.items())
        )
    if why := unrunnable(strategy, default, profile):
        raise FailedPrecondition(f"strategy {STRATEGY_NAMES[strategy]}: {why}")
    if trigger == pb.TRIGGER_UNSPECIFIED:
        trigger = pb.TRIGGER_DEMAND
    if trigger not in TRIGGER_NAMES:
        raise InvalidArgument(f"unknown trigger {trigger}")
    return strategy, trigger


def drain_all_pages(
    drainer: DrainerView, pcpu_drain_mutex: object, strategy: pb.Strategy, force_all_cpus: bool, trigger: pb.Trigger
) -> Program[DrainRecord]:
    """One drain of a resolved strategy and trigger (see resolve)."""
    record = DrainRecord(pb.DrainAllReply.DONE, strategy, trigger, drainer.clock())
    if not (yield Lock(pcpu_drain_mutex, wait=trigger != pb.TRIGGER_RECLAIM)):
        record.status = pb.DrainAllReply.SKIPPED
        return record
    try:
        t0 = drainer.clock()
        record.mutex_wait_s = t0 - record.started_at
        marked = [m for m in drainer.membership.online() if force_all_cpus or m.pcp_count]
        record.cpus_marked = [m.cpu for m in marked]
        record.settle((yield from DRAIN_BY_STRATEGY[strategy](drainer, marked)), drainer.clock(), t0)
    finally:
        yield Unlock(pcpu_drain_mutex)
    return record


def drain_pages(
    drainer: DrainerView, default: pb.Strategy, member: Member, trigger: pb.Trigger
) -> Program[DrainRecord]:
    """drain_pages(cpu) from here, for page_alloc_cpu_dead (CPU hotplug). Caller holds pcpu_drain_mutex."""
    strategy = pb.STRATEGY_RCU_SWAP if default == pb.STRATEGY_RCU_SWAP else pb.STRATEGY_REMOTE
    record = DrainRecord(pb.DrainAllReply.DONE, strategy, trigger, drainer.clock())
    record.cpus_marked = [member.cpu]
    record.settle((yield from DRAIN_BY_STRATEGY[strategy](drainer, [member])), drainer.clock(), record.started_at)
    return record
