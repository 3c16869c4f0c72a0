"""VirtualCpu: node.cpu.Cpu driven in virtual time.

Everything that decides is inherited: the loop and its rule (node.sched), the work items and their
accounting, the noise log, the RCU reports, the pause holds. What differs is only how the CPU waits:
- a modeled stretch (`occupy`, `user`) suspends the CPU's fiber until the virtual clock reaches its
  end; nothing cuts it short but a change of a slow CPU's cost factor (`_sleep_slowed`: the rest of
  the stretch runs at the new factor, as the wall driver's slowed sleep wakes on it);
- `_block` (idle, parked, a task asleep in wait_for) suspends the fiber until its timeout or until
  `_wake` (work queued, a pause held or dropped, notify), which resumes it at the current instant; a
  timeout comes late by the CPU's `slack` (node.sim.noise: what the host's timer slack stood for on
  the wall engine, whose CPU threads wake from a timed condition wait), a wake-up never;
- `wait_until` is a wait no wake-up cuts short: a zone round trip (node.virtual.zone), during which
  the wall CPU thread is likewise blocked on its reply.
Each suspension gets a token, and only an event carrying the current token resumes the fiber, so a
timeout and a wake-up for the same suspension never both resume it.

While the CPU's process is stopped (its `sigstop`, node.sim.sigstop) nothing resumes the fiber:
an event that would is held until SIGCONT, as a SIGSTOPped wall CPU thread runs on only then. The one
exception is `serving`: a zone request of this CPU runs the zone's side on this fiber once it reaches
the coordinator (node.virtual.zone_rpc), which is the coordinator's work, and a stopped node does not
hold it up in the wall engine either; a stopped coordinator does (node.virtual.zone's LocalZone.apply).
"""

from collections.abc import Callable

from node.cpu import OPERATOR, Cpu
from node.sim.clock import EventQueue
from node.sim.noise import NO_SLACK, WakeSlack
from node.sim.sigstop import Sigstop
from node.virtual.fiber import Fiber
from node.virtual.pcp_lock import VirtualPcpLock
from node.virtual.rcu import VirtualRcuCpu


class VirtualCpu(Cpu):
    rcu: VirtualRcuCpu  # its grace-period waiters suspend in virtual time (an rcu-swap drain's)

    def __init__(self, cpu: int, queue: EventQueue, slack: WakeSlack = NO_SLACK) -> None:
        self.queue = queue
        self.slack = slack  # each timed wake-up's lateness (node.sim.noise)
        super().__init__(cpu, clock=queue.clock, sleep=self._sleep_virtual, rcu=VirtualRcuCpu(queue))
        self.fiber = Fiber(f"vcpu{cpu}", self._run)
        self.sigstop = Sigstop(queue)  # its process's: the agent, the leases and the strands share it
        self.serving = False  # the fiber runs the zone's side of a request (see the module's note)
        self._token = 0
        self._wakeable = False
        self._on_parked: list[Callable[[], object]] = []
        self._slowed = False  # suspended in a slowed stretch (_sleep_slowed): a change of factor ends it
        self._factor_change = False
        # Called with (cpu, what, detail) at each decision the loop acts on (node.virtual.run logs them).
        self.on_event: Callable[[int, str, str], None] | None = None

    def pcp_lock(self) -> VirtualPcpLock:
        """A pcp->lock whose blocking acquire suspends a fiber in virtual time (fibers share one thread:
        a threading.Lock's would hang it), and whose trylock fails while a drainer holds it."""
        return VirtualPcpLock(self.queue, self)

    # ---------------------------------------------------------------- control
    def _launch(self) -> None:
        self.queue.at(self.clock(), self._resume, self._token)

    def stop(self, timeout: float = 0.0) -> None:
        self._stop = True
        self.fiber.close()

    def set_paused(self, paused: bool, timeout: float = 0.0, by: str = OPERATOR) -> bool:
        """Take or drop `by`'s hold. The virtual driver cannot block its caller until the CPU parks:
        the CPU parks at its next decision point, at a later event (read `parked` then)."""
        self._hold(paused, by)
        return True

    def when_parked(self, fn: Callable[[], object]) -> None:
        """Call fn() once the CPU is parked: now if it is, else at the instant it parks (the answer to
        an audit's SetRunState, which the wall node gives once set_paused returns)."""
        if self.parked:
            fn()
        else:
            self._on_parked.append(fn)

    def wait_until(self, when: float) -> None:
        """From the CPU's fiber: wait, busy with nothing and deaf to wake-ups, until `when`."""
        if when > self.queue.clock.now:
            self._suspend(when, wakeable=False)

    def wait_resumed(self) -> None:
        """From the CPU's fiber: wait, deaf to wake-ups, until someone calls `resume_soon`."""
        self._suspend(None, wakeable=False)

    def resume_soon(self, serving: bool = False) -> None:
        """End a `wait_resumed` at the current instant (at the next event, this one being done);
        `serving`: to run the zone's side, which a stopped process does not hold up."""
        self.queue.at(self.clock(), self._resume, self._token, serving)

    def wait_cont(self) -> None:
        """From the CPU's fiber, its process stopped: wait until SIGCONT (or a `resume_soon(serving=True)`)."""
        self._suspend(None, wakeable=False, at_cont=True)

    # ---------------------------------------------------------------- waiting
    def _sleep_virtual(self, seconds: float) -> None:
        # A stretch too short to move the clock (a float residue: 2.5e-21 s ends a preemptible task's busy
        # phase) is no wait at all, so wait_until's test, not seconds > 0 (the golden digest holds this).
        now = self.queue.clock.now
        if now + seconds > now:  # wait_until's test, inlined: every modeled stretch comes here
            self._suspend(now + seconds, wakeable=False)

    def _sleep_slowed(self, seconds: float) -> bool:
        now = self.queue.clock.now
        if not now + seconds > now:
            return False
        self._slowed, self._factor_change = True, False
        self._suspend(now + seconds, wakeable=False)
        self._slowed = False
        return self._factor_change

    def _speed_changed(self) -> None:
        """From the driver (the nemesis): a slowed stretch under way ends its part at this instant."""
        if self._slowed and not self._factor_change:
            self._factor_change = True
            self.queue.at(self.clock(), self._resume, self._token)

    def _park(self) -> None:
        waiting, self._on_parked = self._on_parked, []
        for fn in waiting:  # run once this fiber has suspended in the park: `parked` holds then
            self.queue.at(self.clock(), fn)
        super()._park()

    def _wake(self) -> None:
        if self._wakeable:
            self.queue.at(self.clock(), self._resume, self._token)

    def _block(self, still: Callable[[], bool], timeout: float | None) -> None:
        with self.rcu.extended_qs():
            if still():
                # One draw per timed wait, at its start: a wake-up before the timer fires leaves it unused.
                until = None if timeout is None else self.clock() + timeout + self.slack.lateness()
                self._suspend(until, wakeable=True)

    def _suspend(self, until: float | None, wakeable: bool, at_cont: bool = False) -> None:
        if until is not None and self.queue.advance(until):
            self._token += 2  # as the suspension and its resume would have: the event that resumes it ran
            return
        self._token += 1
        if at_cont:
            self.sigstop.held(self._resume, self._token)
        self._wakeable = wakeable
        if until is not None:
            self.queue.at(until, self._resume, self._token)
        self.fiber.suspend()
        self._wakeable = False

    def _resume(self, token: int, serving: bool = False) -> None:
        if token == self._token and not self.fiber.done:
            if self.sigstop.stopped and not (serving or self.serving):
                self.sigstop.held(self._resume, token)
                return
            self._token += 1  # every other event for this suspension is stale now
            self.fiber.resume()

    # ------------------------------------------------------------- the log
    def _step(self, source) -> None:
        if self.on_event is not None:
            self.on_event(self.cpu, "step", type(source).__name__)
        super()._step(source)

    def _run_work_item(self) -> None:
        if self.on_event is not None and self._work:
            self.on_event(self.cpu, "work", self._work[0].kind)
        super()._run_work_item()
