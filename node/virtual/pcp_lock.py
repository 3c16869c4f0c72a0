"""pcp->lock in virtual time: node.mm.pcp's PcpLock, whose blocking acquire suspends a fiber.

In v6.0+ pcp->lock is a spinlock another CPU may take (drain_pages_zone from the draining
CPU); the owning CPU's allocation and free fast paths only try it (pcp_spin_trylock) and fall
back to the buddy when a remote drainer holds it, while free_unref_page_list and a local drain
spin on it (v6.1 mm/page_alloc.c). Here:
- a trylock (`acquire(blocking=False)`) fails at exactly the instants the lock is held, which
  may span virtual time: a remote drainer holds it from its grant to its commit, abort or
  lease expiry (node.virtual.drain), the CPU holds it across a refill's zone round trip;
- a blocking acquire suspends the caller until a release hands it the lock, or until its
  timeout. The PcpLock methods act for `owner`, the CPU whose pcp this is (node.mm's paths run
  on its fiber); `acquire_as` is for anyone else (a drainer's Strand);
- waiters get the lock in arrival order, handed over at the release: the queued spinlock
  serves its waiters in order (kernel/locking/qspinlock.c: the first spins on the pending bit,
  the rest queue behind it "based on the MCS lock"), and a trylock at the instant of a
  hand-over fails, as queued_spin_trylock does whenever a waiter's pending or tail bits are
  set (include/asm-generic/qspinlock.h: `if (unlikely(val)) return 0;`).
A spinning CPU runs nothing else and passes no RCU quiescent state: the owner waits deaf to
wake-ups (VirtualCpu.wait_resumed).
"""

import collections
from types import TracebackType

from node.sim.clock import EventQueue
from node.virtual.strand import Wait, Waiter


class VirtualPcpLock:
    def __init__(self, queue: EventQueue, owner: Waiter) -> None:
        self.queue = queue
        self.owner = owner
        self._held = False
        self._waiters: collections.deque[Wait] = collections.deque()
        self.acquisitions = 0
        self.trylock_failures = 0
        self.contended = 0  # blocking acquires that had to wait

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self.acquire_as(self.owner, blocking, timeout)

    def acquire_as(self, waiter: Waiter, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock for `waiter`, from its fiber. A negative timeout waits without bound."""
        if not self._held:
            self._held = True
            self.acquisitions += 1
            return True
        if not blocking:
            self.trylock_failures += 1
            return False
        self.contended += 1
        wait = Wait(self.queue, waiter, None if timeout < 0 else timeout)
        self._waiters.append(wait)
        try:
            ok = wait.suspend()
        except BaseException:  # the waiter's fiber was closed (the run ended) while it waited
            if wait.ok:
                self.release()  # handed over to a waiter that is gone: pass it on
            wait.over = True  # a release skips it
            raise
        if ok:
            self.acquisitions += 1  # handed over by release: held for this waiter now
        return ok

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("release unlocked lock")
        while self._waiters:
            if self._waiters.popleft().end(True):
                return  # handed to the first waiter still waiting: the lock stays held
        self._held = False

    def locked(self) -> bool:
        return self._held

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None:
        self.release()
