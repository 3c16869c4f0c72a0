"""The drainer's side of a node's PcpControl stream: one request, a commit that is asked
again while its answer is lost, outbound faults, and the chaos trap that stops this process
mid-drain. Every strategy that takes a remote CPU's pages (remote, rcu-swap) goes through it."""

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import grpc

from coordinator.membership import CONTROL_TIMEOUT_S, Member, Membership
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.faults import Faults, InjectedRpcError
from node.shared.reply_stream import StreamBroken

log = logging.getLogger(__name__)

COMMIT_RETRY_S = 0.05
# The shortest wait for one commit attempt's answer (a lease can be configured shorter).
MIN_ATTEMPT_S = 0.1
# A commit still unanswered this long while the node's heartbeats come is no lost message
# but a broken control stream: the drain then revokes the node's lease (see Control.commit).
# One control round trip's bound: the longest a healthy stream may take to answer.
REVOKE_AFTER_S = CONTROL_TIMEOUT_S
# How often a request waiting `until_lease_expires` looks at the member's lease.
LEASE_POLL_S = 0.05


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
        # TEST ONLY (--unsafe-declare-dead-on-lost-commit): the commit this replaced, which
        # declares a node dead when a commit goes unanswered for the dead timeout.
        self.declare_dead_on_lost_commit = False

    async def outbound(self, method: str, cpu: int, timeout: float) -> None:
        if self.faults is not None:
            await self.faults.outbound(method, cpu, timeout)

    async def request(
        self, member: Member, timeout: float, message: pb.PcpControlRequest, until_lease_expires: bool = False
    ) -> pb.PcpControlReply:
        """One request on the member's PcpControl stream; a refusal raises NodeRefused.
        `until_lease_expires`: stop waiting (StreamBroken) once the member's membership lease has
        provably run out, for a request nothing depends on yet (taking the lock or swapping the
        list sets: the node's grant lease gives back whatever it handed over). Waiting out the
        full bound instead (rcu-swap's is two grace periods and a round trip) would hold
        pcpu_drain_mutex past the dead timeout, and the reaper, which needs it, could not
        declare a partitioned CPU dead until it had come back."""
        await self.outbound(f"PcpControl.{message.WhichOneof('op')}", member.cpu, timeout)
        stream = member.control
        assert stream is not None, "registration gives every member its control stream"
        if until_lease_expires:
            reply = await self._until_lease_expires(member, stream.request(message, timeout))
        else:
            reply = await stream.request(message, timeout)
        if reply.code:
            raise NodeRefused(f"{reply.code}: {reply.error}")
        return reply

    async def _until_lease_expires(
        self, member: Member, answer: Coroutine[Any, Any, pb.PcpControlReply]
    ) -> pb.PcpControlReply:
        call = asyncio.ensure_future(answer)
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=LEASE_POLL_S)
                if done:
                    reply: pb.PcpControlReply = call.result()
                    return reply
                if self.membership.lease_expired(member):
                    raise StreamBroken(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"cpu {member.cpu}'s membership lease ran out while waiting for its answer",
                    )
        finally:
            call.cancel()

    async def commit(self, member: Member, message: pb.PcpControlRequest) -> None:
        """Commit (`message`: unlock= a PcpUnlockRequest, or rcu_release= an RcuReleaseRequest, with
        commit=True), asking again while the answer is lost, each attempt waiting about one
        membership lease. The node answers a retried commit as it answered the first, and its
        grant lease decides the outcome on its own (committed, or expired and the pages back on
        its lists), so asking again is always safe. Between attempts:
        - the member was replaced or declared dead: its pages went back to the zone; stop;
        - its membership lease has provably run out (Membership.lease_expired): it no longer
          uses any page, so this drain declares it dead (page_alloc_cpu_dead takes back every
          page the zone records for it, these included whether or not it let them go), since it
          holds pcpu_drain_mutex, which the reaper would need;
        - unanswered for REVOKE_AFTER_S while its heartbeats come: its control stream is
          broken, and waiting on would hold pcpu_drain_mutex for as long. Its lease is revoked
          (no longer renewed), so it runs out within a lease and the rule above ends the drain.
        The pages are freed into the zone only after a commit is answered, so an unanswered one
        never leaves them both on the node and free."""
        if self.declare_dead_on_lost_commit:
            await self._commit_or_declare_dead(member, message)
            return
        attempt_s = max(MIN_ATTEMPT_S, self.membership.lease)
        revoke_at = self.clock() + REVOKE_AFTER_S
        while True:
            try:
                await self.request(member, attempt_s, message)
                return
            except (StreamBroken, InjectedRpcError) as err:
                lost = err
            if not self.membership.is_current(member):
                raise NodeRefused(f"cpu {member.cpu} was replaced or declared dead mid-drain")
            if self.membership.lease_expired(member):
                await self._declare_dead(member)
                raise NodeRefused(
                    f"cpu {member.cpu} did not answer a commit ({describe(lost)}) and its membership "
                    "lease has run out: declared dead"
                )
            if not member.revoked and self.clock() >= revoke_at:
                log.warning(
                    "cpu%d: no answer to a commit for %.1fs while its heartbeats come (%s): revoking its lease",
                    member.cpu,
                    REVOKE_AFTER_S,
                    describe(lost),
                )
                self.membership.revoke(member)
            await asyncio.sleep(COMMIT_RETRY_S)

    async def _commit_or_declare_dead(self, member: Member, message: pb.PcpControlRequest) -> None:
        """The old, unsafe commit (--unsafe-declare-dead-on-lost-commit, tests only): the first
        attempt may use the whole dead timeout, after which the node is declared dead whatever
        its heartbeats say, its lease still running."""
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
                    await self._declare_dead(member)
                    raise NodeRefused(
                        f"cpu {member.cpu} did not answer a commit within the dead timeout "
                        f"({describe(err)}): declared dead"
                    ) from None
                await asyncio.sleep(COMMIT_RETRY_S)

    async def _declare_dead(self, member: Member) -> None:
        assert self.reaper is not None, "the coordinator sets the reaper before it serves drains"
        await self.reaper.kill(member)

    def stop_here_if_trapped(self) -> None:
        """The chaos trap: this process SIGSTOPs itself mid-drain (holding a node's pcp lock,
        or with work queued and not yet flushed); the nemesis SIGCONTs it later."""
        if self.faults is not None and self.faults.stop_mid_drain:
            self.faults.stop_mid_drain = False
            os.kill(os.getpid(), signal.SIGSTOP)
