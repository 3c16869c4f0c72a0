"""The remote side of drain_pages_zone: a drainer elsewhere holding this CPU's pcp lock.

In v6.0+ the draining CPU takes the target CPU's pcp->lock and frees its lists to the
zone. Across processes that is three steps: the drainer asks for the lock and the
pages (`lock_and_take`), frees them into the zone, then releases the lock saying
whether the zone took them (`unlock`). This module is the node's half. It runs on the
interconnect (the asyncio thread) and never on the CPU thread: the pcp lock is a
real lock that the CPU thread's fast path meets with a trylock.

The grant is a lease with a fencing token. If the drainer does not unlock within the
lease, the node releases the lock itself so its CPU cannot be wedged; the pages taken
stay recorded as in flight (neither on the lists nor given back), because the zone may
or may not have them; the drainer's late `unlock` then only settles that record.
"""

import asyncio
from dataclasses import dataclass

from node.api.errors import FailedPrecondition


MAX_LEASE_S = 60.0  # the longest lease a drainer may ask for (node.server validates it)


@dataclass
class Grant:
    token: int
    pages: list
    granted_at: float = 0.0
    expiry: asyncio.TimerHandle | None = None


class RemotePcpLock:
    def __init__(self, pcp, clock):
        self.pcp = pcp
        self.clock = clock
        self._next_token = 1
        self.held: Grant | None = None
        self.expired: dict[int, list] = {}  # token -> pages in flight after a lapsed lease
        self.lease_expiries = 0
        self.grants = 0
        self.drained_pages = 0  # base pages a remote drainer confirmed freed (freed=True)
        # Metrics hooks, called with seconds once per grant: how long the drainer waited for
        # the lock, and how long it held it (until unlock or lease expiry).
        self.on_wait = None
        self.on_hold = None
        self._settling = set()  # give-back tasks in progress

    async def lock_and_take(self, lease_s: float, wait_timeout: float) -> tuple[int, list, float]:
        """Take the pcp lock (waiting off the event loop) and every page on the lists.

        Returns (token, pages, lock_wait_s); token 0 and no pages if the lists were empty
        (drain_pages_zone only locks when pcp->count is non-zero)."""
        if self.pcp.count == 0:
            return 0, [], 0.0
        t0 = self.clock()
        await self._acquire(wait_timeout)
        granted_at = self.clock()
        wait = granted_at - t0
        pages = self.pcp.take_bulk(self.pcp.count, 0)
        token = self._next_token
        self._next_token += 1
        grant = Grant(token, pages, granted_at)
        self.grants += 1
        if self.on_wait is not None:
            self.on_wait(wait)
        grant.expiry = asyncio.get_running_loop().call_later(lease_s, self._expire, grant)
        self.held = grant
        return token, pages, wait

    async def unlock(self, token: int, freed: bool) -> None:
        grant = self.held
        if grant is not None and grant.token == token:
            grant.expiry.cancel()
            if freed:
                self.drained_pages += _base_pages(grant.pages)
            else:
                self.pcp.restore(grant.pages)
            self.held = None
            self.pcp.lock.release()
            self._held_for(grant)
            return
        if token in self.expired:
            if freed:
                pages = self.expired.pop(token)
                self.drained_pages += _base_pages(pages)
                settled = "settled as freed"
            else:
                # Answer now; the pages go back once the lock is free (it may be held by
                # a newer grant) and stay counted as in flight until then.
                pages = self.expired[token]
                task = asyncio.get_running_loop().create_task(self._give_back(token))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)
                settled = "to be returned to the lists"
            raise FailedPrecondition(f"lease of token {token} had expired: lock already released, "
                                     f"{len(pages)} pages {settled}")
        raise FailedPrecondition(f"token {token} does not hold the pcp lock of cpu {self.pcp.cpu}")

    def inflight(self) -> list:
        pages = list(self.held.pages) if self.held else []
        for lst in self.expired.values():
            pages.extend(lst)
        return pages

    def _expire(self, grant: Grant) -> None:
        if self.held is grant:
            self.held = None
            self.expired[grant.token] = grant.pages
            self.lease_expiries += 1
            self.pcp.lock.release()
            self._held_for(grant)

    def _held_for(self, grant: Grant) -> None:
        if self.on_hold is not None:
            self.on_hold(self.clock() - grant.granted_at)

    async def _give_back(self, token: int) -> None:
        """Put the pages of an expired grant, whose free the drainer says did not happen,
        back on the lists. The lock may be held by a newer grant: wait for it off the
        event loop (that grant's lease bounds the wait), so its unlock and lease timer,
        which run on this loop, can still release it."""
        await self._acquire(MAX_LEASE_S)
        try:
            self.pcp.restore(self.expired.pop(token, []))  # [] if settled meanwhile
        finally:
            self.pcp.lock.release()

    async def _acquire(self, timeout: float) -> None:
        lock = self.pcp.lock
        if lock.acquire(blocking=False):
            return
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(None, lock.acquire, True, timeout)
        try:
            ok = await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The caller went away; if the lock arrives anyway, hand it straight back.
            fut.add_done_callback(lambda f: f.result() and lock.release())
            raise
        if not ok:
            raise FailedPrecondition(f"pcp lock of cpu {self.pcp.cpu} not acquired within {timeout}s")


def _base_pages(pages) -> int:
    return sum(1 << order for _, order, _ in pages)
