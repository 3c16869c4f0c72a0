"""The drainer's side of a node's PcpControl stream: one request, a commit that is asked
again while its answer is lost, outbound faults, and the chaos trap that stops this process
mid-drain. Every strategy that takes a remote CPU's pages (remote, rcu-swap) goes through it."""

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Protocol

import grpc

from coordinator.membership import CONTROL_TIMEOUT_S, Member, Membership
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.faults import Faults, InjectedRpcError
from node.shared.reply_stream import StreamBroken

COMMIT_RETRY_S = 0.05


class MemberReaper(Protocol):
    """coordinator.hotplug.Reaper as a commit uses it: declare a member dead and take its pages back."""

    async def kill(self, member: Member) -> int: ...


class NodeRefused(Exception):
    """The node answered a control request with an error code."""


def describe(err: BaseException) -> str:
    """One line for a drain record: the status and details of an RPC error, else the exception."""
    if isinstance(err, (grpc.aio.AioRpcError, InjectedRpcError)):
        return f"{err.code().name}: {err.details()}"
    return f"{type(err).__name__}: {err}"


class Control:
    def __init__(self, membership: Membership, clock: Callable[[], float], faults: Faults | None = None) -> None:
        self.membership = membership
        self.clock = clock
        self.faults = faults  # OUT faults, and the stop-after-grant trap
        self.reaper: MemberReaper | None = None  # set once both exist

    async def outbound(self, method: str, cpu: int, timeout: float) -> None:
        if self.faults is not None:
            await self.faults.outbound(method, cpu, timeout)

    async def request(self, member: Member, timeout: float, message: pb.PcpControlRequest) -> pb.PcpControlReply:
        """One request on the member's PcpControl stream; a refusal raises NodeRefused."""
        await self.outbound(f"PcpControl.{message.WhichOneof('op')}", member.cpu, timeout)
        stream = member.control
        assert stream is not None, "registration gives every member its control stream"
        reply: pb.PcpControlReply = await stream.request(message, timeout)
        if reply.code:
            raise NodeRefused(f"{reply.code}: {reply.error}")
        return reply

    async def commit(self, member: Member, message: pb.PcpControlRequest) -> None:
        """Commit (`message`: unlock= a PcpUnlockRequest, or rcu_release= an RcuReleaseRequest, with
        commit=True), asking again while the answer is lost. A node that cannot answer within the
        dead timeout is declared dead here and now (this drain holds pcpu_drain_mutex, which
        the reaper would need): page_alloc_cpu_dead then takes back every page the zone
        records for it, whether or not it let these go, and it discards them all."""
        give_up = self.clock() + self.membership.dead_timeout
        while True:
            timeout = max(0.05, min(CONTROL_TIMEOUT_S, give_up - self.clock()))
            try:
                await self.request(member, timeout, message)
                return
            except (StreamBroken, InjectedRpcError) as err:
                if not self.membership.is_current(member):
                    raise NodeRefused(f"cpu {member.cpu} was replaced or declared dead mid-drain") from None
                if self.clock() >= give_up:
                    assert self.reaper is not None, "the coordinator sets the reaper before it serves drains"
                    await self.reaper.kill(member)
                    raise NodeRefused(
                        f"cpu {member.cpu} did not answer a commit within the dead timeout "
                        f"({describe(err)}): declared dead"
                    ) from None
                await asyncio.sleep(COMMIT_RETRY_S)

    def stop_here_if_trapped(self) -> None:
        """The chaos trap: this process SIGSTOPs itself mid-drain (holding a node's pcp lock,
        or with work queued and not yet flushed); the nemesis SIGCONTs it later."""
        if self.faults is not None and self.faults.stop_mid_drain:
            self.faults.stop_mid_drain = False
            os.kill(os.getpid(), signal.SIGSTOP)
