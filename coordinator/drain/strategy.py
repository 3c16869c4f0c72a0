"""What a drain strategy is, and what it sees of the drainer and of the zone.

A strategy (workqueue, remote, rcu_swap, qpw) is a coroutine function that drains the marked CPUs and
reports each CPU's part. It sees the drainer as a DrainerView, so it need not import drainer,
which imports every strategy."""

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from coordinator.drain.control import Control
from coordinator.drain.record import CpuDrain
from coordinator.membership import Member, Membership
from node.mm.constants import Page

R = TypeVar("R")


class ZoneFrees(Protocol):
    """The coordinator's zone service (coordinator.zone_service.ZoneService) as a drain uses it:
    a CPU's drained pages freed under zone->lock, once per transfer id (stream DRAIN)."""

    async def locked(self, fn: Callable[..., R], *args: object) -> R: ...

    def free_pages(self, cpu: int, pages: list[Page], transfer_id: str, incarnation: str, stream: str) -> object: ...


class DrainerView(Protocol):
    """The drainer (coordinator.drain.drainer.Drainer) as a strategy sees it."""

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def lease_ms(self) -> int: ...  # remote: the pcp lock lease a drain asks for

    @property
    def flush_timeout_ms(self) -> int: ...  # workqueue: bound on one CPU's flush

    @property
    def gp_timeout_ms(self) -> int: ...  # rcu-swap: bound on one CPU's grace period

    @property
    def control(self) -> Control: ...

    @property
    def zone(self) -> ZoneFrees: ...

    @property
    def membership(self) -> Membership: ...  # qpw: every registered CPU's role decides the path


DrainStrategy = Callable[[DrainerView, list[Member]], Awaitable[list[CpuDrain]]]
