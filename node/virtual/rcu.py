"""A virtual CPU's RCU: its quiescent states (node.rcu_gp, the rule), with grace-period waiters
suspended in virtual time. The wall driver is node.rcu.RcuCpu (a condition variable, threads); a
VirtualCpu builds this one, and an rcu-swap drain (node.virtual.drain) waits on it."""

from node.rcu_gp import QuiescentStates
from node.sim.clock import EventQueue
from node.virtual.strand import Wait, Waiter


class VirtualRcuCpu(QuiescentStates):
    """A CPU's quiescent states (node.rcu_gp), with grace-period waiters suspended in virtual time."""

    def __init__(self, queue: EventQueue) -> None:
        super().__init__()
        self.queue = queue
        self._waits: list[tuple[int, Wait]] = []  # (the grace period's start, its waiter)

    def wait_for_qs(self, waiter: Waiter, timeout: float) -> bool:
        """From `waiter`'s fiber: wait until this CPU passes a quiescent state that begins after the
        call, or is in an extended one; False if `timeout` seconds pass first."""
        start = self.gp_start()
        if self.gp_elapsed(start):
            return self.gp_end(True)
        wait = Wait(self.queue, waiter, timeout)
        self._waits.append((start, wait))
        return self.gp_end(wait.suspend())

    def _reported(self) -> None:
        if not self._waits:
            return
        waiting = []
        for start, wait in self._waits:
            if wait.over:  # timed out
                continue
            if self.gp_elapsed(start):
                wait.end(True)
            else:
                waiting.append((start, wait))
        self._waits = waiting
