"""pcp->lock in virtual time: a node.mm.lock.PcpLock whose blocking acquire suspends a fiber.

In v6.0+ pcp->lock is a spinlock another CPU may take (drain_pages_zone from the draining
CPU); the owning CPU's allocation and free fast paths only try it (pcp_spin_trylock) and fall
back to the buddy when a remote drainer holds it, while free_unref_page_list and a local drain
spin on it (v6.1 mm/page_alloc.c). Here:
- a trylock (`get_nowait()`, raising LockBusy) fails at exactly the instants the lock is held, which
  may span virtual time: a remote drainer holds it from its grant to its commit, abort or
  lease expiry (node.virtual.drain), the CPU holds it across a refill's zone round trip;
- a blocking acquire (`get`) suspends the caller until a release hands it the lock, or until its
  timeout, when it raises LockBusy. The PcpLock methods act for `owner`, the CPU whose pcp this
  is (node.mm's paths run on its fiber); `acquire_as` is for anyone else (a drainer's Strand);
- waiters get the lock in arrival order, handed over at the release: the queued spinlock
  serves its waiters in order (kernel/locking/qspinlock.c: the first spins on the pending bit,
  the rest queue behind it "based on the MCS lock"), and a trylock at the instant of a
  hand-over fails, as queued_spin_trylock does whenever a waiter's pending or tail bits are
  set (include/asm-generic/qspinlock.h: `if (unlikely(val)) return 0;`).
A spinning CPU runs nothing else and passes no RCU quiescent state: the owner waits deaf to
wake-ups (VirtualCpu.wait_resumed).
"""

import collections

from node.mm.lock import LockBusy
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

    def get_nowait(self) -> object:  # spin_trylock: acquire_as's non-blocking case, inlined for the fast paths
        if self._held:
            self.trylock_failures += 1
            raise LockBusy
        self._held = True
        self.acquisitions += 1
        return True

    def get(self, block: bool = True, timeout: float | None = None) -> object:  # spin_lock
        if not self.acquire_as(self.owner, block, -1 if timeout is None else timeout):
            raise LockBusy
        return True

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

    def put(self, item: object, /) -> None:  # spin_unlock
        self.release()

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("release unlocked lock")
        while self._waiters:
            if self._waiters.popleft().end(True):
                return  # handed to the first waiter still waiting: the lock stays held
        self._held = False

    def empty(self) -> bool:  # spin_is_locked
        return self._held
