"""The node's half of an rcu-swap drain: swap, wait for a grace period, hand the old set over.

Runs on the interconnect (the asyncio thread), never on the CPU thread: the CPU's fast
path keeps running on whichever set `lp` points to, and nothing here waits for it except
through its quiescent states (node.rcu). Across processes the drain is two steps, in the
same commit-then-free order as the remote pcp lock:

1. `swap_and_take`: under the pcp's drainer lock, swap `lp` to the empty set, wait (at most
   `gp_timeout`) for the CPU's next quiescent state, then take the old set's pages off it.
   They are in flight: the node still reports them (Snapshot.inflight) until step 2.
2. `release(token, commit)`: commit=True, the drainer frees them into the zone next and
   they are no longer this node's; commit=False, the node keeps them (stranded, past their
   grace period, first to go at the next drain). A grant not released within its lease is
   kept the same way, and a late commit is refused, so the drainer never frees pages the
   node still counts.

A grace period that times out is counted (node.rcu's `gp_timeouts`); the old set stays the CPU's, as
the spare with its grace period pending, and the next swap waits for that one first.

Each grant is recorded as the remote pcp lock's are (node.remote_lock.Grant: granted, ended, how,
late commits refused), so a retried commit is answered again and the chaos checker reads the
same records (Snapshot.grants) whichever strategy drained.
"""

import asyncio
import collections

from node.api.errors import FailedPrecondition
from node.remote_lock import ABORTED, COMMITTED, EXPIRED, KEEP_OUTCOMES, Grant
from node.shared.transfer_log import blocks


class RcuDrain:
    def __init__(self, pcp, rcu, clock, transfer_log=None):
        self.pcp = pcp  # node.mm.pcp_rcu.RcuPerCpuPages
        self.rcu = rcu  # node.rcu.RcuCpu of this CPU
        self.clock = clock
        self.transfer_log = transfer_log  # node.shared.transfer_log.TransferLog, or None
        self._next_token = 1
        self.held: Grant | None = None
        self._taken: list = []  # pages off the sets while a later grace period is awaited
        self.grants_log: collections.OrderedDict[int, Grant] = collections.OrderedDict()
        self.grants = 0
        self.drained_pages = 0  # base pages the drainer committed to free
        self.lease_expiries = 0
        self.stale_commits_refused = 0  # commits that came after the lease ran out (the node kept the pages)

    async def swap_and_take(self, lease_s: float, gp_timeout: float) -> tuple[int, list, float, bool]:
        """Returns (token, pages, grace_period_s, gp_ok); token 0 when there is nothing to hand over."""
        pcp = self.pcp
        if self.held is not None:
            raise FailedPrecondition(f"cpu {pcp.cpu}: the rcu-swap grant {self.held.token} is not released yet")
        if pcp.count == 0:
            return 0, [], 0.0, True
        if not pcp.drain_lock.acquire(blocking=False):
            raise FailedPrecondition(f"cpu {pcp.cpu}: another rcu-swap drain is in progress")
        try:
            gp_s, ok = 0.0, True
            pages = []
            if pcp.gp_pending:  # an earlier grace period timed out: the spare may still be in use
                ok, waited = await self._grace_period(gp_timeout)
                gp_s += waited
            if ok:
                pages = self._taken = pcp.take_spare()
                if pcp.lp.count:
                    pcp.swap()
                    ok, waited = await self._grace_period(gp_timeout)
                    gp_s += waited
                    if ok:
                        pages += pcp.take_spare()
        finally:
            self._taken = []
            pcp.drain_lock.release()
        if not pages:
            return 0, [], gp_s, ok
        token = self._next_token
        self._next_token += 1
        grant = Grant(token, pages, self.clock(), lease_s)
        grant.expiry = asyncio.get_running_loop().call_later(lease_s, self._expire, grant)
        self.held = grant
        self.grants += 1
        self.grants_log[token] = grant
        while len(self.grants_log) > KEEP_OUTCOMES:
            self.grants_log.popitem(last=False)
        return token, pages, gp_s, ok

    async def release(self, token: int, commit: bool) -> None:
        grant = self.held
        if grant is None or grant.token != token:
            past = self.grants_log.get(token)
            if commit and past is not None and past.outcome == COMMITTED:
                return  # a retry of a commit whose reply was lost
            if commit:
                self.stale_commits_refused += 1
                if past is not None:
                    past.stale_commits_refused += 1
            raise FailedPrecondition(
                f"token {token} holds no rcu-swap grant of cpu {self.pcp.cpu} "
                "(released, or its lease expired and the node kept the pages)"
            )
        assert grant.expiry is not None, "a grant is held only once its lease timer is set"
        grant.expiry.cancel()
        if commit:
            self.drained_pages += sum(1 << order for _, order, _ in grant.pages)
            if self.transfer_log is not None:
                self.transfer_log.write("commit", pages=blocks(grant.pages))
        else:
            self.pcp.strand(grant.pages)
        self._end(grant, COMMITTED if commit else ABORTED)

    def discard(self) -> None:
        """Forget the grant in flight, if any: this CPU was declared dead and the zone took its pages
        back; the drainer's late commit is refused."""
        if self.held is not None:
            assert self.held.expiry is not None, "a grant is held only once its lease timer is set"
            self.held.expiry.cancel()
            self._end(self.held, EXPIRED)

    def inflight(self) -> list:
        return list(self.held.pages) if self.held else list(self._taken)

    def records(self) -> list[Grant]:
        return list(self.grants_log.values())

    def _expire(self, grant: Grant) -> None:
        if self.held is grant:
            self.lease_expiries += 1
            self.pcp.strand(grant.pages)
            self._end(grant, EXPIRED)

    def _end(self, grant: Grant, outcome: str) -> None:
        grant.outcome = outcome
        grant.ended_at = self.clock()
        self.held = None

    async def _grace_period(self, timeout: float) -> tuple[bool, float]:
        t0 = self.clock()
        ok = await asyncio.get_running_loop().run_in_executor(None, self.rcu.wait_for_qs, timeout)
        waited = self.clock() - t0
        if ok:
            self.pcp.grace_period_elapsed()
        return ok, waited
