"""The spinlocks of the model as Protocols its callers satisfy: `Lock` (zone->lock, pcpu_drain_mutex's
stand-in), in threading.Lock's names, and `PcpLock` (pcp->lock), in queue.SimpleQueue's (why: below).

The model takes a lock but never makes one a thread could share: a driver that runs the model from
several threads passes its own (the wall's processes pass a threading.Lock, and a SimpleQueue holding
a token for pcp->lock), so node.mm imports no threading. Without one, a structure gets an
`UnsharedLock` or `UnsharedPcpLock`: correct for one thread of control (the virtual engine, unit
tests), where a second acquisition while held can only be a bug or a trylock that must fail.
"""

import _queue
from types import TracebackType
from typing import Protocol


class Lock(Protocol):
    """What the model calls on a lock: threading.Lock's methods."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...

    def locked(self) -> bool: ...

    def __enter__(self) -> bool: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None: ...


class UnsharedLock:
    """A lock for one thread of control: a trylock of a held lock fails, as threading.Lock's would; a
    blocking acquisition of a held lock raises, since nobody else could ever release it (a threading.Lock
    would hang)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._held:
            if blocking:
                raise RuntimeError("acquire of a held UnsharedLock: its holder is this thread, it would deadlock")
            return False
        self._held = True
        return True

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("release of an unlocked UnsharedLock")
        self._held = False

    def locked(self) -> bool:
        return self._held

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None:
        self.release()


# pcp->lock ------------------------------------------------------------------------------------------
# The pcp fast path takes pcp->lock twice for every page allocated and freed (pcp_spin_trylock in rmqueue
# and in free_unref_page), so its cost is the bench's figure 1. threading.Lock's `acquire(False)` parses
# its arguments in CPython 3.11 (PyArg_ParseTupleAndKeywords): a trylock and unlock pair ~130 ns here,
# where a queue.SimpleQueue holding one token, `get_nowait()` then `put(True)`, is ~65 ns and blocks
# (`get(True, timeout)`) on a real OS lock like threading.Lock (2026-12-05, `timeit`, best of 9). CPython
# specializes those two calls only on the exact C type, so the wall passes a bare SimpleQueue and
# pcp->lock is modelled in its names; a subclass adding kernel names measured 16 ns a pair slower.

LockBusy = _queue.Empty
"""What a failed spin_trylock (`get_nowait()`) and a timed-out spin_lock (`get(True, timeout)`) raise:
the exception queue.SimpleQueue raises (from the C module `_queue`, which imports no threading)."""


class PcpLock(Protocol):
    """pcp->lock, a spinlock another CPU may take (v6.0+), as a queue holding one token (True) while the
    lock is free. The fast paths call these directly; other paths use spin_lock and its kin below.
    A wall SimpleQueue does not check that a release matches an acquisition: the unshared and virtual
    locks, which the unit and fuzz tests run the model on, do."""

    def get_nowait(self) -> object: ...  # spin_trylock: take the token or raise LockBusy

    def put(self, item: object, /) -> None: ...  # spin_unlock: give the token back

    def get(self, block: bool = True, timeout: float | None = None) -> object: ...  # spin_lock (LockBusy on timeout)

    def empty(self) -> bool: ...  # spin_is_locked: no token in the queue


def spin_trylock(lock: PcpLock) -> bool:
    try:
        lock.get_nowait()
    except LockBusy:
        return False
    return True


def spin_lock(lock: PcpLock, timeout: float | None = None) -> bool:
    """Take the lock, waiting up to `timeout` seconds (None: without bound); False if it timed out."""
    try:
        lock.get(True, timeout)
    except LockBusy:
        return False
    return True


def spin_unlock(lock: PcpLock) -> None:
    lock.put(True)


def spin_is_locked(lock: PcpLock) -> bool:
    return lock.empty()


class spin_locked:
    """spin_lock on entry, spin_unlock on exit."""

    __slots__ = ("lock",)

    def __init__(self, lock: PcpLock) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        self.lock.get()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None:
        self.lock.put(True)


class UnsharedPcpLock:
    """pcp->lock for one thread of control (the virtual engine's replays, unit tests): a trylock of the
    held lock fails, a blocking acquisition of it raises (nobody else could release it), and a release
    of a free lock raises, as threading.Lock's would."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = False

    def get_nowait(self) -> object:
        if self._held:
            raise LockBusy
        self._held = True
        return True

    def put(self, item: object, /) -> None:
        if not self._held:
            raise RuntimeError("release of an unlocked pcp lock")
        self._held = False

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        if self._held and block:
            raise RuntimeError("spin_lock of a held UnsharedPcpLock: its holder is this thread, it would deadlock")
        return self.get_nowait()

    def empty(self) -> bool:
        return self._held
