"""The node's side of membership as rules that decide and do no I/O (docs/engine.md, rule 6):
registering until answered, heartbeat pacing, the lease, when the CPU parks and when it runs again.
node.agent explains what each answer means and is the wall driver (asyncio and gRPC, the CPU parked
from an executor thread); node.virtual.agent is the virtual one (heartbeats and Register attempts are
events over node.sim's network). An RPC's outcome comes in as its status code's name, so the rule
needs no grpc.
"""

from collections.abc import Callable
from dataclasses import dataclass

from node.api.v1 import pcpsim_pb2 as pb

REGISTER_BACKOFF_S = (0.1, 2.0)  # first and longest wait between Register attempts
REGISTER_TIMEOUT_S = 2.0  # one Register attempt's deadline
HEARTBEAT_TIMEOUT_S = 1.0  # one heartbeat's deadline
HEARTBEAT_S = 0.05  # the node's own heartbeat interval (its --heartbeat-ms default)
# Codes that leave a registration's outcome unknown (it may have been applied): ask again.
# Any other code is the coordinator's answer: it refused and changed nothing.
IN_DOUBT = frozenset({"DEADLINE_EXCEEDED", "UNAVAILABLE", "CANCELLED", "UNKNOWN", "INTERNAL"})


def ask_again(code: str, stopping: bool, give_up: bool) -> bool:
    """Whether a Register attempt that failed with `code` is sent again, unchanged."""
    return code in IN_DOUBT and not stopping and not give_up


def beat_interval(own: float, paced: float) -> float:
    """Seconds between a node's heartbeats: its own interval or the coordinator's pace for the
    cluster's size (coordinator.membership_rule.heartbeat_interval), the longer."""
    return max(own, paced)


def backoff(wait: float, longest: float) -> float:
    """The wait after the next failed attempt: twice this one, at most `longest`."""
    return min(2 * wait, longest)


def rejoin_for(code: str) -> bool | None:
    """What a refused heartbeat means: register afresh (False: declared dead or replaced, its pages
    are gone), with resume (True: the coordinator restarted, or was replaced by a newer epoch), or
    nothing (None: unreachable; the lease runs out by itself, heartbeats go on)."""
    if code == "FAILED_PRECONDITION":
        return False
    if code == "NOT_FOUND":
        return True
    return None


@dataclass(frozen=True)
class Answer:
    """What a Register or Heartbeat reply tells the agent."""

    lease_ms: int  # RegisterReply only; 0 in a heartbeat's
    heartbeat_interval_ms: int
    recovering: bool
    resumed: bool = False  # RegisterReply only

    @classmethod
    def of(cls, reply: pb.RegisterReply | pb.HeartbeatReply) -> "Answer":
        if isinstance(reply, pb.RegisterReply):
            return cls(reply.lease_ms, reply.heartbeat_interval_ms, reply.recovering, reply.resumed)
        return cls(0, reply.heartbeat_interval_ms, reply.recovering)


class AgentRule:
    """The agent's state: the lease (its length and until when it runs, on the lease clock), the
    coordinator's pacing, whether it recovers, whether a registration's outcome is in doubt."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lease = 0.0
        self.paced = 0.0  # the coordinator's heartbeat interval for this cluster size
        self.recovering = False
        self.in_doubt = False  # a registration was sent and not answered
        self.lease_until = float("inf")  # the driver copies it where the allocator reads it

    def next_beat(self, interval: float) -> float:
        """Seconds to the next heartbeat: the node's own interval or the coordinator's, the longer."""
        return beat_interval(interval, self.paced)

    def take_lease(self, answer: Answer, sent_at: float) -> float:
        """A registration answered (sent at `sent_at`): the lease runs from then. Returns lease_until."""
        self.lease = answer.lease_ms / 1000.0
        self.paced = answer.heartbeat_interval_ms / 1000.0
        self.recovering = answer.recovering
        self.lease_until = sent_at + self.lease
        return self.lease_until

    def beat_answered(self, answer: Answer, sent_at: float, parked: bool) -> bool:
        """A heartbeat sent at `sent_at` answered: the lease is renewed from then. Returns whether a CPU
        parked for membership runs again: the coordinator knows this incarnation as live, and it
        neither rebuilds its zone nor is a registration's outcome in doubt."""
        self.lease_until = sent_at + self.lease
        self.paced = answer.heartbeat_interval_ms / 1000.0
        self.recovering = answer.recovering
        return parked and not self.recovering and not self.in_doubt

    def register_sent(self) -> None:
        self.in_doubt = True

    def register_failed(self, code: str) -> None:
        """The attempts stopped unanswered: a refusal changed nothing, anything else stays in doubt
        (the CPU stays parked; the next heartbeat tells what the coordinator knows)."""
        if code not in IN_DOUBT:
            self.in_doubt = False

    def register_answered(self, resume: bool, answer: Answer, sent_at: float) -> bool | None:
        """A registration answered. Returns None if it registered resuming with pages the coordinator
        refused (discard them and register afresh), else whether the CPU runs (not while the
        coordinator recovers)."""
        self.in_doubt = False
        if resume and not answer.resumed:
            return None
        self.take_lease(answer, sent_at)
        return not self.recovering
