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
"""

import asyncio
import contextlib
import logging
import time

import grpc

from node.api.v1 import pcpsim_pb2 as pb
from node.api.validate import to_page_list
from node.cpu import MEMBERSHIP
from node.shared.faults import InjectedRpcError

PARK_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, stub, runtime, request: pb.RegisterRequest, faults, clock=time.monotonic):
        self.stub = stub
        self.runtime = runtime
        self.request = request  # the first registration; later ones differ in incarnation/resume
        self.faults = faults
        self.clock = clock
        self.lease = 0.0
        self.paced = 0.0  # the coordinator's heartbeat interval for this cluster size
        self.recovering = False

    def registered(self, reply: pb.RegisterReply, sent_at: float) -> None:
        self.lease = reply.lease_ms / 1000.0
        self.paced = reply.heartbeat_interval_ms / 1000.0
        self.runtime.lease_until = sent_at + self.lease
        self.runtime.set_pageset(reply.high, reply.batch)
        self.recovering = reply.recovering

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
                timeout=1.0,
            )
        except (grpc.aio.AioRpcError, InjectedRpcError) as err:
            if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
                log.warning("%s: discarding every page and registering afresh", err.details())
                await self.rejoin(resume=False)
            elif err.code() == grpc.StatusCode.NOT_FOUND:
                log.warning("%s: the coordinator restarted; resuming with this CPU's pages", err.details())
                await self.rejoin(resume=True)
            # Otherwise unreachable: the lease runs out by itself; keep trying.
            return
        rt.lease_until = sent_at + self.lease
        self.paced = reply.heartbeat_interval_ms / 1000.0
        rt.zone.free_pages = reply.free_pages
        rt.zone.reclaim_active = reply.reclaim_active
        rt.set_pageset(reply.high, reply.batch)
        if self.recovering and not reply.recovering:
            self.recovering = False
            await self._set_paused(False)

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.heartbeat_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(interval, self.paced))

    async def rejoin(self, resume: bool) -> None:
        """Park the CPU, then register again: with every page held (resume) or with none."""
        rt = self.runtime
        await self._park()
        if not resume:
            rt.discard()
        holdings = rt.holdings() if resume else []
        request = pb.RegisterRequest()
        request.CopyFrom(self.request)
        request.incarnation = rt.incarnation
        request.resume = resume
        request.holdings.CopyFrom(to_page_list(pb.PageList, holdings))
        sent_at = self.clock()
        try:
            reply = await self.call("Register", request, timeout=2.0)
        except (grpc.aio.AioRpcError, InjectedRpcError) as err:
            log.warning("registering again failed (%s); will retry", err.code().name)
            return  # the CPU stays parked; the next heartbeat tries again
        if resume and not reply.resumed:
            log.warning("the coordinator refused this CPU's pages (its recovery is over): discarding them")
            rt.discard()
            await self.rejoin(resume=False)
            return
        self.registered(reply, sent_at)
        log.info(
            "registered again (%s, incarnation %s, high %d batch %d)",
            "resumed" if resume else "afresh",
            rt.incarnation,
            reply.high,
            reply.batch,
        )
        if not self.recovering:
            await self._set_paused(False)

    async def _park(self) -> None:
        while not await self._set_paused(True):
            log.warning("the CPU did not reach a safe point; retrying")

    async def _set_paused(self, paused: bool) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            None, self.runtime.cpu.set_paused, paused, PARK_TIMEOUT_S, MEMBERSHIP
        )
