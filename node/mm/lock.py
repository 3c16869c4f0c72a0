"""The spinlocks of the model (zone->lock, pcpu_drain_mutex's stand-in) as a Protocol its callers satisfy.

The model takes a lock but never makes one a thread could share: a driver that runs the model from
several threads passes its own (the wall's processes pass a threading.Lock), so node.mm imports no
threading. Without one, a structure gets an `UnsharedLock`: correct for one thread of control (the
virtual engine, unit tests), where a second acquisition while held can only be a bug or a trylock
that must fail.
"""

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
