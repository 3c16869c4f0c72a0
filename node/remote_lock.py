"""The remote side of drain_pages_zone: a drainer elsewhere holding this CPU's pcp lock.

In v6.0+ the draining CPU takes the target CPU's pcp->lock and frees its lists to the
zone. Across processes that is three steps, and their order is what makes a crash or a
lost message at any point safe:

1. `lock_and_take`: the drainer gets the lock and every page on the lists, under a
   lease with a fencing token. The pages are still this node's (in flight).
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

It runs on the interconnect (the asyncio thread), never on the CPU thread: the pcp
lock is a real lock that the CPU thread's fast path meets with a trylock.
"""

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass

from node.api.errors import FailedPrecondition
from node.shared.transfer_log import blocks

KEEP_OUTCOMES = 1024  # grants remembered after they end (retried commits, the checker)

HELD, COMMITTED, ABORTED, EXPIRED = "held", "committed", "aborted", "expired"


@dataclass
class Grant:
    token: int
    pages: list
    granted_at: float
    lease_s: float
    expiry: asyncio.TimerHandle | None = None
    outcome: str = HELD
    ended_at: float = 0.0
    committed_after_expiry: bool = False  # only with fencing disabled
    stale_commits_refused: int = 0


class RemotePcpLock:
    def __init__(self, pcp, clock, fencing: bool = True, transfer_log=None):
        self.pcp = pcp
        self.transfer_log = transfer_log  # node.shared.transfer_log.TransferLog, or None
        self.clock = clock
        # False only for the checker's broken-variant test (--unsafe-skip-fencing): a
        # late commit is then accepted, and the pages end up both here and in the zone.
        self.fencing = fencing
        self._next_token = 1
        self.held: Grant | None = None
        self.grants_log: collections.OrderedDict[int, Grant] = collections.OrderedDict()
        self.lease_expiries = 0
        self.stale_commits_refused = 0
        self.grants = 0
        self.drained_pages = 0  # base pages committed to a remote drainer
        # Metrics hooks, called with seconds once per grant: how long the drainer waited for
        # the lock, and how long it held it (until unlock or lease expiry).
        self.on_wait: Callable[[float], None] | None = None
        self.on_hold: Callable[[float], None] | None = None

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
        if not pages:  # emptied while we waited for the lock
            self.pcp.lock.release()
            return 0, [], wait
        grant = Grant(self._next_token, pages, granted_at, lease_s)
        self._next_token += 1
        self.grants += 1
        if self.on_wait is not None:
            self.on_wait(wait)
        grant.expiry = asyncio.get_running_loop().call_later(lease_s, self._expire, grant)
        self.held = grant
        self._log(grant)
        return grant.token, pages, wait

    async def unlock(self, token: int, commit: bool) -> None:
        grant = self.held
        if grant is not None and grant.token == token:
            assert grant.expiry is not None, "a grant is held only once its lease timer is set"
            grant.expiry.cancel()
            if commit:
                self.drained_pages += _base_pages(grant.pages)
                if self.transfer_log is not None:
                    self.transfer_log.write("commit", pages=blocks(grant.pages))
            else:
                self.pcp.restore(grant.pages)
            self._end(grant, COMMITTED if commit else ABORTED)
            self.pcp.lock.release()
            return
        grant = self.grants_log.get(token)
        if grant is None:
            raise FailedPrecondition(
                f"token {token} was never granted by cpu {self.pcp.cpu} (or is too old to remember)"
            )
        if grant.outcome == COMMITTED and commit:
            return  # a retried commit whose first reply was lost
        if grant.outcome == EXPIRED and commit and not self.fencing:
            # Broken variant: the stale drainer is told to go ahead, and frees into the
            # zone pages that are back on this CPU's lists (and still this CPU's: no commit
            # is logged, so the checker sees the page with two owners).
            grant.committed_after_expiry = True
            self.drained_pages += _base_pages(grant.pages)
            return
        if commit:
            grant.stale_commits_refused += 1
            self.stale_commits_refused += 1
        raise FailedPrecondition(
            f"token {token} no longer holds the pcp lock of cpu {self.pcp.cpu}: "
            f"it was {grant.outcome}"
            + (" (lease ran out: its pages are back on the lists)" if grant.outcome == EXPIRED else "")
        )

    def holder_token(self) -> int:
        """The token of the grant holding the lock now; 0 if no remote drainer holds it."""
        return self.held.token if self.held else 0

    def inflight(self) -> list:
        """Pages taken by the current grant: still this CPU's until committed."""
        return list(self.held.pages) if self.held else []

    def records(self) -> list[Grant]:
        return list(self.grants_log.values())

    def discard(self) -> None:
        """Forget the current grant and its pages (they are the zone's now: this CPU was
        declared dead). The lock is released; the token's late commit is refused."""
        grant = self.held
        if grant is not None:
            assert grant.expiry is not None, "a grant is held only once its lease timer is set"
            grant.expiry.cancel()
            self._end(grant, EXPIRED)
            self.pcp.lock.release()

    def _expire(self, grant: Grant) -> None:
        if self.held is grant:
            self.pcp.restore(grant.pages)
            self.lease_expiries += 1
            self._end(grant, EXPIRED)
            self.pcp.lock.release()

    def _end(self, grant: Grant, outcome: str) -> None:
        grant.outcome = outcome
        grant.ended_at = self.clock()
        self.held = None
        if self.on_hold is not None:
            self.on_hold(grant.ended_at - grant.granted_at)

    def _log(self, grant: Grant) -> None:
        self.grants_log[grant.token] = grant
        while len(self.grants_log) > KEEP_OUTCOMES:
            self.grants_log.popitem(last=False)

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
