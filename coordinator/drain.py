"""drain_all_pages: empty every CPU's pcp lists into the zone, by one of two strategies.

Models __drain_all_pages() of mm/page_alloc.c:
- pcpu_drain_mutex: a global drain (direct reclaim, zone == NULL in the kernel) that
  finds a drain running returns at once (SKIPPED); a zone-specific caller (on demand,
  like alloc_contig_range or memory offline) waits for the mutex.
- cpus_with_pcps: built from each online CPU's last reported pcp count, a racy read
  as in the kernel; force_all_cpus marks every online CPU.
- STRATEGY_WORKQUEUE (up to v5.19): queue_work_on(cpu, mm_percpu_wq,
  drain_local_pages_wq) on every marked CPU, then flush_work on each in turn. The work
  runs on the target CPU's thread; the caller waits for every CPU.
- STRATEGY_REMOTE (v6.0+): for each marked CPU in turn, drain_pages_zone(cpu, zone)
  from here: take that CPU's pcp lock and its pages (a lease with a fencing token),
  commit (the node checks the token still holds the lock and lets the pages go, which
  also releases the lock), then free the pages into the zone under zone->lock. The
  target CPU runs nothing. node.remote_lock explains why this order is safe. A commit
  whose reply is lost is asked again until the node answers or is no longer a member
  (then page_alloc_cpu_dead takes the pages back, committed or not), so every drain
  resolves within the lease plus the dead timeout.
- STRATEGY_RCU_SWAP (Saenz Julienne's series, not merged): coordinator.drain_rcu.
Each drain is recorded (status, per-CPU pages, duration and wait) for reports.
"""

import asyncio
import collections
import os
import signal
from dataclasses import dataclass, field

import grpc

from node.api import validate
from node.api.errors import InvalidArgument
from coordinator.membership import CONTROL_TIMEOUT_S
from node.api.v1 import pcpsim_pb2 as pb
from node.faults import InjectedRpcError
from node.reply_stream import StreamBroken
from coordinator import drain_rcu

COMMIT_RETRY_S = 0.05
STRATEGIES = {"workqueue": pb.STRATEGY_WORKQUEUE, "remote": pb.STRATEGY_REMOTE, "rcu-swap": pb.STRATEGY_RCU_SWAP}
STRATEGY_NAMES = {v: k for k, v in STRATEGIES.items()}
TRIGGER_NAMES = {pb.TRIGGER_DEMAND: "demand", pb.TRIGGER_RECLAIM: "reclaim",
                 pb.TRIGGER_ALLOC_CONTIG: "alloc_contig", pb.TRIGGER_MEMORY_OFFLINE: "memory_offline",
                 pb.TRIGGER_CPU_HOTPLUG: "cpu_hotplug"}


@dataclass
class CpuDrain:
    cpu: int
    pages: int = 0
    duration_s: float = 0.0
    wait_s: float = 0.0
    ok: bool = True
    error: str = ""
    grace_period_s: float = 0.0  # rcu-swap only


@dataclass
class DrainRecord:
    status: int
    strategy: int
    trigger: int
    started_at: float
    duration_s: float = 0.0
    cpus_marked: list = field(default_factory=list)
    cpus: list = field(default_factory=list)
    mutex_wait_s: float = 0.0

    def to_pb(self) -> pb.DrainAllReply:
        return pb.DrainAllReply(
            status=self.status, strategy=self.strategy, trigger=self.trigger,
            duration_s=self.duration_s, cpus_marked=self.cpus_marked, started_at=self.started_at,
            grace_period_s=max((c.grace_period_s for c in self.cpus), default=0.0), mutex_wait_s=self.mutex_wait_s,
            cpus=[pb.DrainCpuResult(cpu=c.cpu, pages=c.pages, duration_s=c.duration_s, wait_s=c.wait_s,
                                    ok=c.ok, error=c.error, grace_period_s=c.grace_period_s)
                  for c in self.cpus])


class Drainer:
    def __init__(self, membership, zone_service, default_strategy: int, clock,
                 lease_ms: int = 2000, flush_timeout_ms: int = 10_000, keep: int = 100_000,
                 on_record=None, faults=None, gp_timeout_ms: int = 2000):
        if default_strategy not in STRATEGY_NAMES:
            raise InvalidArgument(f"unknown strategy {default_strategy}")
        self.membership = membership
        self.zone = zone_service
        self.default_strategy = default_strategy
        self.clock = clock
        self.lease_ms = lease_ms
        self.flush_timeout_ms = flush_timeout_ms
        self.gp_timeout_ms = gp_timeout_ms  # rcu-swap: bound on one CPU's grace period
        self.pcpu_drain_mutex = asyncio.Lock()
        self.history = collections.deque(maxlen=keep)
        self.on_record = on_record  # called with every finished DrainRecord (metrics), once per drain
        self.faults = faults  # node.faults.Faults: OUT faults, and the stop-after-grant trap
        self.reaper = None    # coordinator.hotplug.Reaper: set once both exist

    def resolve(self, strategy: int, trigger: int) -> tuple[int, int]:
        """Validate a request's strategy and trigger, filling in defaults."""
        if strategy == pb.STRATEGY_UNSPECIFIED:
            strategy = self.default_strategy
        if strategy not in STRATEGY_NAMES:
            raise InvalidArgument(f"unknown strategy {strategy}; known: "
                                  + ", ".join(f"{v} ({k})" for k, v in STRATEGIES.items()))
        if trigger == pb.TRIGGER_UNSPECIFIED:
            trigger = pb.TRIGGER_DEMAND
        if trigger not in TRIGGER_NAMES:
            raise InvalidArgument(f"unknown trigger {trigger}")
        return strategy, trigger

    async def drain_all_pages(self, strategy: int = pb.STRATEGY_UNSPECIFIED,
                              force_all_cpus: bool = False,
                              trigger: int = pb.TRIGGER_DEMAND) -> DrainRecord:
        strategy, trigger = self.resolve(strategy, trigger)
        record = DrainRecord(pb.DrainAllReply.DONE, strategy, trigger, self.clock())
        if trigger == pb.TRIGGER_RECLAIM and self.pcpu_drain_mutex.locked():
            record.status = pb.DrainAllReply.SKIPPED
            return self._finish(record)
        async with self.pcpu_drain_mutex:
            t0 = self.clock()
            record.mutex_wait_s = t0 - record.started_at
            marked = [m for m in self.membership.online() if force_all_cpus or m.pcp_count]
            record.cpus_marked = [m.cpu for m in marked]
            if strategy == pb.STRATEGY_WORKQUEUE:
                record.cpus = await self._drain_workqueue(marked)
            elif strategy == pb.STRATEGY_RCU_SWAP:
                record.cpus = await drain_rcu.drain_rcu_swap(self, marked)
            else:
                record.cpus = [await self._drain_pages_zone(m) for m in marked]
            record.duration_s = self.clock() - t0
            if not all(c.ok for c in record.cpus):
                record.status = pb.DrainAllReply.FAILED
        return self._finish(record)

    def _finish(self, record: DrainRecord) -> DrainRecord:
        self.history.append(record)
        if self.on_record is not None:
            self.on_record(record)
        return record

    async def _drain_workqueue(self, marked) -> list[CpuDrain]:
        t0 = self.clock()
        queued = await asyncio.gather(*(self._queue(m) for m in marked), return_exceptions=True)
        self._stop_here_if_trapped()
        results = []
        for member, work in zip(marked, queued):
            result = CpuDrain(member.cpu)
            if isinstance(work, BaseException):
                result.ok, result.error = False, _describe(work)
            else:
                try:
                    await self._outbound("FlushWork", member.cpu, self.flush_timeout_ms / 1000.0)
                    reply = await member.stub.FlushWork(
                        pb.FlushWorkRequest(cpu=member.cpu, work_id=work.work_id,
                                            timeout_ms=self.flush_timeout_ms),
                        timeout=self.flush_timeout_ms / 1000.0 + 2.0)
                    result.pages, result.wait_s = reply.pages, reply.queue_delay_s
                    result.ok = reply.done
                    if not reply.done:
                        result.error = f"flush timed out after {self.flush_timeout_ms} ms"
                except (grpc.aio.AioRpcError, InjectedRpcError) as err:
                    result.ok, result.error = False, _describe(err)
            result.duration_s = self.clock() - t0
            results.append(result)
        return results

    async def _queue(self, member):
        await self._outbound("QueueWork", member.cpu, 2.0)
        return await member.stub.QueueWork(
            pb.QueueWorkRequest(cpu=member.cpu, kind=pb.WORK_DRAIN_LOCAL_PAGES), timeout=2.0)

    async def _outbound(self, method: str, cpu: int, timeout: float) -> None:
        if self.faults is not None:
            await self.faults.outbound(method, cpu, timeout)

    async def _control(self, member, timeout: float, **op) -> pb.PcpControlReply:
        """One request on the member's PcpControl stream; a refusal raises NodeRefused."""
        await self._outbound(f"PcpControl.{next(iter(op))}", member.cpu, timeout)
        reply = await member.control.request(pb.PcpControlRequest(**op), timeout)
        if reply.code:
            raise NodeRefused(f"{reply.code}: {reply.error}")
        return reply

    async def _drain_pages_zone(self, member) -> CpuDrain:
        """drain_pages_zone(cpu, zone) run from here against a remote CPU's pcp, on the
        member's control stream: lock and take, commit, free into the zone."""
        result = CpuDrain(member.cpu)
        t0 = self.clock()
        lease_s = self.lease_ms / 1000.0
        try:
            grant = (await self._control(member, lease_s, lock_drain=pb.PcpLockDrainRequest(
                cpu=member.cpu, lease_ms=self.lease_ms))).lock_drain
            result.wait_s = grant.lock_wait_s
            if grant.token:
                self._stop_here_if_trapped()
                pages = validate.page_list(grant.pages)
                await self._commit(member, unlock=pb.PcpUnlockRequest(cpu=member.cpu, token=grant.token,
                                                                      commit=True))
                await self.zone.locked(self.zone.free_pages, member.cpu, pages,
                                       f"drain-cpu{member.cpu}-{member.incarnation}-{grant.token}")
                result.pages = sum(1 << order for _, order, _ in pages)
        except Exception as err:  # the node or the zone refused, or the stream broke
            result.ok, result.error = False, _describe(err)
        result.duration_s = self.clock() - t0
        return result

    async def _commit(self, member, **op) -> None:
        """Commit (`op`: unlock= a PcpUnlockRequest, or rcu_release= an RcuReleaseRequest, with
        commit=True), asking again while the answer is lost. A node that cannot answer within the
        dead timeout is declared dead here and now (this drain holds pcpu_drain_mutex, which
        the reaper would need): page_alloc_cpu_dead then takes back every page the zone
        records for it, whether or not it let these go, and it discards them all."""
        give_up = self.clock() + self.membership.dead_timeout
        while True:
            timeout = max(0.05, min(CONTROL_TIMEOUT_S, give_up - self.clock()))
            try:
                await self._control(member, timeout, **op)
                return
            except (StreamBroken, InjectedRpcError) as err:
                if not self.membership.is_current(member):
                    raise NodeRefused(f"cpu {member.cpu} was replaced or declared dead mid-drain") from None
                if self.clock() >= give_up:
                    await self.reaper.kill(member)
                    raise NodeRefused(f"cpu {member.cpu} did not answer a commit within the dead timeout "
                                      f"({_describe(err)}): declared dead") from None
                await asyncio.sleep(COMMIT_RETRY_S)

    def _stop_here_if_trapped(self) -> None:
        """The chaos trap: this process SIGSTOPs itself mid-drain (holding a node's pcp lock,
        or with work queued and not yet flushed); the nemesis SIGCONTs it later."""
        if self.faults is not None and self.faults.stop_mid_drain:
            self.faults.stop_mid_drain = False
            os.kill(os.getpid(), signal.SIGSTOP)


class NodeRefused(Exception):
    pass


def _describe(err: BaseException) -> str:
    if isinstance(err, (grpc.aio.AioRpcError, InjectedRpcError)):
        return f"{err.code().name}: {err.details()}"
    return f"{type(err).__name__}: {err}"
