"""What a drain strategy is, and what it sees of the drainer.

A strategy (workqueue, remote, rcu_swap, qpw) is a rule: a generator function that drains the marked
CPUs through effects (coordinator.drain.effects) and returns each CPU's part. It sees the drainer as a
DrainerView, so it need not import drainer, which imports every strategy."""

from collections.abc import Callable
from typing import Protocol

from coordinator.drain.control import Control
from coordinator.drain.effects import Program
from coordinator.drain.record import CpuDrain
from coordinator.membership import Member, Membership


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
    def membership(self) -> Membership: ...  # qpw: every registered CPU's role decides the path


DrainStrategy = Callable[[DrainerView, list[Member]], Program[list[CpuDrain]]]
