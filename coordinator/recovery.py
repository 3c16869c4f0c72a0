"""Rebuilding the zone after a coordinator restart, from what the nodes report.

A coordinator keeps no state on disk: after a restart its zone says every page is free
(apart from the rest of the system's share, which `preallocate` takes again, the same
blocks, deterministically, before anything else). The nodes still hold pages. So every
coordinator starts *recovering*: it hands out no page until each CPU has registered
(a node that lost its coordinator registers again with `resume` and every page it
holds, which the zone claims back for it), or until twice the dead timeout has passed
since it began serving. A node silent that long has lost its membership lease (it
stopped using its pages; coordinator.membership: the lease is shorter than the dead
timeout), so its pages may count as free; when it comes back its holdings are refused
and it discards them. The window is twice the minimum so that nodes that are merely
slow to notice the restart (a reconnect, a CPU to park) still resume.

A node that never reached this coordinator does not know its pages went to other CPUs, and
may claim them from the next one. So before the zone hands out its first page after the
window, the store records that this epoch rebuilt its zone (coordinator.store.Store.rebuilt_zone),
and every later coordinator refuses a claim of holdings from an older one
(coordinator.registration_rule). A coordinator the store says was replaced meanwhile hands
out nothing: UNAVAILABLE, so the node asks again and reaches the one that replaced it.
"""

from collections.abc import Callable

from node.api.errors import FailedPrecondition, Unavailable


def recovery_window(dead_timeout: float) -> float:
    """How long a restarted coordinator waits for its CPUs at most: twice the dead timeout (above)."""
    return 2 * dead_timeout


class Recovery:
    def __init__(self, membership, window: float, clock, rebuilt: Callable[[], None]):
        """`rebuilt()` records, durably, that the recovery is over (Store.rebuilt_zone; it raises a
        FailedPrecondition if a newer coordinator has started)."""
        self.membership = membership
        self.clock = clock
        self.window = window
        self.until = clock() + window
        self._over = False
        self._rebuilt = rebuilt
        self._recorded = False

    def begin(self) -> None:
        """The window counts from when the coordinator serves (nodes can reach it)."""
        self.until = self.clock() + self.window

    @property
    def active(self) -> bool:
        if not self._over and (self.clock() >= self.until or self.membership.alive() >= self.membership.nr_cpus):
            self._over = True
        return not self._over

    def check_over(self) -> None:
        """Zone operations, drains and audits wait until the zone is rebuilt: UNAVAILABLE till then, and
        the first one after it records that it is (see the module docstring)."""
        if self.active:
            raise Unavailable("the coordinator is rebuilding its zone from the nodes' reports")
        if not self._recorded:
            try:
                self._rebuilt()
            except FailedPrecondition as err:  # coordinator.store.StoreFenced
                raise Unavailable(str(err)) from None
            self._recorded = True
