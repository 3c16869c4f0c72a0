"""Rebuilding the zone after a coordinator restart, from what the nodes report.

A coordinator keeps no state on disk: after a restart its zone says every page is free
(apart from the rest of the system's share, which `preallocate` takes again, the same
blocks, deterministically, before anything else). The nodes still hold pages. So every
coordinator starts *recovering*: it hands out no page until each CPU has registered
(a node that lost its coordinator registers again with `resume` and every page it
holds, which the zone claims back for it), or until the dead timeout has passed since
it started. A node silent that long has lost its membership lease (it stopped using
its pages; coordinator.membership), so its pages may count as free; when it comes back
its holdings are refused and it discards them.
"""


class Recovery:
    def __init__(self, membership, window: float, clock):
        self.membership = membership
        self.clock = clock
        self.until = clock() + window
        self._over = False

    @property
    def active(self) -> bool:
        if not self._over and (self.clock() >= self.until
                               or self.membership.alive() >= self.membership.nr_cpus):
            self._over = True
        return not self._over
