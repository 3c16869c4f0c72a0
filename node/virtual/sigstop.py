"""SIGSTOP and SIGCONT of a virtual node process, as every part of it that waits sees them.

A stopped wall process runs nothing. Its CPU thread, asleep in a modeled stretch or a timed wait,
its agent's heartbeat timer, the lease timers of its grants and the handlers waiting for its pcp
lock or a grace period all go on only after SIGCONT, and each wait that ended meanwhile ends at
once then. The virtual parts of one node process (its node.virtual.cpu.VirtualCpu, the Strands
serving its requests, its node.virtual.agent.VirtualAgent, its leases in node.virtual.drain) share
one Sigstop: an event that would run one of them while the process is stopped is held
(`held`), and runs at `cont`, at that instant, in the order the held events fell due.

The chaos nemesis continues the process before its network endpoint (node.sim.net's `resume`), so
the held events run before what reached the process meanwhile, as the wall process's overdue
timers run on the event loop's first pass after SIGCONT, while a message that waited in its socket
reaches its handler through gRPC's poller thread, a pass later at the earliest (node.virtual.drain's
VirtualLease says where the lease's order was first seen to matter).

Until 2026-12-06 only the agent and the leases were held: a stopped CPU's fiber ran on to its next
decision point (a zone call's timeout, its retries, a work item already queued) before it parked.
"""

from collections.abc import Callable

from node.sim.clock import EventQueue


class Sigstop:
    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue
        self.stopped = False
        self._held: list[tuple[Callable[..., object], tuple[object, ...]]] = []

    def held(self, fn: Callable[..., object], *args: object) -> bool:
        """Whether the process is stopped; if it is, fn(*args) runs at `cont` instead of now."""
        if self.stopped:
            self._held.append((fn, args))
        return self.stopped

    def stop(self) -> None:
        self.stopped = True

    def cont(self) -> None:
        """Run what was held, from this instant, in the order it fell due."""
        self.stopped = False
        held, self._held = self._held, []
        for fn, args in held:
            self.queue.at(self.queue.clock.now, fn, *args)
