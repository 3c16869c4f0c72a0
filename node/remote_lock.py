"""The remote side of drain_pages_zone: a drainer elsewhere holding this CPU's pcp lock.

In v6.0+ the draining CPU takes the target CPU's pcp->lock and frees its lists to the
zone. Across processes that is three steps, and their order is what makes a crash or a
lost message at any point safe:

1. `lock_and_take`: the drainer gets the lock and every page on the lists (from v6.10, one
   chunk of them: node.remote_lock_rule), under a lease with a fencing token. The pages are
   still this node's (in flight).
2. `unlock(token, commit=True)`: the node checks that `token` still holds the lock and
   only then lets the pages go (they leave this node for good); the drainer frees them
   into the zone only after this succeeds. `commit=False` puts them back.
3. The drainer frees the pages into the zone (a local call under zone->lock).

If the drainer does not come back within the lease (it died, froze or was cut off),
the node puts the pages back on its lists and releases the lock itself, so its CPU is
never wedged, and refuses that token's late commit: a stale drainer can never free
pages this CPU is using again. A commit whose reply was lost is retried and succeeds
again (the node remembers recent outcomes), so the drainer always learns whether the
pages left; if this process dies instead, the coordinator takes every page it recorded
for this CPU back (page_alloc_cpu_dead), committed or not.

Those rules are node.remote_lock_rule's and node.grants'; this module is their wall driver:
it waits for the lock and for the lease on the interconnect (the asyncio thread), never on
the CPU thread, as the pcp lock is a real lock the CPU thread's fast path meets with a
trylock. node.virtual.drain drives the same rules in virtual time.
"""

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

from node.grants import Grant, GrantTable
from node.mm.lock import spin_lock, spin_trylock, spin_unlock
from node.remote_lock_rule import PcpLockGrants, Taken

T = TypeVar("T")


async def run_steps(steps: Generator[float, bool, T], wait: Callable[[float], Awaitable[bool]]) -> T:
    """Run a rule's generator (node.remote_lock_rule, node.rcu_drain_rule) on the asyncio loop: each
    value it yields is a bound in seconds for `wait`, whose answer is sent back. If the wait raises (the
    caller was cancelled), the generator is closed at once, so its cleanup runs now, not at collection."""
    try:
        bound = next(steps)
        while True:
            bound = steps.send(await wait(bound))
    except StopIteration as done:
        return done.value
    finally:
        steps.close()


class AsyncLease(GrantTable):
    """A grant's lease as a timer on the running asyncio loop (node.grants' driver hooks)."""

    _expiry: asyncio.TimerHandle | None = None

    def _arm(self, grant: Grant) -> None:
        self._expiry = asyncio.get_running_loop().call_later(grant.lease_s, self.expire, grant)

    def _disarm(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None


class RemotePcpLock(AsyncLease, PcpLockGrants):
    async def lock_and_take(self, lease_s: float, wait_timeout: float, left: int = 0, request_id: int = 0) -> Taken:
        """Take the pcp lock (waiting off the event loop) and one chunk of pages (node.remote_lock_rule:
        every page under a one-hold profile); token 0 and no pages if there was nothing to take."""
        return await run_steps(self.take(lease_s, wait_timeout, left, request_id), self._acquire)

    async def unlock(self, token: int, commit: bool) -> None:
        self.settle(token, commit)

    async def _acquire(self, timeout: float) -> bool:
        lock = self.pcp.lock
        if spin_trylock(lock):
            return True
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, spin_lock, lock, timeout)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The caller went away; if the lock arrives anyway, hand it straight back.
            def hand_back(done: asyncio.Future[bool]) -> None:
                if done.result():
                    spin_unlock(lock)

            fut.add_done_callback(hand_back)
            raise
