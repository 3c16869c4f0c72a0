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

Each grant is recorded as the remote pcp lock's are (node.grants.Grant: granted, ended, how,
late commits refused), so a retried commit is answered again and the chaos checker reads the
same records (Snapshot.grants) whichever strategy drained.

The rules are node.rcu_drain_rule's and node.grants'; this module is their wall driver (the
grace period waited for on an executor thread, the lease a timer on the loop); node.virtual.drain
drives them in virtual time.
"""

import asyncio

from node.rcu import RcuCpu
from node.rcu_drain_rule import RcuSwapGrants
from node.remote_lock import AsyncLease, run_steps


class RcuDrain(AsyncLease, RcuSwapGrants):
    def __init__(self, pcp, rcu: RcuCpu, clock, transfer_log=None):
        super().__init__(pcp, clock, transfer_log)
        self.rcu = rcu  # node.rcu.RcuCpu of this CPU

    async def swap_and_take(
        self, lease_s: float, gp_timeout: float, request_id: int = 0
    ) -> tuple[int, list, float, bool]:
        """Returns (token, pages, grace_period_s, gp_ok); token 0 when there is nothing to hand over."""
        return await run_steps(self.swap(lease_s, gp_timeout, request_id), self._wait_for_gp)

    async def release(self, token: int, commit: bool) -> None:
        self.settle(token, commit)

    async def _wait_for_gp(self, timeout: float) -> bool:
        return await asyncio.get_running_loop().run_in_executor(None, self.rcu.wait_for_qs, timeout)
