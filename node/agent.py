"""The node's side of membership: heartbeats, the lease, and coming back after a failure.

Each heartbeat the coordinator acknowledges renews the lease: from the moment that
heartbeat was *sent*, the node may use its pcp for `lease` seconds (the coordinator
declares it dead only after `dead` > `lease` without one: coordinator.membership).
The reply also carries pcp->high and batch, recomputed as CPUs come and go, and the
interval to beat at: the node beats at its own interval or the coordinator's, whichever
is longer (the coordinator paces N nodes to a budget: coordinator.membership).

What an answer tells the node, and what it does:
- FAILED_PRECONDITION: this CPU was declared dead, or another process replaced it.
  Its pages went back to the zone, so it parks its CPU at a safe point, discards every
  page, takes a new incarnation and registers afresh (CPU hotplug: offline, online).
- NOT_FOUND: the coordinator does not know this CPU: it restarted and lost its state.
  The node parks its CPU and registers again with `resume` and every page it holds,
  from which the new coordinator rebuilds its zone. If the coordinator refuses them
  (its recovery window has closed), the node discards them as above.
- no answer: the coordinator is unreachable; the lease runs out on its own and the
  allocator stops (node.alloc); heartbeats go on until one is answered.
While the coordinator recovers, the CPU stays parked: no zone operation could succeed.

A registration whose answer is lost may have been applied all the same: the coordinator
then knows this incarnation, its next heartbeat succeeds, and nothing else would unpark
the CPU. Register is idempotent for one incarnation (the coordinator answers a retry as it
answered the first, `resumed` included: coordinator.registration), so it is sent again,
unchanged, until it is answered. Until then the outcome is in doubt and the CPU stays
parked: if a registration with `resume` was refused but its answer lost, running would
use pages the zone never took back. Every heartbeat answered while nothing is in doubt
and the coordinator is not recovering lets the CPU run.
The lease is read on CLOCK_BOOTTIME (node.shared.timebase.lease_clock), which counts on
while the machine is suspended, as the coordinator's does.

The decisions are node.agent_rule's; this module is their wall driver (asyncio, gRPC, the CPU
parked from an executor thread), node.virtual.agent the virtual one.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc

from node import agent_rule
from node.agent_rule import HEARTBEAT_TIMEOUT_S, REGISTER_BACKOFF_S, REGISTER_TIMEOUT_S, AgentRule, Answer
from node.api.v1 import pcpsim_pb2 as pb
from node.api.validate import to_page_list
from node.cpu import MEMBERSHIP
from node.shared.faults import InjectedRpcError
from node.shared.timebase import lease_clock

PARK_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


async def register_until_answered(
    send: Callable[[pb.RegisterRequest], Awaitable[pb.RegisterReply]],
    request: pb.RegisterRequest,
    clock: Callable[[], float],
    stop: asyncio.Event,
    give_up: Callable[[], bool],
) -> tuple[float, pb.RegisterReply]:
    """Send `request` until the coordinator answers it, the same request each time (one
    incarnation), waiting longer between attempts (REGISTER_BACKOFF_S). Returns when it was
    sent (on `clock`: the lease runs from there) and the reply. Raises the error of an
    attempt the coordinator refused, or of the last attempt once `stop` is set (shutdown) or
    `give_up()` is true."""
    wait, longest = REGISTER_BACKOFF_S
    while True:
        sent_at = clock()
        try:
            return sent_at, await send(request)
        except (grpc.aio.AioRpcError, InjectedRpcError) as err:
            if not agent_rule.ask_again(err.code().name, stop.is_set(), give_up()):
                raise
            log.warning("registering: %s (%s); asking again", err.code().name, err.details())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        wait = agent_rule.backoff(wait, longest)


class Agent(AgentRule):
    def __init__(
        self,
        stub,
        runtime,
        request: pb.RegisterRequest,
        faults,
        clock: Callable[[], float] = lease_clock,
        register_once: bool = False,
    ):
        """`clock` reads the lease (runtime.fenced compares against the same clock).
        `register_once` is the test-only old behaviour (--unsafe-register-once): a
        registration whose answer is lost is not asked again, and the CPU stays parked."""
        super().__init__(clock)
        self.stub = stub
        self.runtime = runtime
        self.request = request  # the first registration; later ones differ in incarnation/resume
        self.faults = faults
        self.register_once = register_once
        self.stop = asyncio.Event()  # set on shutdown: no more attempts

    def registered(self, reply: pb.RegisterReply, sent_at: float) -> None:
        self.runtime.lease_until = self.take_lease(Answer.of(reply), sent_at)
        self.runtime.set_pageset(reply.high, reply.batch, reply.high_max)

    async def call(self, method: str, request, timeout: float):
        await self.faults.outbound(method, -1, timeout)
        return self.runtime.epoch.admit(method, await getattr(self.stub, method)(request, timeout=timeout))

    async def heartbeat_once(self) -> None:
        rt = self.runtime
        sent_at = self.clock()
        try:
            reply = await self.call(
                "Heartbeat",
                pb.HeartbeatRequest(cpu=rt.cpu_id, pcp_count=rt.pcp.count, incarnation=rt.incarnation),
                timeout=HEARTBEAT_TIMEOUT_S,
            )
        except (grpc.aio.AioRpcError, InjectedRpcError) as err:
            resume = agent_rule.rejoin_for(err.code().name)
            if resume is False:
                log.warning("%s: discarding every page and registering afresh", err.details())
                await self.rejoin(resume=False)
            elif resume:
                log.warning("%s: the coordinator restarted; resuming with this CPU's pages", err.details())
                await self.rejoin(resume=True)
            # Otherwise unreachable: the lease runs out by itself; keep trying.
            return
        unpark = self.beat_answered(Answer.of(reply), sent_at, rt.cpu.held_paused_by(MEMBERSHIP))
        rt.lease_until = self.lease_until
        rt.zone.free_pages = reply.free_pages
        rt.zone.reclaim_active = reply.reclaim_active
        rt.zone.below_high = reply.below_high
        rt.set_pageset(reply.high, reply.batch, reply.high_max)
        if unpark:
            await self._set_paused(False)

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        self.stop = stop
        while not stop.is_set():
            await self.heartbeat_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.next_beat(interval))

    async def rejoin(self, resume: bool) -> None:
        """Park the CPU, then register again: with every page held (resume) or with none."""
        rt = self.runtime
        await self._park()
        if not resume:
            rt.discard()
        rt.epoch.resuming = resume  # before the holdings are read: nothing they report may leave now
        holdings = rt.holdings() if resume else []
        request = pb.RegisterRequest()
        request.CopyFrom(self.request)
        request.incarnation = rt.incarnation
        request.resume = resume
        request.holdings.CopyFrom(to_page_list(pb.PageList, holdings))
        request.holdings_epoch = rt.epoch.registered if resume else 0  # the coordinator they are from
        self.register_sent()
        try:
            sent_at, reply = await register_until_answered(
                lambda r: self.call("Register", r, timeout=REGISTER_TIMEOUT_S),
                request,
                self.clock,
                self.stop,
                lambda: self.register_once,
            )
        except (grpc.aio.AioRpcError, InjectedRpcError) as err:
            self.register_failed(err.code().name)
            if not self.in_doubt:  # refused: the coordinator took none of the holdings
                rt.epoch.resuming = False
            log.warning("registering again failed (%s); the CPU stays parked", err.code().name)
            return  # the next heartbeat tells what the coordinator knows of this CPU
        runs = self.register_answered(resume, Answer.of(reply), sent_at)
        if runs is None:
            log.warning("the coordinator refused this CPU's pages (its recovery is over): discarding them")
            rt.discard()
            await self.rejoin(resume=False)
            return
        rt.lease_until = self.lease_until
        rt.set_pageset(reply.high, reply.batch, reply.high_max)
        log.info(
            "registered again (%s, incarnation %s, high %d batch %d)",
            "resumed" if resume else "afresh",
            rt.incarnation,
            reply.high,
            reply.batch,
        )
        if runs:
            await self._set_paused(False)

    async def _park(self) -> None:
        while not await self._set_paused(True):
            log.warning("the CPU did not reach a safe point; retrying")

    async def _set_paused(self, paused: bool) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            None, self.runtime.cpu.set_paused, paused, PARK_TIMEOUT_S, MEMBERSHIP
        )
