"""Fibers: call stacks that take turns in one thread, switched only by hand (greenlet).

The virtual driver runs each CPU's loop (node.cpu.Cpu._run, unchanged) on a fiber. A modeled stretch
of work suspends the fiber (`suspend`) and hands control back to the driver, which runs the next
event of the queue and resumes the fiber (`resume`) when its time comes. Since exactly one fiber or
the driver runs at any moment, and only an explicit suspend or resume switches between them, the
interleaving is the event queue's order: no scheduler picks anything. Generators or asyncio would
need every function between the CPU loop and the zone call (the task, the allocator, node.mm's pcp
code) rewritten as a coroutine; a fiber lets the same code block where it blocks today.

A fiber is a greenlet: a resume and its suspend cost 0.56 us of CPU time together on this 2-core
machine, where the first version's pair of threads handing semaphores back and forth took 40-55 us.
All fibers and the driver share one OS thread, so a real lock or condition can never make one fiber
wait for another: a blocking wait would hang the thread for good. Code on the virtual path therefore
waits only through the fiber: VirtualCpu's hooks, and node.virtual.pcp_lock's lock, whose waiters
queue in virtual time.
"""

from collections.abc import Callable

import greenlet


class FiberExit(BaseException):
    """Raised in a fiber at its suspension point by `close`, to unwind its stack."""


class _Greenlet(greenlet.greenlet):
    fiber: "Fiber"


class Fiber:
    def __init__(self, name: str, main: Callable[[], None]) -> None:
        self.name = name
        self._main = main
        self._greenlet = _Greenlet(self._body)
        self._greenlet.fiber = self
        self._driver: greenlet.greenlet | None = None  # who resumed it last: where suspend returns to
        self.done = False

    def resume(self) -> None:
        """From the driver: run the fiber until it suspends or ends. What ended it with an error is
        raised here, so a failure inside a CPU stops the run loudly."""
        if self.done:
            raise RuntimeError(f"fiber {self.name} resumed after it ended")
        g = self._greenlet
        if greenlet.getcurrent() is not self._driver:
            self._enter()
        g.switch()

    def suspend(self) -> None:
        """From inside the fiber: give control back to the driver; return once resumed."""
        driver = self._driver  # who resumed it: this runs once per event, so no helper call
        if driver is None or greenlet.getcurrent() is not self._greenlet:
            raise RuntimeError(f"fiber {self.name} suspended from outside itself")
        driver.switch()

    def close(self) -> None:
        """End the fiber: FiberExit is raised at its suspension point, so its finally blocks run (and
        again at every later one, should code that catches BaseException swallow it)."""
        while self._greenlet:  # started and not ended
            self._enter().throw(FiberExit)

    def _enter(self) -> greenlet.greenlet:
        """Make the running code this fiber's driver: a suspend, an end or an error comes back to it."""
        self._driver = greenlet.getcurrent()
        self._greenlet.parent = self._driver
        return self._greenlet

    def _body(self) -> None:
        try:
            self._main()
        except FiberExit:
            pass
        finally:
            self.done = True
