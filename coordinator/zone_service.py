"""The zone as a service: the wall driver of the zone's rules (node.mm.zone_rules), behind zone->lock.

The rules (ownership records, idempotency slots, refusal at the min watermark, ZONE_RECLAIM_ACTIVE,
cpu_dead, claim, ranges, the transfer log) are node.mm.zone_rules.ZoneRules, which the virtual driver
(node.virtual.zone) calls too; each operation returns the hold of zone->lock it costs in kernel
microseconds. This module does the waiting: zone->lock is one worker thread, every zone operation
runs on it, in arrival order, and holds it for that cost scaled to wall time (a blocking sleep), so
CPUs that refill, free or drain at the same time queue for the lock as they do in the kernel. The
operations' own Python work and the sleeps' overshoot are paid back from the next sleeps, so the
lock is busy for the modeled time on average, not for the model plus the host's. A hold
shorter than SLEEP_MIN_S is not slept: the OS would oversleep it several times over (time.sleep of
any tiny value takes ~0.1 ms here). When the time scale makes every hold that short (the benchmarks'
--time-scale 1e-6), an operation is only its own Python work, so one that finds zone->lock free and
nothing queued runs on the event loop at once instead of paying a hop to the worker thread and back.
A refusal of the rules (Refused) is a FailedPrecondition here, which the servicer answers as such.

Why the idempotency slots need no window of past keys on this driver: a retry travels on a new zone
stream opened after the old one was cancelled, and gRPC cancels a cancelled stream's handler before
it reaches zone->lock or, once queued there, it runs first; so a sender's retry is always of the last
request its slot saw.
"""

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from node.api.errors import FailedPrecondition
from node.api.validate import MAX_PAGES_PER_MESSAGE
from node.mm.constants import Page
from node.mm.zone import Zone
from node.mm.zone_rules import CMA, DRAIN, NODE, OFFLINE, OTHER, OWNER_KINDS, Held, Refused, ZoneReply, ZoneRules
from node.shared.timebase import CostModel

# The rules' names the coordinator's modules import from here.
__all__ = ["CMA", "DRAIN", "NODE", "OFFLINE", "OTHER", "OWNER_KINDS", "SLEEP_MIN_S", "ZoneReply", "ZoneService"]

SLEEP_MIN_S = 50e-6  # Linux's default timer slack: no sleep is shorter
R = TypeVar("R")


class ZoneService:
    def __init__(self, zone: Zone, cost: CostModel, sleep=time.sleep, transfer_log=None, clock=time.monotonic):
        """`transfer_log`: node.shared.transfer_log.TransferLog (--transfer-log): the ownership changes
        no node sees (the chaos checker's other half), or None. `sleep` and `clock` hold zone->lock and
        time its holds (a test passes fakes, so that no host time enters what it checks)."""
        self.rules = ZoneRules(zone, cost, transfer_log)
        self.zone = zone
        self.cost = cost
        self._sleep_fn = sleep
        self._now = clock
        self._lock = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="zone-lock")
        self._held_by = threading.Lock()  # whoever runs an operation: the worker thread or the loop
        self._queued = 0  # operations handed to the worker and not finished (touched on the loop only)
        self._inline = cost.zone_hold(MAX_PAGES_PER_MESSAGE) < SLEEP_MIN_S
        self.lock_hold_s = 0.0  # wall time zone->lock was held, all operations (for metrics)
        # The holds the rules returned, in wall time: lock_hold_s over it is what this driver adds
        # (a sleep's overshoot, the operation's own Python work).
        self.modeled_hold_s = 0.0
        # How much longer than modeled zone->lock has been held so far: each operation's Python work
        # and each sleep's overshoot. The next sleeps are shortened by it, so the lock's busy time
        # follows the cost model instead of the host (held 1.66-1.70x the model without it:
        # docs/engine.md). _op_start: when the operation under way took the lock (None outside one).
        self._overrun_s = 0.0
        self._op_start: float | None = None
        self._clock = threading.Lock()  # lock_hold_s and _op_start, read together by a queueing request
        self.lock_ops = 0

    def close(self) -> None:
        self._lock.shutdown(wait=False, cancel_futures=True)

    async def locked(self, fn, *args):
        """Run fn(*args) under zone->lock."""
        return (await self.waited(fn, *args))[0]

    async def waited(self, fn, *args):
        """Run fn(*args) under zone->lock: (its result, the seconds it queued for the lock). The wait is
        the time zone->lock was held by other operations while this one queued: what a CPU spins on
        zone->lock behind the CPUs ahead of it. The driver's own latency is not in it: the hop to the
        worker thread, and a thread that wakes late after the lock was released, are this driver's
        costs, not another CPU's hold (a node's latency task attributes the wait to zone->lock
        contention, node.tasks; counted, they made the waits of a compare's phases 1.33 to 1.50 times
        as long: docs/engine.md)."""
        contended = bool(self._queued) or self._held_by.locked()
        if self._inline and not contended and self._held_by.acquire(blocking=False):
            try:
                return self._run(fn, args), 0.0
            finally:
                self._held_by.release()
        self._queued += 1
        try:
            busy0 = self._busy_s()
            return await asyncio.get_running_loop().run_in_executor(self._lock, self._held, fn, args, busy0)
        finally:
            self._queued -= 1

    def _busy_s(self) -> float:
        """How long zone->lock has been held so far, the operation under way included."""
        with self._clock:
            start = self._op_start
            return self.lock_hold_s + (0.0 if start is None else self._now() - start)

    def _held(self, fn, args, busy0):
        with self._held_by:
            waited = self._busy_s() - busy0  # nothing runs now: the holds that ended since it arrived
            return self._run(fn, args), waited

    def _run(self, fn, args):
        # Under _held_by: the only writer of these counters.
        with self._clock:
            t0 = self._op_start = self._now()
        modeled0 = self.modeled_hold_s
        try:
            return fn(*args)
        finally:
            with self._clock:
                held = self._now() - t0
                self.lock_hold_s += held
                self._op_start = None
            self.lock_ops += 1
            self._overrun_s = max(0.0, self._overrun_s + held - (self.modeled_hold_s - modeled0))

    def _sleep(self, seconds: float) -> None:
        """Hold zone->lock for a modeled time, less the overrun so far and this operation's own work
        before it (see the module's note on SLEEP_MIN_S)."""
        if self._op_start is not None:
            seconds -= self._overrun_s + (self._now() - self._op_start)
        if seconds >= SLEEP_MIN_S:
            self._sleep_fn(seconds)

    # ------------------------------------------------ under zone->lock: the rules
    @property
    def owned(self) -> dict[int, tuple[int, int]]:
        return self.rules.owned

    @property
    def refused(self) -> int:
        return self.rules.refused

    def preallocate(self, pages: int) -> int:
        return self.rules.preallocate(pages)

    def rmqueue(
        self, cpu: int, order: int, migratetype: int, count: int, transfer_id: str, incarnation: str
    ) -> ZoneReply:
        return self._apply(self.rules.rmqueue, cpu, order, migratetype, count, transfer_id, incarnation)

    def free_pages(
        self, cpu: int, pages: list[Page], transfer_id: str, incarnation: str, stream: str, commit: bool = False
    ) -> ZoneReply:
        return self._apply(self.rules.free_pages, cpu, pages, transfer_id, incarnation, stream, commit)

    def cpu_dead(self, cpu: int) -> int:
        return self._apply(self.rules.cpu_dead, cpu)

    def claim(self, cpu: int, pages: list[Page]) -> int:
        try:
            return self.rules.claim(cpu, pages)
        except Refused as err:
            raise FailedPrecondition(str(err)) from None

    def take_range(self, owner: int, start: int, nr_pages: int) -> tuple:
        return self._apply(self.rules.take_range, owner, start, nr_pages)

    def release_range(self, start: int, nr_pages: int) -> int:
        return self._apply(self.rules.release_range, start, nr_pages)

    def pageblocks(self, known: int, epoch: int) -> tuple[int, int, bytes] | None:
        """The zone's pageblock migratetypes for a node whose copy has version `known`: (version,
        first pfn, one byte a pageblock), or None when that copy is current. The version is
        (epoch << 32) + the zone's type changes, so no copy from an earlier coordinator matches. Read
        off zone->lock, as get_pfnblock_migratetype() reads the bitmap: the version first, so the map
        sent is at least that new, and a change in between is sent again on the next reply."""
        version = (epoch << 32) + self.zone.pageblock_changes
        if known == version:
            return None
        return (version, *self.zone.pageblocks())

    def holder_of(self, pfn: int) -> int | None:
        return self.rules.holder_of(pfn)

    def holdings(self) -> dict[int, list]:
        return self.rules.holdings()

    def _apply(self, operation: Callable[..., Held[R]], *args) -> R:
        """operation(*args) of the rules, then zone->lock held for what it cost; a refusal, which
        changed nothing, is a FailedPrecondition."""
        try:
            value, hold_us = operation(*args)
        except Refused as err:
            raise FailedPrecondition(str(err)) from None
        hold = self.cost.wall(hold_us)
        self.modeled_hold_s += hold  # under zone->lock: the only writer
        self._sleep(hold)
        return value
