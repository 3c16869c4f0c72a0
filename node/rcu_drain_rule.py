"""The rule of an rcu-swap drain's node half: swap the list-set pointer, wait for a grace period, grant the old set.

A rule module (docs/engine.md): it decides, and waits only by asking its driver. The drain is
node.mm.pcp_rcu's design (Nicolas Saenz Julienne's RFC: rcu_replace_pointer(pcp->lp), then
synchronize_rcu(), then free the old set); node.rcu_drain says how it is split across processes.
`swap` is a generator: each value it yields is a grace period to wait for, bounded by that many
seconds, and it is sent back whether the CPU passed a quiescent state in time (node.rcu_gp). The
wall driver (node.rcu_drain) waits on a thread off the asyncio loop (node.rcu.RcuCpu.wait_for_qs);
the virtual one (node.virtual.drain) suspends the drainer's fiber in virtual time.

The pages handed over are granted as the remote pcp lock's are (node.grants): committed, aborted
or expired, late commits refused. Pages not committed come back stranded (past their grace period,
on no list the fast path uses, first to go at the next drain).
"""

from collections.abc import Callable, Generator

from node.api.errors import FailedPrecondition
from node.grants import Grant, GrantTable, base_pages
from node.mm.constants import Page
from node.mm.pcp_rcu import RcuPerCpuPages
from node.shared.transfer_log import drain_ran


def check_rcu_swap(cpu: int, has_list_sets: bool) -> None:
    """Whether `cpu` can be drained by rcu-swap, as both node drivers ask before an rcu_swap: only
    a pcp kept as RCU list sets can. Raises FailedPrecondition otherwise."""
    if not has_list_sets:
        raise FailedPrecondition(
            f"cpu {cpu} runs the v6.0 pcp spinlock, not RCU list sets (start the cluster with --strategy rcu-swap)"
        )


class RcuSwapGrants(GrantTable):
    def __init__(self, pcp: RcuPerCpuPages, clock: Callable[[], float], transfer_log=None) -> None:
        super().__init__(clock, transfer_log)
        self.pcp = pcp
        self._taken: list[Page] = []  # pages off the sets while a later grace period is awaited

    def swap(
        self, lease_s: float, gp_timeout: float, request_id: int = 0
    ) -> Generator[float, bool, tuple[int, list[Page], float, bool]]:
        """Returns (token, pages, grace_period_s, gp_ok); token 0 when there is nothing to hand over.

        Under the pcp's drainer lock: wait for a grace period still pending from a swap that timed out
        (the spare may still be in use), take the spare; swap `lp` to it if the set in use has pages,
        wait for that grace period, take the old set. The transfer log's `drain` line says the swap
        ran here, before the drainer hears. A request its drainer abandoned (node.grants: by
        `request_id`) is refused, and pages it took meanwhile come back stranded, as an aborted
        grant's do."""
        swapped = yield from self._swap(lease_s, gp_timeout, request_id)
        drain_ran(self.transfer_log, "swap", base_pages(swapped[1]))
        return swapped

    def _swap(
        self, lease_s: float, gp_timeout: float, request_id: int
    ) -> Generator[float, bool, tuple[int, list[Page], float, bool]]:
        self.check_abandoned(request_id)
        pcp = self.pcp
        if self.held is not None:
            raise FailedPrecondition(f"cpu {pcp.cpu}: the rcu-swap grant {self.held.token} is not released yet")
        if pcp.count == 0:
            return 0, [], 0.0, True
        if not pcp.drain_lock.acquire(blocking=False):
            raise FailedPrecondition(f"cpu {pcp.cpu}: another rcu-swap drain is in progress")
        try:
            gp_s, ok = 0.0, True
            pages: list[Page] = []
            if pcp.gp_pending:
                ok, waited = yield from self._gp_step(gp_timeout)
                gp_s += waited
            if ok:
                pages = self._taken = pcp.take_spare()
                if pcp.lp.count:
                    pcp.swap()
                    ok, waited = yield from self._gp_step(gp_timeout)
                    gp_s += waited
                    if ok:
                        pages += pcp.take_spare()
        except BaseException:
            # The drain ended inside a grace-period wait (its driver closed this generator: the caller was
            # cancelled, a stream its coordinator stopped answering): the pages taken before it stay this
            # CPU's, stranded, as an aborted grant's. Until 2026-12-07 they were dropped (sweep seed 4375
            # under the wall engine: a coordinator stopped past the keepalive, 25 stranded blocks lost).
            self._keep(pages)
            raise
        finally:
            self._taken = []
            pcp.drain_lock.release()
        if self.was_abandoned(request_id):  # while it waited for a grace period
            self._keep(pages)
            self.check_abandoned(request_id)
        if not pages:
            return 0, [], gp_s, ok
        grant = self.open(pages, self.clock(), lease_s, request_id=request_id)
        return grant.token, pages, gp_s, ok

    def inflight(self) -> list[Page]:
        return super().inflight() if self.held else list(self._taken)

    def _gp_step(self, timeout: float) -> Generator[float, bool, tuple[bool, float]]:
        t0 = self.clock()
        ok = yield timeout
        waited = self.clock() - t0
        if ok:
            self.pcp.grace_period_elapsed()
        return ok, waited

    def _keep(self, pages: list[Page]) -> None:
        self.pcp.strand(pages)

    def _refuse(self, token: int, commit: bool, past: Grant | None) -> None:
        if commit:
            self.stale_commits_refused += 1
            if past is not None:
                past.stale_commits_refused += 1
        raise FailedPrecondition(
            f"token {token} holds no rcu-swap grant of cpu {self.pcp.cpu} "
            "(released, or its lease expired and the node kept the pages)"
        )
