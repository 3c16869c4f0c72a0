"""node.mm's locks are its callers' (node.mm.lock): UnsharedLock by default, a passed lock otherwise."""

import threading

import pytest

from node.mm.bugs import InterleavedLock
from node.mm.lock import UnsharedLock
from node.mm.pcp_rcu import RcuPerCpuPages
from node.mm.zone import Zone


def test_an_unshared_lock_fails_a_trylock_while_held_and_refuses_to_deadlock():
    lock = UnsharedLock()
    with lock:
        assert lock.locked() and lock.acquire(blocking=False) is False
        with pytest.raises(RuntimeError, match="would deadlock"):
            lock.acquire()
    assert not lock.locked() and lock.acquire(blocking=False) is True
    lock.release()
    with pytest.raises(RuntimeError, match="release of an unlocked"):
        lock.release()


class CountingLock(InterleavedLock):
    """A threading.Lock that counts its acquisitions: proof the model takes the lock it was given."""

    acquisitions = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.acquisitions += 1
        return super().acquire(blocking, timeout)


def test_zone_and_rcu_pcp_take_the_lock_their_caller_passes():
    assert isinstance(Zone(0, 8192, 1).lock, UnsharedLock)
    lock = CountingLock()
    zone = Zone(0, 8192, 1, lock=lock)
    assert len(zone.rmqueue_bulk(0, 3, 0)) == 3 and lock.acquisitions == 1 and not lock.locked()
    assert isinstance(RcuPerCpuPages(0).drain_lock, UnsharedLock)
    drain_lock = threading.Lock()
    assert RcuPerCpuPages(0, drain_lock=drain_lock).drain_lock is drain_lock
