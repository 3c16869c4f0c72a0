"""What RCU knows of one simulated CPU: the quiescent states it reported, and when a grace period is over.

A rule module (docs/engine.md): it counts and decides, and leaves the waiting to a driver. The
CPU reports a quiescent state (`quiescent`) between steps and at every context switch, and is in
an extended quiescent state (`extended_qs`) while idle, parked, asleep or in a NOHZ_FULL task's
user code (node.rcu says why each is one). A grace period that begins at `gp_start` is over for
this CPU once it reported a quiescent state since, or while it is in an extended one: the
condition synchronize_rcu() waits for on every CPU (the drainer asks each CPU it swapped).

Every report calls `_reported`, the driver's hook that wakes the grace-period waiters to look
again, and the extended state changes under `_guard`, the driver's lock (none in virtual time).
The drivers: node.rcu.RcuCpu (a condition variable, threads) and node.virtual.rcu.VirtualRcuCpu
(fibers in virtual time).
"""

import contextlib
from types import TracebackType

_NO_GUARD = contextlib.nullcontext()


class _ExtendedQs:
    """The context of `QuiescentStates.extended_qs`: a class, not a @contextmanager generator, as
    every stretch of a task's user code enters one (~46,000 a 64-CPU bench span; the generator,
    its wrapper and two nullcontexts cost it several % of its CPU time: docs/benchmarks.md).
    Holds no state of its own, so one serves every (nested) use."""

    __slots__ = ("states", "guarded")

    def __init__(self, states: "QuiescentStates") -> None:
        self.states = states
        # A driver that keeps the base class's guard has none to take (one thread of control): the
        # change is then made bare, without entering and leaving a nullcontext each way.
        self.guarded = type(states)._guard is not QuiescentStates._guard

    def __enter__(self) -> None:
        states = self.states
        if self.guarded:
            with states._guard():
                states.eqs += 1
                states.qs += 1
        else:
            states.eqs += 1
            states.qs += 1
        states._reported()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None:
        states = self.states
        if self.guarded:
            with states._guard():
                states.eqs -= 1
        else:
            states.eqs -= 1


class QuiescentStates:
    def __init__(self) -> None:
        self.qs = 0  # quiescent states passed; written by the CPU only
        self.eqs = 0  # > 0 while in an extended quiescent state (the CPU only)
        self.gp_waits = 0
        self.gp_timeouts = 0
        self._extended_qs = _ExtendedQs(self)

    # ------------------------------------------------------------ the CPU
    def quiescent(self) -> None:
        self.qs += 1
        self._reported()

    def extended_qs(self) -> contextlib.AbstractContextManager[None]:
        """In an extended quiescent state for the `with` block: counted as a quiescent state on entry."""
        return self._extended_qs

    # ------------------------------------------------------------ a drainer
    def gp_start(self) -> int:
        """A grace period begins now: what `gp_elapsed` compares with."""
        self.gp_waits += 1
        return self.qs

    def gp_elapsed(self, start: int) -> bool:
        return self.eqs > 0 or self.qs != start

    def gp_end(self, ok: bool) -> bool:
        """The wait for a grace period ended, in time or not (a CPU stuck in the kernel): counted."""
        if not ok:
            self.gp_timeouts += 1
        return ok

    # ------------------------------------------------------------ the driver's
    def _reported(self) -> None:
        """The CPU reported: grace-period waiters may look again."""

    def _guard(self) -> contextlib.AbstractContextManager[object]:
        """Held around each change of the extended state, so that a waiter that reads the state
        under it sees the start of a grace period and its test as one step."""
        return _NO_GUARD  # none: one thread of control (nullcontext may be reused)
