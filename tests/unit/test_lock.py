"""node.mm's locks are its callers' (node.mm.lock): UnsharedLock / UnsharedPcpLock by default, a passed
lock otherwise; pcp->lock in the shape of the wall's queue.SimpleQueue (get_nowait/put/get/empty)."""

import threading

import pytest

from node.cpu import Cpu
from node.mm.constants import MIGRATE_MOVABLE
from node.mm.lock import (
    LockBusy,
    UnsharedLock,
    UnsharedPcpLock,
    spin_is_locked,
    spin_lock,
    spin_locked,
    spin_trylock,
    spin_unlock,
)
from node.mm.pcp import PerCpuPages, rmqueue
from node.mm.pcp_free import free_unref_page
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


def test_an_unshared_pcp_lock_fails_a_trylock_while_held_and_refuses_to_deadlock():
    lock = UnsharedPcpLock()
    with spin_locked(lock):
        assert spin_is_locked(lock) and spin_trylock(lock) is False
        with pytest.raises(LockBusy):
            lock.get_nowait()
        with pytest.raises(RuntimeError, match="would deadlock"):
            spin_lock(lock)
    assert not spin_is_locked(lock) and spin_trylock(lock) is True
    spin_unlock(lock)
    with pytest.raises(RuntimeError, match="release of an unlocked"):
        spin_unlock(lock)


def test_the_wall_pcp_lock_is_a_real_lock_between_threads():
    """Cpu.pcp_lock: another thread's trylock fails while one holds it, its timed spin_lock times out,
    and an untimed one waits until the holder lets go."""
    lock = Cpu(0, clock=lambda: 0.0, sleep=lambda s: None).pcp_lock()
    assert spin_trylock(lock) and spin_is_locked(lock)
    seen: list[object] = []
    other = threading.Thread(target=lambda: seen.extend([spin_trylock(lock), spin_lock(lock, 0.01)]))
    other.start()
    other.join(5)
    assert seen == [False, False]
    got = threading.Event()

    def waiter() -> None:
        spin_lock(lock)
        got.set()

    other = threading.Thread(target=waiter)
    other.start()
    assert not got.wait(0.05)  # still held here: the waiter cannot have it
    spin_unlock(lock)
    assert got.wait(5) and spin_is_locked(lock)  # handed to the waiter, which holds it now
    other.join(5)
    spin_unlock(lock)
    assert not spin_is_locked(lock)


def test_the_fast_path_falls_back_to_the_buddy_while_another_thread_holds_the_wall_lock():
    zone = Zone(0, 8192, 1, lock=threading.Lock())
    lock = Cpu(0, clock=lambda: 0.0, sleep=lambda s: None).pcp_lock()
    pcp = PerCpuPages(0, high=100, batch=8, lock=lock)
    pfn = rmqueue(zone, pcp, 0, MIGRATE_MOVABLE)
    assert pfn is not None and pcp.count == 7 and not spin_is_locked(lock)
    holder = threading.Thread(target=spin_lock, args=(lock,))
    holder.start()
    holder.join(5)
    assert spin_is_locked(lock)
    assert free_unref_page(zone, pcp, pfn, 0, MIGRATE_MOVABLE) == "trylock"
    assert rmqueue(zone, pcp, 0, MIGRATE_MOVABLE) is not None
    assert pcp.count == 7 and pcp.stats.trylock_fail_alloc == 1 and pcp.stats.trylock_fail_free == 1
    spin_unlock(lock)


class CountingLock(UnsharedLock):
    """A zone->lock that counts its acquisitions: proof the model takes the lock it was given."""

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
    assert all(isinstance(s.lock, UnsharedPcpLock) for s in RcuPerCpuPages(0).pcplists)
    assert isinstance(PerCpuPages(0).lock, UnsharedPcpLock)
    drain_lock = threading.Lock()
    assert RcuPerCpuPages(0, drain_lock=drain_lock).drain_lock is drain_lock
    list_locks = (UnsharedPcpLock(), UnsharedPcpLock())
    assert tuple(s.lock for s in RcuPerCpuPages(0, list_locks=list_locks).pcplists) == list_locks
