"""The rule of the remote pcp lock drain (v6.0+): a drainer elsewhere takes this CPU's pcp lock and pages.

A rule module (docs/engine.md): it decides, and waits only by asking its driver. In v6.0
drain_pages_zone() takes the target CPU's lock from the draining CPU (v6.1 mm/page_alloc.c:
`pcp = per_cpu_ptr(zone->per_cpu_pageset, cpu); if (pcp->count) { spin_lock(&pcp->lock);
free_pcppages_bulk(zone, pcp->count, pcp, 0); ... }`), and the target's own fast path meets it
with a trylock and falls back to the buddy ("spin_trylock_irqsave ... will only be true when
contending with a remote drain", Mel Gorman, "mm/page_alloc: replace local_lock with normal
spinlock", v6.0). Across processes the lock is held under a grant (node.grants): taken with the
pages, kept until the drainer's commit or abort, or until its lease runs out.

`take` is a generator: it yields once, the seconds the driver may wait for the lock, and is
sent back whether the lock was acquired. The wall driver (node.remote_lock) waits off the asyncio
loop on a threading.Lock; the virtual one (node.virtual.drain) suspends the drainer's fiber on a
node.virtual.pcp_lock.VirtualPcpLock in virtual time.
"""

from collections.abc import Callable, Generator

from node.api.errors import FailedPrecondition
from node.grants import EXPIRED, Grant, GrantTable, base_pages
from node.mm.constants import Page
from node.mm.pcp import PerCpuPages


class PcpLockGrants(GrantTable):
    def __init__(self, pcp: PerCpuPages, clock: Callable[[], float], fencing: bool = True, transfer_log=None):
        super().__init__(clock, transfer_log)
        self.pcp = pcp
        # False only for the checker's broken-variant test (--unsafe-skip-fencing): a late commit is
        # then accepted, and the pages end up both here and in the zone.
        self.fencing = fencing
        # Called with the seconds a drainer waited for the lock, once per grant: metrics.
        self.on_wait: Callable[[float], None] | None = None

    def take(self, lease_s: float, wait_timeout: float) -> Generator[float, bool, tuple[int, list[Page], float]]:
        """Take the pcp lock (the driver waits at most `wait_timeout`) and every page on the lists.

        Returns (token, pages, lock_wait_s); token 0 and no pages if the lists were empty
        (drain_pages_zone only locks when pcp->count is non-zero)."""
        pcp = self.pcp
        if pcp.count == 0:
            return 0, [], 0.0
        t0 = self.clock()
        if not (yield wait_timeout):
            raise FailedPrecondition(f"pcp lock of cpu {pcp.cpu} not acquired within {wait_timeout}s")
        granted_at = self.clock()
        wait = granted_at - t0
        pages = pcp.take_bulk(pcp.count, 0)
        if not pages:  # emptied while we waited for the lock
            pcp.lock.release()
            return 0, [], wait
        if self.on_wait is not None:
            self.on_wait(wait)
        grant = self.open(pages, granted_at, lease_s)
        return grant.token, pages, wait

    def _keep(self, pages: list[Page]) -> None:
        self.pcp.restore(pages)

    def _release(self) -> None:
        self.pcp.lock.release()

    def _refuse(self, token: int, commit: bool, past: Grant | None) -> None:
        if past is None:
            raise FailedPrecondition(
                f"token {token} was never granted by cpu {self.pcp.cpu} (or is too old to remember)"
            )
        if past.outcome == EXPIRED and commit and not self.fencing:
            # Broken variant: the stale drainer is told to go ahead, and frees into the zone pages
            # that are back on this CPU's lists (and still this CPU's: no commit is logged, so the
            # checker sees the page with two owners).
            past.committed_after_expiry = True
            self.drained_pages += base_pages(past.pages)
            return
        if commit:
            past.stale_commits_refused += 1
            self.stale_commits_refused += 1
        raise FailedPrecondition(
            f"token {token} no longer holds the pcp lock of cpu {self.pcp.cpu}: "
            f"it was {past.outcome}"
            + (" (lease ran out: its pages are back on the lists)" if past.outcome == EXPIRED else "")
        )
