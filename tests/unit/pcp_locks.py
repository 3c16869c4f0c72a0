"""pcp->lock stand-ins for replaying interleavings on the pure model: a threading.Lock whose acquire and
release a test may extend (what another CPU does at that moment)."""

import threading


class LockWrapper:
    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
