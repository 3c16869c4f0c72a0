"""drain_all_pages and drain_pages: empty CPUs' pcp lists into the zone, by one strategy.

Models __drain_all_pages() of mm/page_alloc.c (v6.1):
- pcpu_drain_mutex: a global drain (direct reclaim, zone == NULL in the kernel) that
  finds a drain running returns at once (SKIPPED); a zone-specific caller (on demand,
  like alloc_contig_range or memory offline) waits for the mutex.
- cpus_with_pcps: built from each online CPU's last reported pcp count, a racy read
  as in the kernel; force_all_cpus marks every online CPU.
- then the strategy drains the marked CPUs: workqueue (up to v5.19, .workqueue), remote
  (v6.0+, .remote), rcu-swap (Saenz Julienne's series, not merged, .rcu_swap) or qpw (the
  pw_queue_on proposal, not merged, .qpw: remote or workqueue for all CPUs by one switch).
drain_pages(cpu) is page_alloc_cpu_dead's drain of one CPU from a surviving one: never by
queueing work on it, so remote (or rcu-swap on the RCU design) whatever the default.
Each drain is recorded (status, per-CPU pages, duration and wait) for reports.
"""

import asyncio
import collections
from collections.abc import Callable

from coordinator.drain.control import Control
from coordinator.drain.qpw import qpw_strategy
from coordinator.drain.rcu_swap import drain_rcu_swap
from coordinator.drain.record import STRATEGIES, STRATEGY_NAMES, TRIGGER_NAMES, DrainRecord
from coordinator.drain.remote import drain_remote
from coordinator.drain.strategy import DrainStrategy
from coordinator.drain.wall import WallDriver, ZoneFrees
from coordinator.drain.workqueue import drain_workqueue
from coordinator.membership import Member, Membership
from node.api.errors import InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.faults import Faults

DRAIN_BY_STRATEGY: dict[pb.Strategy, DrainStrategy] = {
    pb.STRATEGY_WORKQUEUE: drain_workqueue,
    pb.STRATEGY_REMOTE: drain_remote,
    pb.STRATEGY_RCU_SWAP: drain_rcu_swap,
    pb.STRATEGY_QPW: qpw_strategy(drain_workqueue, drain_remote),
}


class Drainer:
    def __init__(
        self,
        membership: Membership,
        zone_service: ZoneFrees,
        default_strategy: pb.Strategy,
        clock: Callable[[], float],
        lease_ms: int = 2000,
        flush_timeout_ms: int = 10_000,
        keep: int = 100_000,
        on_record: Callable[[DrainRecord], object] | None = None,
        faults: Faults | None = None,
        gp_timeout_ms: int = 2000,
    ) -> None:
        if default_strategy not in STRATEGY_NAMES:
            raise InvalidArgument(f"unknown strategy {default_strategy}")
        self.membership = membership
        self.zone = zone_service
        self.default_strategy = default_strategy
        self.clock = clock
        self.lease_ms = lease_ms
        self.flush_timeout_ms = flush_timeout_ms
        self.gp_timeout_ms = gp_timeout_ms  # rcu-swap: bound on one CPU's grace period
        self.control = Control(membership, clock)
        self.driver = WallDriver(self.control, zone_service, faults)
        self.pcpu_drain_mutex = asyncio.Lock()
        self.history: collections.deque[DrainRecord] = collections.deque(maxlen=keep)
        self.on_record = on_record  # called with every finished DrainRecord (metrics), once per drain

    def resolve(self, strategy: pb.Strategy, trigger: pb.Trigger) -> tuple[pb.Strategy, pb.Trigger]:
        """Validate a request's strategy and trigger, filling in defaults."""
        if strategy == pb.STRATEGY_UNSPECIFIED:
            strategy = self.default_strategy
        if strategy not in STRATEGY_NAMES:
            raise InvalidArgument(
                f"unknown strategy {strategy}; known: " + ", ".join(f"{v} ({k})" for k, v in STRATEGIES.items())
            )
        if trigger == pb.TRIGGER_UNSPECIFIED:
            trigger = pb.TRIGGER_DEMAND
        if trigger not in TRIGGER_NAMES:
            raise InvalidArgument(f"unknown trigger {trigger}")
        return strategy, trigger

    async def drain_all_pages(
        self,
        strategy: pb.Strategy = pb.STRATEGY_UNSPECIFIED,
        force_all_cpus: bool = False,
        trigger: pb.Trigger = pb.TRIGGER_DEMAND,
    ) -> DrainRecord:
        strategy, trigger = self.resolve(strategy, trigger)
        record = DrainRecord(pb.DrainAllReply.DONE, strategy, trigger, self.clock())
        if trigger == pb.TRIGGER_RECLAIM and self.pcpu_drain_mutex.locked():
            record.status = pb.DrainAllReply.SKIPPED
            return self.record(record)
        async with self.pcpu_drain_mutex:
            t0 = self.clock()
            record.mutex_wait_s = t0 - record.started_at
            marked = [m for m in self.membership.online() if force_all_cpus or m.pcp_count]
            record.cpus_marked = [m.cpu for m in marked]
            record.settle(await self.driver.run(DRAIN_BY_STRATEGY[strategy](self, marked)), self.clock(), t0)
        return self.record(record)

    async def drain_pages(self, member: Member, trigger: pb.Trigger) -> DrainRecord:
        """drain_pages(cpu) from here, for page_alloc_cpu_dead (CPU hotplug). Caller holds
        pcpu_drain_mutex."""
        rcu = self.default_strategy == pb.STRATEGY_RCU_SWAP
        strategy = pb.STRATEGY_RCU_SWAP if rcu else pb.STRATEGY_REMOTE
        record = DrainRecord(pb.DrainAllReply.DONE, strategy, trigger, self.clock())
        record.cpus_marked = [member.cpu]
        record.settle(
            await self.driver.run(DRAIN_BY_STRATEGY[strategy](self, [member])), self.clock(), record.started_at
        )
        return self.record(record)

    def record(self, record: DrainRecord) -> DrainRecord:
        """Keep a finished drain in the history and hand it to the metrics."""
        self.history.append(record)
        if self.on_record is not None:
            self.on_record(record)
        return record
