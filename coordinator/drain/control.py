"""The drainer's side of a node's PcpControl stream, as rules: one request, and a commit that is asked
again while its answer is lost, revokes the lease of a node whose stream stays silent while its
heartbeats come, and declares a node dead only once its lease has provably run out. Every strategy that
takes a remote CPU's pages (remote, rcu-swap) goes through it. The rules yield effects
(coordinator.drain.effects); a driver sends the messages, applies outbound faults and waits.

A request that takes pages (a lock_drain, an rcu_swap) carries an id, and when the drainer stops
waiting for its answer it abandons it by that id (node.grants): the answer may still come, and the
grant it carries would otherwise hold the CPU's pages, and under the remote pcp lock its lock, until
the grant's lease ran out, while the CPU's own allocations fell back to the buddy and the next drain
of it waited. The abandon is posted, not awaited: lost, it leaves the grant to its lease, as before
2026-12-06."""

import logging
from collections.abc import Callable
from typing import Protocol

from coordinator.drain.effects import DeclareDead, Failed, GaveUp, Post, Program, Send, Sleep, describe
from coordinator.membership_rule import CONTROL_TIMEOUT_S, Member, MembershipRule
from node.api.v1 import pcpsim_pb2 as pb

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
    """coordinator.hotplug.Reaper as the wall driver uses it for DeclareDead: declare a member dead
    and take its pages back."""

    async def kill(self, member: Member) -> int: ...


class NodeRefused(Exception):
    """The node answered a control request with an error code."""


class Control:
    def __init__(self, membership: MembershipRule, clock: Callable[[], float], epoch: int = 0) -> None:
        self.membership = membership
        self.clock = clock
        # The ids of this drainer's requests that take pages: its epoch above a count, so no two
        # coordinators (each a new epoch, with a state directory) give one id to two requests.
        self.epoch = epoch
        self._requests = 0
        # Who takes a dead member's pages back, for the wall driver's DeclareDead; set once both exist.
        self.reaper: MemberReaper | None = None
        # TEST ONLY (--unsafe-declare-dead-on-lost-commit): the commit this replaced, which
        # declares a node dead when a commit goes unanswered for the dead timeout.
        self.declare_dead_on_lost_commit = False

    def request(
        self, member: Member, timeout: float, message: pb.PcpControlRequest, until_lease_expires: bool = False
    ) -> Program[pb.PcpControlReply]:
        """One request on the member's PcpControl stream; a refusal raises NodeRefused.
        `until_lease_expires`: stop waiting (Failed) once the member's membership lease has
        provably run out, for a request nothing depends on yet (taking the lock or swapping the
        list sets: the node's grant lease gives back whatever it handed over). Waiting out the
        full bound instead (rcu-swap's is two grace periods and a round trip) would hold
        pcpu_drain_mutex past the dead timeout, and the reaper, which needs it, could not
        declare a partitioned CPU dead until it had come back."""
        give_up = (lambda: self.membership.lease_expired(member)) if until_lease_expires else None
        request_id = self._name(message) if until_lease_expires else 0
        try:
            reply: pb.PcpControlReply = yield Send(member, message, timeout, give_up, LEASE_POLL_S)
        except GaveUp:
            yield from self._abandon(member, request_id)
            raise Failed(
                f"StreamBroken: DEADLINE_EXCEEDED: cpu {member.cpu}'s membership lease ran out "
                "while waiting for its answer"
            ) from None
        except Failed:
            yield from self._abandon(member, request_id)
            raise
        if reply.code:
            raise NodeRefused(f"{reply.code}: {reply.error}")
        return reply

    def _name(self, message: pb.PcpControlRequest) -> int:
        """Give the request that takes pages (`until_lease_expires`: its op's `request_id`) its id."""
        self._requests += 1
        request_id = (self.epoch << 32) | self._requests
        getattr(message, message.WhichOneof("op")).request_id = request_id
        return request_id

    def _abandon(self, member: Member, request_id: int) -> Program[None]:
        """No answer will be waited for: whatever the node grants for `request_id`, it is to give back."""
        if request_id:
            yield Post(member, pb.PcpControlRequest(abandon=pb.AbandonRequest(cpu=member.cpu, request_id=request_id)))

    def commit(self, member: Member, message: pb.PcpControlRequest) -> Program[None]:
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
            yield from self._commit_or_declare_dead(member, message)
            return
        attempt_s = max(MIN_ATTEMPT_S, self.membership.lease)
        revoke_at = self.clock() + REVOKE_AFTER_S
        while True:
            try:
                yield from self.request(member, attempt_s, message)
                return
            except Failed as err:
                lost = err
            if not self.membership.is_current(member):
                raise NodeRefused(f"cpu {member.cpu} was replaced or declared dead mid-drain")
            if self.membership.lease_expired(member):
                yield DeclareDead(member)
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
            yield Sleep(COMMIT_RETRY_S)

    def _commit_or_declare_dead(self, member: Member, message: pb.PcpControlRequest) -> Program[None]:
        """The old, unsafe commit (--unsafe-declare-dead-on-lost-commit, tests only): the first
        attempt may use the whole dead timeout, after which the node is declared dead whatever
        its heartbeats say, its lease still running."""
        give_up = self.clock() + self.membership.dead_timeout
        while True:
            timeout = max(0.05, min(CONTROL_TIMEOUT_S, give_up - self.clock()))
            try:
                yield from self.request(member, timeout, message)
                return
            except Failed as err:
                if not self.membership.is_current(member):
                    raise NodeRefused(f"cpu {member.cpu} was replaced or declared dead mid-drain") from None
                if self.clock() >= give_up:
                    yield DeclareDead(member)
                    raise NodeRefused(
                        f"cpu {member.cpu} did not answer a commit within the dead timeout "
                        f"({describe(err)}): declared dead"
                    ) from None
                yield Sleep(COMMIT_RETRY_S)
