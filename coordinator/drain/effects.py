"""What a drain rule asks its driver to do, and how a failure comes back to it (docs/engine.md, rule 5).

A drain rule (control, workqueue, remote, rcu_swap, qpw, drainer's orchestration) is a generator: it
yields an effect, its driver does the I/O or the waiting, and sends the result back in (or throws the
failure in). The rule decides everything else: what to ask, how long to wait, when to retry, revoke or
declare a CPU dead, and what the drain records. Two drivers run the same generators:
coordinator.drain.wall on asyncio and the gRPC streams (the coordinator process), and
coordinator.drain.virtual on node.sim's event queue and simulated network (virtual time). Sans-I/O as
h11 and h2 are; generators rather than callbacks because a strategy's order of steps (lock, trap,
commit, free; queue all, trap, flush each) then reads as it did as a coroutine.

A rule composes rules with `yield from`; `Gather` runs several at once.
"""

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from coordinator.membership_rule import Member

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """One request on `member`'s PcpControl stream, its answer awaited at most `timeout` seconds
    (outbound faults apply first, as to every message this process sends). With `give_up`, the
    driver also looks every `poll_s` and stops waiting once give_up() is true, throwing GaveUp.
    Result: the node's PcpControlReply (a refusal is the rule's to read in its `code`)."""

    member: Member
    message: Any  # pb.PcpControlRequest
    timeout: float
    give_up: Callable[[], bool] | None = None
    poll_s: float = 0.0


@dataclass(frozen=True)
class Post:
    """One message on `member`'s PcpControl stream whose answer nobody waits for (an abandon): the
    driver sends it (outbound faults apply first) and the rule goes on at once; a lost one is lost.
    Result: None."""

    member: Member
    message: Any  # pb.PcpControlRequest


@dataclass(frozen=True)
class Call:
    """The unary RPC `method` of `member`'s Node service with deadline `timeout`; an outbound fault
    that drops it fails it after `lost_after` (what the caller would have waited). None: no outbound
    fault applies (the audit's calls, which never had any). Result: the reply."""

    member: Member
    method: str
    request: Any
    timeout: float
    lost_after: float | None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Gather:
    """Run `programs` at once. Result: their results in order, the exception in place of a program
    that raised (asyncio.gather with return_exceptions=True)."""

    programs: tuple["Program[Any]", ...]


@dataclass(frozen=True)
class StopHere:
    """The chaos trap (stop_mid_drain): this coordinator stops here, mid-drain, until the nemesis lets
    it run again. The driver decides whether the trap is armed; a drain without it goes straight on."""


@dataclass(frozen=True)
class ZoneLocked:
    """Run fn(zone, *args) under zone->lock, `zone` being the driver's zone service
    (coordinator.zone_service.ZoneService). Result: what fn returns. `what`: one line for a trace."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    what: str


@dataclass(frozen=True)
class DeclareDead:
    """page_alloc_cpu_dead for a member whose lease has provably run out: its pages go back to the
    zone (coordinator.hotplug.Reaper.kill in the wall driver)."""

    member: Member


@dataclass(frozen=True)
class Lock:
    """Take `mutex` (pcpu_drain_mutex: the driver's own lock object), waiting for it; with wait=False,
    take it only if nobody holds it. Result: whether it was taken."""

    mutex: object
    wait: bool = True


@dataclass(frozen=True)
class Unlock:
    mutex: object


Effect = Send | Post | Call | Sleep | Gather | StopHere | ZoneLocked | DeclareDead | Lock | Unlock
Program = Generator[Effect, Any, T]


class Failed(Exception):
    """A request or call that got no usable answer: the stream broke or timed out, the call failed,
    or an injected fault lost or failed it. It may or may not have been applied. Its text is the
    driver's one-line account (status and details), what a drain record says."""


class GaveUp(Exception):
    """A Send's give_up() became true before its answer came."""


def describe(err: BaseException) -> str:
    """One line for a drain record."""
    if isinstance(err, Failed):
        return str(err)
    return f"{type(err).__name__}: {err}"
