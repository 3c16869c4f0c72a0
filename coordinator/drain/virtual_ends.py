"""What the virtual drain driver (coordinator.drain.virtual) reaches, as it reaches it: each CPU's half
as a `Peer`, which answers each request on arrival (an `Answer`, a `Later` its own waiting gives, a
`Refusal`, or nothing: a lost request), and the zone service as a `LockedZone`, which runs a ZoneLocked
effect under the virtual zone->lock. The whole cluster's are coordinator.tools.virtual_peer's NodePeer
and CoordinatorZone; unit tests script their own."""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Answer:
    """A CPU's reply to a request, sent back `after_s` after the request arrived (its own handling time:
    waiting for its pcp lock, a grace period, a flush)."""

    reply: Any
    after_s: float = 0.0


@dataclass(frozen=True)
class Refusal:
    """A unary call's error status as a Peer answers it (the wall call raises it): the effect fails."""

    code: str
    detail: str


class Later:
    """A reply a CPU gives once its handling has waited in virtual time (a node half on its own fiber:
    the pcp lock, a grace period, a flush): the Peer returns it at once and calls `give` when done.
    Only the first reply counts; one never given is a lost request."""

    def __init__(self) -> None:
        self._send: Callable[[Any], object] | None = None
        self._given: list[Any] = []

    def give(self, reply: Any) -> None:
        if self._given:
            return
        self._given.append(reply)
        if self._send is not None:
            self._send(reply)

    def bind(self, send: Callable[[Any], object]) -> None:
        """The driver's side: send(reply) sends the reply back, now if it was given already."""
        self._send = send
        if self._given:
            send(self._given[0])


class Peer(Protocol):
    """A CPU as the virtual driver reaches it. Each method is called when a request arrives, with the
    sending coordinator's epoch (0: none, as the wall request's missing header); None: the request is
    lost (never answered)."""

    def control(self, message: Any, epoch: int) -> Answer | Later | None: ...

    def call(self, method: str, request: Any, epoch: int) -> Answer | Later | None: ...


class LockedZone(ABC):
    """A zone service with a zone->lock in virtual time: `locked` runs fn() once the lock is its, holds
    the lock for what fn's operations cost, then calls done(value, None) or done(None, error)."""

    @abstractmethod
    def locked(self, fn: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None: ...
