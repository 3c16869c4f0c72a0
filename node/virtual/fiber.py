"""Fibers: threads that take turns, one running at a time, switched only by hand.

The virtual driver runs each CPU's loop (node.cpu.Cpu._run, unchanged) on a fiber. A modeled stretch
of work suspends the fiber (`suspend`) and hands control back to the driver, which runs the next
event of the queue and resumes the fiber (`resume`) when its time comes. Since exactly one fiber or
the driver runs at any moment, and only an explicit suspend or resume switches between them, the
interleaving is the event queue's order: the OS scheduler picks nothing. Generators or asyncio would
need every function between the CPU loop and the zone call (the task, the allocator, node.mm's pcp
code) rewritten as a coroutine; a fiber lets the same code block where it blocks today.

A thread switch costs ~40 us here (a Semaphore release/acquire pair each way, measured on this
2-core machine at load 4); greenlet's switch is ~1 us and would drop in behind this same interface
(docs/engine.md, next steps).
"""

import threading
from collections.abc import Callable


class FiberExit(BaseException):
    """Raised in a fiber at its suspension point by `close`, to unwind its stack."""


class Fiber:
    def __init__(self, name: str, main: Callable[[], None]) -> None:
        self.name = name
        self._main = main
        self._go = threading.Semaphore(0)
        self._back = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._body, name=name, daemon=True)
        self._started = False
        self._exit = False
        self.done = False
        self._error: BaseException | None = None

    def resume(self) -> None:
        """From the driver: run the fiber until it suspends or ends. What ended it with an error is
        raised here, so a failure inside a CPU stops the run loudly."""
        if self.done:
            raise RuntimeError(f"fiber {self.name} resumed after it ended")
        if self._started:
            self._go.release()
        else:
            self._started = True
            self._thread.start()
        self._back.acquire()
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def suspend(self) -> None:
        """From inside the fiber: give control back to the driver; return once resumed."""
        self._back.release()
        self._go.acquire()
        if self._exit:
            raise FiberExit

    def close(self) -> None:
        """End the fiber: FiberExit is raised at its suspension point, so its finally blocks run (and
        again at every later one, should code that catches BaseException swallow it)."""
        if not self._started:
            return
        self._exit = True
        while not self.done:
            self._go.release()
            self._back.acquire()
        self._thread.join()

    def _body(self) -> None:
        try:
            self._main()
        except FiberExit:
            pass
        except BaseException as err:  # handed to the driver by resume
            self._error = err
        finally:
            self.done = True
            self._back.release()
