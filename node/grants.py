"""A CPU's grants of its pcp pages to a remote drainer: tokens, leases, outcomes and fencing.

A rule module (docs/engine.md): it decides and does no waiting. Both remote drains hand a
drainer elsewhere the pages of this CPU in two steps, take then commit, and the same rule
makes a crash or a lost message at any point safe (node.remote_lock explains the order):

- one grant at a time, named by a token never used again on this CPU;
- the holder of the current token ends it: commit (the pages leave this CPU for good, and
  only then may the drainer free them into the zone) or abort (they stay);
- a grant not ended within its lease expires: its pages stay this CPU's, and the late
  commit of its token is refused (fencing), so a stale drainer never frees pages this CPU
  uses again; a retried commit of a committed grant succeeds again (its first reply may
  have been lost), and the recent outcomes are kept for that and for the chaos checker;
- a drainer that stopped waiting for the answer to its request (its bound ran out, the answer
  may still come) abandons it by the request's id: a grant made for it is aborted at once rather
  than holding this CPU's pages, and pcp lock, for the rest of its lease; a request abandoned
  before it was granted is refused when it would be (`check_abandoned`).

What "the pages stay" means and what a refusal says is each strategy's (`_keep`,
`_release`, `_refuse`: node.remote_lock_rule, node.rcu_drain_rule); when the lease runs out
is the driver's (`_arm`, `_disarm`: a timer on the asyncio loop, or an event at a virtual
instant). An expiry that comes after its grant ended is a no-op, so a driver need not
cancel it.
"""

import collections
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from node.api.errors import FailedPrecondition
from node.mm.constants import Page
from node.shared.transfer_log import blocks

KEEP_OUTCOMES = 1024  # grants remembered after they end (retried commits, the checker)
# Abandoned request ids remembered, for a request that arrives (or ends its wait) after its abandon.
# A drainer abandons a request within its own bound and sends one request at a time to a CPU, so an
# abandoned request still on its way is one of the last few.
KEEP_ABANDONED = 64

HELD, COMMITTED, ABORTED, EXPIRED = "held", "committed", "aborted", "expired"


@dataclass(eq=False)
class Grant:
    token: int
    pages: list[Page]
    granted_at: float
    lease_s: float
    outcome: str = HELD
    ended_at: float = 0.0
    committed_after_expiry: bool = False  # only with fencing disabled
    stale_commits_refused: int = 0
    request_id: int = 0  # the drainer's id of the request it answered; 0: none given


def base_pages(pages: list[Page]) -> int:
    return sum(1 << order for _, order, _ in pages)


class GrantTable(ABC):
    def __init__(self, clock: Callable[[], float], transfer_log=None) -> None:
        self.clock = clock
        self.transfer_log = transfer_log  # node.shared.transfer_log.TransferLog, or None
        self._next_token = 1
        self.held: Grant | None = None
        self.grants_log: collections.OrderedDict[int, Grant] = collections.OrderedDict()
        self.grants = 0
        self.drains = 0  # drains whose first grant took pages; `grants` also counts a chunked drain's others
        self.drained_pages = 0  # base pages committed to a remote drainer
        self.lease_expiries = 0
        self.stale_commits_refused = 0
        self.abandoned = 0  # grants their drainer abandoned (ended before their lease)
        self._abandoned_ids: collections.OrderedDict[int, None] = collections.OrderedDict()
        # Called with the seconds a grant was held (until its commit, abort or expiry): metrics.
        self.on_hold: Callable[[float], None] | None = None

    # ------------------------------------------------------------ the rule
    def open(
        self, pages: list[Page], granted_at: float, lease_s: float, first: bool = True, request_id: int = 0
    ) -> Grant:
        """A new grant of `pages` from `granted_at`, its lease armed. `first`: a drain's first grant
        (False for a later chunk of a chunked remote drain, node.remote_lock_rule); `request_id`: the
        drainer's id of the request it answers (see `abandon`)."""
        grant = Grant(self._next_token, pages, granted_at, lease_s, request_id=request_id)
        self._next_token += 1
        self.grants += 1
        self.drains += first
        self._arm(grant)
        self.held = grant
        self.grants_log[grant.token] = grant
        while len(self.grants_log) > KEEP_OUTCOMES:
            self.grants_log.popitem(last=False)
        return grant

    def settle(self, token: int, commit: bool) -> None:
        """The drainer holding `token` commits or aborts. A retried commit is answered again; anything
        else about a token that holds nothing is the strategy's refusal (`_refuse`)."""
        grant = self.held
        if grant is not None and grant.token == token:
            self._disarm()
            if commit:
                self.drained_pages += base_pages(grant.pages)
                if self.transfer_log is not None:
                    self.transfer_log.write("commit", pages=blocks(grant.pages))
            else:
                self._keep(grant.pages)
            self._end(grant, COMMITTED if commit else ABORTED)
            self._release()
            return
        past = self.grants_log.get(token)
        if commit and past is not None and past.outcome == COMMITTED:
            return  # a retried commit whose first reply was lost
        self._refuse(token, commit, past)

    def expire(self, grant: Grant) -> None:
        """The lease of `grant` ran out: if it still holds, its pages stay this CPU's."""
        if self.held is grant:
            self._keep(grant.pages)
            self.lease_expiries += 1
            self._end(grant, EXPIRED)
            self._release()

    def abandon(self, request_id: int) -> bool:
        """The drainer stopped waiting for the answer to its request `request_id`: the grant made for it,
        if it still holds, is aborted now (its pages stay this CPU's), and the request, if it has not
        been granted yet, never will be. Returns whether a grant ended. Request id 0 names nothing."""
        if not request_id:
            return False
        self._abandoned_ids[request_id] = None
        while len(self._abandoned_ids) > KEEP_ABANDONED:
            self._abandoned_ids.popitem(last=False)
        grant = self.held
        if grant is None or grant.request_id != request_id:
            return False
        self.abandoned += 1
        self.settle(grant.token, commit=False)  # as its drainer's abort would
        return True

    def was_abandoned(self, request_id: int) -> bool:
        return bool(request_id) and request_id in self._abandoned_ids

    def check_abandoned(self, request_id: int) -> None:
        """Refuse to grant anything for a request its drainer has abandoned (asked before a grant is
        made: at the request's arrival, and again once its wait for the lock or a grace period ends)."""
        if self.was_abandoned(request_id):
            raise FailedPrecondition(f"request {request_id} was abandoned by its drainer: nothing is granted for it")

    def discard(self) -> None:
        """Forget the current grant and its pages (they are the zone's now: this CPU was declared dead);
        the token's late commit is refused."""
        grant = self.held
        if grant is not None:
            self._disarm()
            self._end(grant, EXPIRED)
            self._release()

    def holder_token(self) -> int:
        """The token of the grant holding now; 0 if none."""
        return self.held.token if self.held else 0

    def inflight(self) -> list[Page]:
        """Pages taken by the current grant: still this CPU's until committed."""
        return list(self.held.pages) if self.held else []

    def records(self) -> list[Grant]:
        return list(self.grants_log.values())

    def _end(self, grant: Grant, outcome: str) -> None:
        grant.outcome = outcome
        grant.ended_at = self.clock()
        self.held = None
        if self.on_hold is not None:
            self.on_hold(grant.ended_at - grant.granted_at)

    # ------------------------------------------------------------ the strategy's
    @abstractmethod
    def _keep(self, pages: list[Page]) -> None:
        """An aborted or expired grant's pages stay this CPU's."""

    def _release(self) -> None:  # noqa: B027 (an optional hook: nothing to do by default)
        """After a grant ended: what it held of the pcp is free again."""

    @abstractmethod
    def _refuse(self, token: int, commit: bool, past: Grant | None) -> None:
        """`token` holds nothing now and this is no retried commit: raise, or (a broken variant) accept."""

    # ------------------------------------------------------------ the driver's
    @abstractmethod
    def _arm(self, grant: Grant) -> None:
        """Call `expire(grant)` once its lease (`grant.lease_s` from now) runs out."""

    def _disarm(self) -> None:  # noqa: B027 (an optional hook: the expiry would be a no-op)
        """The held grant ended before its lease: its expiry may be dropped (it would be a no-op)."""
