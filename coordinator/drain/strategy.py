"""What a drain strategy is, and what it sees of the drainer.

A strategy (workqueue, remote, rcu_swap, qpw) is a rule: a generator function that drains the marked
CPUs through effects (coordinator.drain.effects) and returns each CPU's part. It sees the drainer as a
DrainerView, so it need not import the drainer's modules (drain_all imports every strategy)."""

from collections.abc import Callable
from typing import Any, Protocol

from coordinator.drain.control import Control
from coordinator.drain.effects import Program, ZoneLocked
from coordinator.drain.record import CpuDrain
from coordinator.membership_rule import Member, MembershipRule
from node.mm.constants import Page
from node.mm.zone_rules import DRAIN

# The coordinator's defaults for its --lease-ms, --flush-timeout-ms and --rcu-gp-timeout-ms: the wall
# process's flags and the virtual coordinator's settings start from these.
LEASE_MS = 2000
FLUSH_TIMEOUT_MS = 10_000
GP_TIMEOUT_MS = 2000


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
    def membership(self) -> MembershipRule: ...  # qpw: its nohz_full (else the registered roles) decides the path


DrainStrategy = Callable[[DrainerView, list[Member]], Program[list[CpuDrain]]]


def free_drained(member: Member, pages: list[Page], transfer_id: str) -> ZoneLocked:
    """Free a CPU's drained pages into the zone under zone->lock, once per transfer id (stream DRAIN)."""
    return ZoneLocked(
        _free_pages,
        (member.cpu, pages, transfer_id, member.incarnation, DRAIN),
        f"cpu{member.cpu} frees {len(pages)} blocks {transfer_id}",
    )


def _free_pages(zone: Any, cpu: int, pages: list[Page], transfer_id: str, incarnation: str, stream: str) -> object:
    return zone.free_pages(cpu, pages, transfer_id, incarnation, stream)
