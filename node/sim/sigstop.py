"""SIGSTOP, SIGCONT and SIGKILL of one virtual process, as every part of it that waits sees them.

A stopped wall process runs nothing: its threads, its event loop's timers and the handlers waiting in
it go on only after SIGCONT, and each wait that ended meanwhile ends at once then. The virtual parts
of one process share one Sigstop: an event that would run one of them while the process is stopped
is held (`held`), and runs at `cont`, at that instant, in the order the held events fell due.
- A node process (node.virtual): its CPU's fiber (node.virtual.cpu.VirtualCpu), the Strands serving
  its requests, its agent (node.virtual.agent.VirtualAgent) and its grants' leases (node.virtual.drain).
- The coordinator process: its drain, membership and audit programs (coordinator.drain.virtual's
  VirtualDriver), its reaper's timer (coordinator.virtual_members) and its zone service, which is the
  zone->lock's holds and handovers of both its own operations (coordinator.tools.virtual_peer's
  CoordinatorZone) and the zone's side of the CPUs' requests (node.virtual.zone's LocalZone.apply).

`kill` is SIGKILL: nothing of the process runs from then on (what was held is called once, to see the
kill and let go of what other processes wait for). The coordinator's
drain driver and its zone service use it (its programs end at their next step; its zone answers no
request it was serving and applies none it had queued: node.virtual.zone_rpc's CoordinatorKilled); a
node process's kill closes its CPU's fiber and ends its agent instead (node.virtual.run's `kill`).

The chaos nemesis continues a process before its network endpoint (node.sim.net's `resume`), so the
held events run before what reached the process meanwhile, as the wall process's overdue timers run
on the event loop's first pass after SIGCONT, while a message that waited in its socket reaches its
handler through gRPC's poller thread, a pass later at the earliest (node.virtual.drain's VirtualLease
says where the lease's order was first seen to matter).

Until 2026-12-06 only a node's agent and leases were held: a stopped CPU's fiber ran on to its next
decision point (a zone call's timeout, its retries, a work item already queued) before it parked;
and until later that day the coordinator had a stop of its own (its driver's `stopped_until`),
which held its programs and its reaper but not its zone service: a zone operation under way when it
stopped ended its hold on time, and the CPU requests queued behind it for zone->lock were applied
during the stop.
"""

from collections.abc import Callable

from node.sim.clock import EventQueue


class Sigstop:
    def __init__(self, queue: EventQueue) -> None:
        self.queue = queue
        self.stopped = False
        self.killed = False
        self._held: list[tuple[Callable[..., object], tuple[object, ...]]] = []

    def held(self, fn: Callable[..., object], *args: object) -> bool:
        """Whether the process is stopped; if it is, fn(*args) runs at `cont` instead of now (never, once
        it is killed)."""
        if self.stopped and not self.killed:
            self._held.append((fn, args))
        return self.stopped

    def stop(self) -> None:
        self.stopped = True

    def kill(self) -> None:
        """SIGKILL: from now on nothing of the process runs. What was held is called once more, now, to
        see the kill: each part checks `killed` first and lets go of what outlives the process (zone->lock,
        which other processes wait for), or wakes the other process's fiber that waits on it (a CPU's
        request in LocalZone.apply, which then raises CoordinatorKilled), as the kernel releases a killed
        process's sockets and wakes who waits on them. Until 2026-12-07 the held events were dropped: a
        coordinator killed while stopped left a CPU's request holding zone->lock for good, and every zone
        request after it, the next coordinator's included, waiting behind it."""
        self.stopped = self.killed = True
        held, self._held = self._held, []
        for fn, args in held:
            self.queue.at(self.queue.clock.now, fn, *args)

    def cont(self) -> None:
        """Run what was held, from this instant, in the order it fell due."""
        if self.killed:
            return
        self.stopped = False
        held, self._held = self._held, []
        for fn, args in held:
            self.queue.at(self.queue.clock.now, fn, *args)
