"""The node halves of the remote drains in virtual time: the same rules as the wall node's, other waits.

The rules are node.grants (tokens, leases, fencing), node.remote_lock_rule (take the pcp lock and
the pages), node.rcu_drain_rule (swap, grace period, take the old set) and node.rcu_gp (when a
grace period is over for a CPU); node.remote_lock, node.rcu_drain and node.rcu drive them on
asyncio and threads. Here:
- each request is served on a Strand (node.virtual.strand), passed in, which is what waits;
- the pcp lock is a node.virtual.pcp_lock.VirtualPcpLock: the drainer's strand waits for it in
  virtual time, and holds it from its grant to its commit, abort or lease expiry, while the CPU's
  trylocks fail and its allocations fall back to the buddy;
- a grace period is a wait on the CPU's VirtualRcuCpu (node.virtual.rcu), ended by its next
  quiescent state (its fiber reports them, as the wall CPU thread does: node.cpu) or its timeout;
- a lease is an event at its exact end; one whose grant ended before is a no-op (node.grants). It is
  the node process's timer: while the process is stopped (SIGSTOP) it does not fire (node.sim.sigstop).
"""

from collections.abc import Callable, Generator
from typing import TypeVar

from node.grants import Grant, GrantTable
from node.mm.pcp import PerCpuPages
from node.mm.pcp_rcu import RcuPerCpuPages
from node.rcu_drain_rule import RcuSwapGrants
from node.remote_lock_rule import PcpLockGrants, Taken
from node.sim.clock import EventQueue
from node.sim.sigstop import Sigstop
from node.virtual.pcp_lock import VirtualPcpLock
from node.virtual.rcu import VirtualRcuCpu
from node.virtual.strand import Waiter

T = TypeVar("T")


def run_blocking(steps: Generator[float, bool, T], wait: Callable[[float], bool]) -> T:
    """Run a rule's generator on the calling fiber: each value it yields is a bound in seconds for
    `wait`, which suspends the fiber in virtual time and whose answer is sent back."""
    try:
        bound = next(steps)
        while True:
            bound = steps.send(wait(bound))
    except StopIteration as done:
        return done.value
    finally:
        steps.close()  # an error in a wait runs the rule's cleanup now


class VirtualLease(GrantTable):
    """A grant's lease as an event at its end (node.grants' driver hooks).

    The lease timer is the node process's, so a stopped process's does not fire: an expiry that
    comes due while the process is stopped is held by its Sigstop (node.sim.sigstop) and runs at
    SIGCONT, before anything that reached the process meanwhile. The wall node's lease is a
    `call_later` timer (node.remote_lock's AsyncLease): after a SIGCONT the loop's first pass runs it,
    overdue, while a commit that waited in the socket is read by gRPC's poller thread and resumes its
    handler a pass later at the earliest. So a commit sent to a node stopped past its lease is refused
    in both engines. Until 2026-12-06 the virtual lease ran out during the stop, at its exact end."""

    queue: EventQueue
    sigstop: Sigstop

    def _arm(self, grant: Grant) -> None:
        self.queue.after(grant.lease_s, self._lease_ended, grant)

    def _lease_ended(self, grant: Grant) -> None:
        if not self.sigstop.held(self._lease_ended, grant):
            self.expire(grant)


class VirtualRemotePcpLock(VirtualLease, PcpLockGrants):
    def __init__(
        self,
        pcp: PerCpuPages,
        queue: EventQueue,
        fencing: bool = True,
        transfer_log=None,
        drain: str = "one-hold",
        sigstop: Sigstop | None = None,
    ) -> None:
        if not isinstance(pcp.lock, VirtualPcpLock):
            lock = type(pcp.lock).__name__
            raise TypeError(f"cpu {pcp.cpu}: a virtual remote drain needs a VirtualPcpLock, not {lock}")
        super().__init__(pcp, queue.clock, fencing, transfer_log, drain)
        self.queue = queue
        self.sigstop = sigstop or Sigstop(queue)  # its process's (node.virtual.run gives the CPU's)
        self.lock = pcp.lock

    def lock_and_take(
        self, strand: Waiter, lease_s: float, wait_timeout: float, left: int = 0, request_id: int = 0
    ) -> Taken:
        """From `strand`'s fiber: take the pcp lock (waiting in virtual time) and one chunk of pages
        (node.remote_lock_rule: every page under a one-hold profile)."""
        lock = self.lock
        steps = self.take(lease_s, wait_timeout, left, request_id)
        return run_blocking(steps, lambda bound: lock.acquire_as(strand, timeout=bound))

    def unlock(self, token: int, commit: bool) -> None:
        self.settle(token, commit)


class VirtualRcuDrain(VirtualLease, RcuSwapGrants):
    def __init__(
        self,
        pcp: RcuPerCpuPages,
        rcu: VirtualRcuCpu,
        queue: EventQueue,
        transfer_log=None,
        sigstop: Sigstop | None = None,
    ) -> None:
        super().__init__(pcp, queue.clock, transfer_log)
        self.queue = queue
        self.sigstop = sigstop or Sigstop(queue)
        self.rcu = rcu

    def swap_and_take(
        self, strand: Waiter, lease_s: float, gp_timeout: float, request_id: int = 0
    ) -> tuple[int, list, float, bool]:
        """From `strand`'s fiber: returns (token, pages, grace_period_s, gp_ok); token 0 when there is
        nothing to hand over."""
        rcu = self.rcu
        return run_blocking(self.swap(lease_s, gp_timeout, request_id), lambda bound: rcu.wait_for_qs(strand, bound))

    def release(self, token: int, commit: bool) -> None:
        self.settle(token, commit)
