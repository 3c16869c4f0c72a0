"""The rule of the remote pcp lock drain (v6.0+): a drainer elsewhere takes this CPU's pcp lock and pages.

A rule module (docs/engine.md): it decides, and waits only by asking its driver. In v6.0
drain_pages_zone() takes the target CPU's lock from the draining CPU (v6.1 mm/page_alloc.c:
`pcp = per_cpu_ptr(zone->per_cpu_pageset, cpu); if (pcp->count) { spin_lock(&pcp->lock);
free_pcppages_bulk(zone, pcp->count, pcp, 0); ... }`), and the target's own fast path meets it
with a trylock and falls back to the buddy ("spin_trylock_irqsave ... will only be true when
contending with a remote drain", Mel Gorman, "mm/page_alloc: replace local_lock with normal
spinlock", v6.0). Across processes the lock is held under a grant (node.grants): taken with the
pages, kept until the drainer's commit or abort, or until its lease runs out.

From v6.10 drain_pages_zone is a loop of chunks of at most batch << CONFIG_PCP_BATCH_SCALE_MAX pages,
the lock taken and dropped around each (node.mm.drain_chunked has both forms): one grant is one
chunk, and the reply's `left` is the loop's `count` after it, so the drainer commits, frees, and asks
again while it is not 0. The CPU's own trylock can win between two grants, as between two chunks.
The node picks the form from its kernel profile (`drain`):
- "one-hold" (v6.0 to v6.9): pcp->count read unlocked, 0 skips the lock; then every page, left 0;
- "chunked" (55f77df7d715, v6.10): the count is read once, unlocked, at the first request and then
  carried by the drainer (`left`), so a refill between chunks is not drained;
- "count-locked" (66eca1021a42, v6.11): the lock first, then pcp->count, at every chunk, until it is 0.

`take` is a generator: it yields once, the seconds the driver may wait for the lock, and is
sent back whether the lock was acquired. The wall driver (node.remote_lock) waits off the asyncio
loop on a threading.Lock; the virtual one (node.virtual.drain) suspends the drainer's fiber on a
node.virtual.pcp_lock.VirtualPcpLock in virtual time.
"""

from collections.abc import Callable, Generator
from typing import NamedTuple

from node.api.errors import FailedPrecondition
from node.grants import EXPIRED, Grant, GrantTable, base_pages
from node.mm.constants import Page
from node.mm.lock import spin_unlock
from node.mm.pcp import PerCpuPages
from node.mm.pcp_high import PCP_BATCH_SCALE_MAX
from node.mm.profile import DRAIN_PAGES_ZONE, KernelProfile
from node.shared.transfer_log import drain_ran


def check_remote_lock(cpu: int, has_pcp_lock: bool, profile: KernelProfile, cpu_offline: bool) -> None:
    """Whether a drainer on another CPU may take `cpu`'s pcp lock (drain_pages_zone from afar), as
    both node drivers ask before a lock_drain: v6.0 and later guard the pcp with a spinlock any CPU
    may take, earlier kernels with a local_lock only its own CPU holds, which an offline CPU
    (hotplug: nothing runs on it) does not contend; lists behind an RCU pointer have no pcp lock.
    Raises FailedPrecondition where it may not."""
    if not has_pcp_lock:
        raise FailedPrecondition(
            f"cpu {cpu} keeps its pcp lists behind an RCU pointer: "
            "there is no pcp lock to take (drain it with rcu-swap or workqueue)"
        )
    if not profile.remote_drain and not cpu_offline:
        raise FailedPrecondition(
            f"cpu {cpu} runs kernel {profile.name}: its pcp is "
            f"guarded by a {profile.pcp_lock} no other CPU can take "
            "(drain it with workqueue)"
        )


class Taken(NamedTuple):
    """One lock_drain's answer (pb.PcpLockDrainReply)."""

    token: int  # 0: nothing granted
    pages: list[Page]
    lock_wait_s: float
    left: int  # drain_pages_zone's count after this chunk: the drainer asks again while it is not 0


class PcpLockGrants(GrantTable):
    def __init__(
        self,
        pcp: PerCpuPages,
        clock: Callable[[], float],
        fencing: bool = True,
        transfer_log=None,
        drain: str = "one-hold",
    ):
        super().__init__(clock, transfer_log)
        if drain not in DRAIN_PAGES_ZONE:  # the forms a profile names (KernelProfile.drain)
            raise ValueError(f"unknown drain_pages_zone form {drain!r}; known: {', '.join(DRAIN_PAGES_ZONE)}")
        self.pcp = pcp
        self.drain = drain
        # False only for the checker's broken-variant test (--unsafe-skip-fencing): a late commit is
        # then accepted, and the pages end up both here and in the zone.
        self.fencing = fencing
        # Called with the seconds a drainer waited for the lock, once per grant: metrics.
        self.on_wait: Callable[[float], None] | None = None

    def take(
        self, lease_s: float, wait_timeout: float, left: int = 0, request_id: int = 0
    ) -> Generator[float, bool, Taken]:
        """Take the pcp lock (the driver waits at most `wait_timeout`) and one chunk of pages: all of
        them under "one-hold". `left` is the previous answer's, 0 for a drain's first chunk;
        `request_id` the drainer's (node.grants: a request abandoned meanwhile is refused, the lock
        given back).

        Nothing is granted (token 0, no pages) if there was nothing to take; `left` may still be
        non-zero then ("chunked": the pages counted up front were allocated meanwhile). Either way
        the transfer log's `drain` line says this chunk ran here, before the drainer hears."""
        taken = yield from self._take(lease_s, wait_timeout, left, request_id)
        drain_ran(self.transfer_log, "lock", base_pages(taken.pages))
        return taken

    def _take(self, lease_s: float, wait_timeout: float, left: int, request_id: int) -> Generator[float, bool, Taken]:
        self.check_abandoned(request_id)
        pcp = self.pcp
        drain = self.drain
        count = to_drain = 0
        if drain != "count-locked":
            # Read before the lock, as the kernel does: v6.0's `if (pcp->count)` and v6.10's
            # READ_ONCE, whose value the drainer then carries from chunk to chunk.
            count = left if drain == "chunked" and left else pcp.count
            if count == 0:
                return Taken(0, [], 0.0, 0)
            if drain == "chunked":
                to_drain = min(count, pcp.batch << PCP_BATCH_SCALE_MAX)
        t0 = self.clock()
        if not (yield wait_timeout):
            raise FailedPrecondition(f"pcp lock of cpu {pcp.cpu} not acquired within {wait_timeout}s")
        if self.was_abandoned(request_id):  # while it waited for the lock
            spin_unlock(pcp.lock)
            self.check_abandoned(request_id)
        granted_at = self.clock()
        wait = granted_at - t0
        if drain == "one-hold":
            count = to_drain = pcp.count  # free_pcppages_bulk(zone, pcp->count, pcp, 0) under the lock
        elif drain == "count-locked":
            count = pcp.count
            to_drain = min(count, pcp.batch << PCP_BATCH_SCALE_MAX)
        pages = pcp.take_bulk(to_drain, 0)
        if not pages:  # emptied while we waited for the lock, or before this chunk
            spin_unlock(pcp.lock)
            return Taken(0, [], wait, count - to_drain)
        if self.on_wait is not None:
            self.on_wait(wait)
        grant = self.open(pages, granted_at, lease_s, first=not left, request_id=request_id)
        return Taken(grant.token, pages, wait, count - to_drain)

    def _keep(self, pages: list[Page]) -> None:
        self.pcp.restore(pages)

    def _release(self) -> None:
        spin_unlock(self.pcp.lock)

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
