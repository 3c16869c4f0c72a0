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
"""

import contextlib
import threading


class RcuCpu:
    def __init__(self):
        self._cv = threading.Condition()
        self.qs = 0  # quiescent states passed; written by the CPU thread only
        self.eqs = 0  # > 0 while in an extended quiescent state (CPU thread only, under _cv)
        self._waiters = 0  # grace-period waiters; the CPU thread notifies only when there are some
        self.gp_waits = 0
        self.gp_timeouts = 0

    # ------------------------------------------------------------ CPU thread
    def quiescent(self) -> None:
        self.qs += 1
        if self._waiters:
            with self._cv:
                self._cv.notify_all()

    @contextlib.contextmanager
    def extended_qs(self):
        with self._cv:
            self.eqs += 1
            self.qs += 1
            self._cv.notify_all()
        try:
            yield
        finally:
            with self._cv:
                self.eqs -= 1

    # ------------------------------------------------------------- drainer
    def wait_for_qs(self, timeout: float) -> bool:
        """Block until this CPU passes a quiescent state that begins after the call, or is in an
        extended one; False if `timeout` seconds pass first (the CPU is stuck in the kernel)."""
        with self._cv:
            start = self.qs
            self.gp_waits += 1
            self._waiters += 1
            try:
                ok = self._cv.wait_for(lambda: self.eqs > 0 or self.qs != start, timeout)
            finally:
                self._waiters -= 1
            if not ok:
                self.gp_timeouts += 1
            return ok
