"""Drainer: drain_all_pages and drain_pages in the coordinator process.

The rules (pcpu_drain_mutex, cpus_with_pcps, the strategies, the record) are
coordinator.drain.drain_all's; this class holds what the process keeps between drains
(pcpu_drain_mutex as an asyncio.Lock, which the audit, the reaper and CPU hotplug take
too, and the history the metrics and DrainHistory read) and runs each drain on the wall
driver (coordinator.drain.wall).
"""

import asyncio
import collections
from collections.abc import Callable

from coordinator.drain import drain_all
from coordinator.drain.control import Control
from coordinator.drain.effects import Program
from coordinator.drain.record import STRATEGY_NAMES, DrainRecord
from coordinator.drain.strategy import FLUSH_TIMEOUT_MS, GP_TIMEOUT_MS, LEASE_MS
from coordinator.drain.wall import WallDriver, ZoneFrees
from coordinator.membership import Member, Membership
from node.api.errors import InvalidArgument
from node.api.v1 import pcpsim_pb2 as pb
from node.mm.profile import KernelProfile
from node.shared.faults import Faults


class Drainer:
    def __init__(
        self,
        membership: Membership,
        zone_service: ZoneFrees,
        default_strategy: pb.Strategy,
        clock: Callable[[], float],
        lease_ms: int = LEASE_MS,
        flush_timeout_ms: int = FLUSH_TIMEOUT_MS,
        keep: int = 100_000,
        on_record: Callable[[DrainRecord], object] | None = None,
        faults: Faults | None = None,
        gp_timeout_ms: int = GP_TIMEOUT_MS,
        *,
        profile: KernelProfile,
        epoch: int = 0,
    ) -> None:
        if default_strategy not in STRATEGY_NAMES:
            raise InvalidArgument(f"unknown strategy {default_strategy}")
        self.membership = membership
        self.zone = zone_service
        self.default_strategy = default_strategy
        self.profile = profile  # the CPUs' kernel: which strategies they can be drained by (drain_all.unrunnable)
        self.clock = clock
        self.lease_ms = lease_ms
        self.flush_timeout_ms = flush_timeout_ms
        self.gp_timeout_ms = gp_timeout_ms  # rcu-swap: bound on one CPU's grace period
        self.control = Control(membership, clock, epoch)  # its epoch names its requests (abandons)
        self.driver = WallDriver(self.control, zone_service, faults)
        self.pcpu_drain_mutex = asyncio.Lock()
        self.history: collections.deque[DrainRecord] = collections.deque(maxlen=keep)
        self.on_record = on_record  # called with every finished DrainRecord (metrics), once per drain
        self._running: set[asyncio.Future[DrainRecord]] = set()  # drains under way (the loop keeps weak references)

    def resolve(self, strategy: pb.Strategy, trigger: pb.Trigger) -> tuple[pb.Strategy, pb.Trigger]:
        """Validate a request's strategy and trigger, filling in defaults."""
        return drain_all.resolve(self.default_strategy, strategy, trigger, self.profile)

    async def drain_all_pages(
        self,
        strategy: pb.Strategy = pb.STRATEGY_UNSPECIFIED,
        force_all_cpus: bool = False,
        trigger: pb.Trigger = pb.TRIGGER_DEMAND,
    ) -> DrainRecord:
        strategy, trigger = self.resolve(strategy, trigger)
        program = drain_all.drain_all_pages(self, self.pcpu_drain_mutex, strategy, force_all_cpus, trigger)
        # A drain runs to its end whoever waits for it, as the kernel's does: pages a node has committed
        # are no longer its own, and only the rest of the program frees them into the zone. A caller that
        # goes away (its RPC cancelled) must not cancel that. Until 2026-12-07 it did: sweep seed 4508
        # under the wall engine lost 71 pages, cpu4's among them, committed by an rcu-swap drain whose
        # coordinator was stopped before the free, and whose DrainAllPages call broke meanwhile.
        drain = asyncio.ensure_future(self._run(program))
        self._running.add(drain)
        drain.add_done_callback(self._running.discard)
        return await asyncio.shield(drain)

    async def _run(self, program: Program[DrainRecord]) -> DrainRecord:
        return self.record(await self.driver.run(program))

    async def drain_pages(self, member: Member, trigger: pb.Trigger) -> DrainRecord:
        """drain_pages(cpu) from here, for page_alloc_cpu_dead (CPU hotplug). Caller holds
        pcpu_drain_mutex."""
        return self.record(await self.driver.run(drain_all.drain_pages(self, self.default_strategy, member, trigger)))

    def record(self, record: DrainRecord) -> DrainRecord:
        """Keep a finished drain in the history and hand it to the metrics."""
        self.history.append(record)
        if self.on_record is not None:
            self.on_record(record)
        return record
