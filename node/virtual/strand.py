"""Waiting in virtual time off a CPU: a Strand (a fiber that is no CPU), a Wait (one waiter, until ended or timed out).

The node's interconnect serves each request on its own thread of control: in the wall engine a
coroutine on the asyncio loop, whose blocking waits (the pcp lock, a grace period) run on executor
threads. In virtual time each request that may wait runs on a Strand, which waits as a VirtualCpu
does (`wait_until`, `wait_resumed`, `resume_soon`), so the locks and grace periods of
node.virtual.pcp_lock and node.virtual.drain suspend either kind the same way (`Waiter`).
"""

from collections.abc import Callable
from typing import Protocol

from node.sim.clock import EventQueue
from node.sim.sigstop import Sigstop
from node.virtual.fiber import Fiber


class Waiter(Protocol):
    """What can wait in virtual time on its own fiber: a node.virtual.cpu.VirtualCpu or a Strand."""

    def wait_resumed(self) -> None: ...  # from its fiber: suspend until resume_soon

    def resume_soon(self) -> None: ...  # end that suspension at the current instant


class Wait:
    """One waiter suspended until whoever it waits for ends the wait (`end(True)`) or `timeout` seconds
    pass (None: no bound), whichever comes first; the second is then a no-op."""

    def __init__(self, queue: EventQueue, waiter: Waiter, timeout: float | None) -> None:
        self.waiter = waiter
        self.ok = False
        self.over = False
        if timeout is not None:
            queue.after(timeout, self.end, False)

    def suspend(self) -> bool:
        """From the waiter's fiber: wait; whether it was ended (True) or timed out (False)."""
        self.waiter.wait_resumed()
        return self.ok

    def end(self, ok: bool) -> bool:
        """End the wait now (the waiter resumes at the next event); False if it was over already."""
        if self.over:
            return False
        self.over, self.ok = True, ok
        self.waiter.resume_soon()
        return True


class Strand:
    """`main(strand)` on its own fiber from `start`, waiting in virtual time: the node's interconnect
    serving one request. An error it raises stops the run (node.virtual.fiber.Fiber.resume)."""

    def __init__(
        self, queue: EventQueue, name: str, main: Callable[["Strand"], None], sigstop: Sigstop | None = None
    ) -> None:
        self.queue = queue
        self.clock = queue.clock
        self.fiber = Fiber(name, lambda: main(self))
        self.sigstop = sigstop or Sigstop(queue)  # its process's: while it is stopped nothing resumes the strand
        self._token = 0

    def start(self, at: float) -> None:
        self.queue.at(at, self._resume, self._token)

    def close(self) -> None:
        self.fiber.close()

    def wait_until(self, when: float) -> None:
        if when > self.clock():
            self._suspend(when)

    def wait_resumed(self) -> None:
        self._suspend(None)

    def resume_soon(self) -> None:
        self.queue.at(self.clock(), self._resume, self._token)

    def _suspend(self, until: float | None) -> None:
        # Each suspension has its token; an event for an earlier one resumes nothing.
        if until is not None and self.queue.advance(until):
            self._token += 2  # as the suspension and its resume would have (EventQueue.advance)
            return
        self._token += 1
        if until is not None:
            self.queue.at(until, self._resume, self._token)
        self.fiber.suspend()

    def _resume(self, token: int) -> None:
        if token == self._token and not self.fiber.done:
            if self.sigstop.held(self._resume, token):
                return
            self._token += 1
            self.fiber.resume()
