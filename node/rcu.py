"""RCU grace periods for one simulated CPU: quiescent states reported by its CPU thread.

The rcu-swap drain (node.rcu_drain) swaps a CPU's list-set pointer and must then wait
until that CPU can no longer be using the old set: a grace period, for this one CPU
(the kernel's synchronize_rcu waits for every CPU; the drainer asks each CPU it swapped).
The fast path's read-side critical section is one task or IRQ step on the CPU thread
(node.cpu), so the CPU thread reports:

- a quiescent state (`quiescent`) between steps and at every context switch (a work
  item, a preemption point that ran work): it holds no reference to a list set there;
- an extended quiescent state (`extended_qs`) while the CPU is idle, parked, sleeping in
  a task's wait, or running user code on a NOHZ_FULL CPU (the latency task's busy phase):
  RCU's context tracking treats such a CPU as quiescent without waking it, so a grace
  period that starts then is already over for it.

Kernel work (an allocation, an IRQ handler, a kworker item) is none of these: a CPU stuck
in one reports nothing, and `wait_for_qs` gives up after its timeout, which makes the
drain fail within a stated bound instead of hanging (the kernel would print an RCU stall
warning after 21 s and keep waiting).

The counting and the condition are node.rcu_gp's (a rule module); this is its wall driver:
the drainer waits on a condition variable the CPU thread notifies. node.virtual.drain has
the virtual one.
"""

import threading

from node.rcu_gp import QuiescentStates


class RcuCpu(QuiescentStates):
    def __init__(self) -> None:
        super().__init__()
        self._cv = threading.Condition()
        self._waiters = 0  # grace-period waiters; the CPU thread notifies only when there are some

    def _reported(self) -> None:
        if self._waiters:
            with self._cv:
                self._cv.notify_all()

    def _guard(self) -> threading.Condition:
        return self._cv

    def wait_for_qs(self, timeout: float) -> bool:
        """Block until this CPU passes a quiescent state that begins after the call, or is in an
        extended one; False if `timeout` seconds pass first (the CPU is stuck in the kernel)."""
        with self._cv:
            start = self.gp_start()
            self._waiters += 1
            try:
                ok = self._cv.wait_for(lambda: self.gp_elapsed(start), timeout)
            finally:
                self._waiters -= 1
            return self.gp_end(ok)
