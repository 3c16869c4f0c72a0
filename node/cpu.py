"""The CPU thread: everything that executes *on* one simulated CPU.

One OS thread per node runs the CPU's tasks (a latency-sensitive task or the
housekeeping workload), its simulated IRQs and its kworker, one at a time, like a
single CPU. Modeled kernel work *occupies* the thread for its modeled duration
(`occupy`, a blocking sleep that releases the GIL), so it delays everything else on
this CPU exactly as a non-preemptible kernel section would. The node's gRPC server
runs on another thread (the interconnect) and never runs pcp operations here: it can
only queue work (`queue_work`), as queue_work_on() does.

Scheduling, the part of the kernel's that matters here (the decision is node.sched's, which
the virtual driver, node.virtual.cpu, calls too; this module does the running and the waiting):
- an RT (SCHED_FIFO-like) task that is due runs before queued work, and its busy
  phase is never interrupted, so work queued meanwhile waits (kworkers are SCHED_OTHER);
- otherwise queued work runs first, and a preemptible task lets it run at every
  preemption point of its busy phase (`preempt_point`);
- work and IRQ handlers are not preempted by anything.
Every stretch of non-task activity is logged (`NoiseLog`) so a task can attribute the
time stolen from it, osnoise-style.

RCU (node.rcu, for the rcu-swap drain): the thread reports a quiescent state between
steps and after every work item, and is in an extended quiescent state while idle,
parked, sleeping in `wait_for`, or running a NOHZ_FULL task's user code (`user`).
"""

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from node import sched
from node.eventlog import EventLog
from node.mm.lock import PcpLock
from node.rcu import RcuCpu
from node.rcu_gp import QuiescentStates
from node.sched import Source

log = logging.getLogger(__name__)


def wall_pcp_lock() -> PcpLock:
    """pcp->lock for threads that share it: a queue.SimpleQueue holding its token while the lock is free,
    whose C trylock costs half of threading.Lock's (node.mm.lock.PcpLock)."""
    lock: queue.SimpleQueue[object] = queue.SimpleQueue()
    lock.put(True)
    return lock


# Who holds a CPU paused (Cpu.set_paused): SetRunState's callers, and the node's own agent.
OPERATOR = "operator"
MEMBERSHIP = "membership"


@dataclass
class WorkItem:
    """A queued work item (queue_work_on): runs `fn` on the CPU thread."""

    id: int
    kind: str
    fn: Callable[[], object]
    queued_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    result: object = None
    error: BaseException | None = None
    done: bool = False
    _callbacks: list = field(default_factory=list)

    def add_done_callback(self, fn) -> None:
        """Call fn(item) once the item has run (from the CPU thread; fn must be thread-safe)."""
        fire = False
        with _CALLBACK_LOCK:
            if self.done:
                fire = True
            else:
                self._callbacks.append(fn)
        if fire:
            fn(self)


_CALLBACK_LOCK = threading.Lock()


class NoiseLog(EventLog):
    """Recent intervals of non-task activity on the CPU: (start, end, cause)."""

    def overlap(self, start: float, end: float) -> list[tuple[str, float]]:
        """(cause, seconds) for each logged interval that overlaps [start, end]."""
        out = []
        for s, e, cause in reversed(self._log):
            if e <= start:
                break
            d = min(e, end) - max(s, start)
            if d > 0:
                out.append((cause, d))
        return out


class Cpu:
    """One simulated CPU. Sources are objects with `next_wake`, `rt` and `step(cpu)` (node.sched.Source).
    What runs next is node.sched's rule; this class is its wall-time driver: the waiting is a
    condition variable and a blocking sleep (node.virtual.cpu drives the same rule in virtual time)."""

    def __init__(self, cpu: int, clock=time.monotonic, sleep=time.sleep, rcu: QuiescentStates | None = None):
        """`rcu`: this CPU's quiescent states as its driver waits on them (node.rcu.RcuCpu by default;
        node.virtual.cpu passes its own)."""
        self.cpu = cpu
        self.clock = clock
        self._sleep = sleep
        self.sources: list[Source] = []
        self.noise = NoiseLog()
        self.rcu: QuiescentStates = RcuCpu() if rcu is None else rcu
        self.busy_s = 0.0
        self.drain_work_items = 0
        self.drain_wait_max_s = 0.0
        self.work_queued = 0  # every item ever queued (lifetime counters, for metrics)
        self.work_run = 0
        # Called with each finished WorkItem on the CPU thread; metrics observe queue delay and
        # run time here, so this module needs no metrics library.
        self.on_work_done: Callable[[WorkItem], None] | None = None
        self.step_errors = 0
        self._slowdown = 1.0  # > 1: a slow CPU (chaos): modeled work runs this much longer (`slowdown`)
        self._factor_changed = threading.Event()  # set by the slowdown setter: a slowed stretch ends early
        self._cv = threading.Condition()
        self._work: collections.deque[WorkItem] = collections.deque()
        self._next_work_id = 1
        self._paused = False  # while anyone holds the CPU paused: bool(self._pausers), read unlocked by the loop
        self._pausers: set[str] = set()
        self._parked = threading.Event()
        self._stop = False
        self._runqueue = sched.RunQueue()
        self._thread = threading.Thread(target=self._run, name=f"cpu{cpu}", daemon=True)

    # ---------------------------------------------------------------- control
    def start(self, paused: bool = False, by: str = OPERATOR) -> None:
        """Start the CPU thread, parked at once if `paused`, held by `by` (set_paused(False, by=by) lets it run)."""
        if paused:
            self._pausers.add(by)
        self._paused = paused
        self._launch()

    def pcp_lock(self) -> PcpLock:
        """A pcp->lock for this CPU's lists, of the kind its driver waits on: `wall_pcp_lock`, which the
        CPU thread and the node's RPC threads (a remote drainer) share."""
        return wall_pcp_lock()

    def _launch(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cv:
            self._stop = True
            self._wake()
        self._thread.join(timeout)

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def parked(self) -> bool:
        """Paused and at its safe point: no task or IRQ is in the middle of an operation."""
        return self._paused and self._parked.is_set()

    def held_paused_by(self, by: str) -> bool:
        return by in self._pausers

    def set_paused(self, paused: bool, timeout: float = 5.0, by: str = OPERATOR) -> bool:
        """Hold the CPU paused on behalf of `by`: stop running tasks and IRQs at the next safe point
        (no task's pcp or zone operation in flight) and return once there; or drop that hold. The CPU
        runs again only when nobody holds it: the node's agent parks it to rejoin (MEMBERSHIP) while
        an audit (OPERATOR) may pause and resume it, and neither may resume it under the other.
        Returns False if the CPU did not get to its safe point within `timeout`; the hold this call
        added is then dropped again, so a pause that failed changes nothing (an audit that gives up
        must not leave a CPU it never parked held, with nobody left to resume it)."""
        added = self._hold(paused, by)
        if not paused or self._parked.wait(timeout):
            return True
        if added:
            with self._cv:
                self._pausers.discard(by)
                self._update_paused()
        return False

    def _hold(self, paused: bool, by: str) -> bool:
        """Take or drop `by`'s hold; whether this added one."""
        with self._cv:
            added = paused and by not in self._pausers
            if paused:
                self._pausers.add(by)
                self._parked.clear()
            else:
                self._pausers.discard(by)
            self._update_paused()
        return added

    def _update_paused(self) -> None:
        """Under _cv: the CPU runs only when nobody holds it."""
        self._paused = bool(self._pausers)
        self._wake()

    @property
    def slowdown(self) -> float:
        return self._slowdown

    @slowdown.setter
    def slowdown(self, factor: float) -> None:
        """The cost factor (chaos: slow-cpu; 1 again at its heal). A stretch already under way on a slow
        CPU runs the rest of its work at the new factor (`occupy`), so a heal ends the slowness at once,
        as a CPU whose clock speeds up again finishes what it is doing at full speed."""
        self._slowdown = factor
        self._speed_changed()

    # ------------------------------------------------------------- interface
    def occupy(self, seconds: float) -> None:
        """Keep this CPU busy for `seconds` of wall time (modeled work)."""
        if seconds > 0:
            if self._slowdown == 1.0:
                self._sleep(seconds)
                self.busy_s += seconds
            else:
                self._occupy_slowed(seconds)

    def _occupy_slowed(self, work: float) -> None:
        """`work` seconds of modeled work on a slow CPU, each part at the factor in force while it runs:
        a change of factor (the setter) ends the part under way, and the rest runs at the new one."""
        while True:
            factor = self._slowdown
            stretch = work * factor
            start = self.clock()
            if not self._sleep_slowed(stretch):
                self.busy_s += stretch
                return
            ran = self.clock() - start
            self.busy_s += ran
            work -= ran / factor
            if work <= 0:
                return

    def user(self, seconds: float) -> None:
        """Run user code of a task on this (NOHZ_FULL) CPU for `seconds`: busy like `occupy`, and an
        extended quiescent state for RCU (context tracking: no tick, no kernel reference held)."""
        with self.rcu.extended_qs():
            self.occupy(seconds)

    def queue_work(self, kind: str, fn) -> WorkItem:
        """queue_work_on(this cpu): thread-safe; fn() runs later on the CPU thread."""
        with self._cv:
            item = WorkItem(self._next_work_id, kind, fn, self.clock())
            self._next_work_id += 1
            self.work_queued += 1
            self._work.append(item)
            self._wake()
        return item

    def preempt_point(self) -> None:
        """A preemptible task yields here: pending work runs now."""
        while self._work:
            self._run_work_item()

    def wait_for(self, event: threading.Event, timeout: float) -> bool:
        """Sleep on `event` the way a task sleeps in the kernel: while it sleeps, the
        kworker may run on this CPU (flush_work from this very CPU must not deadlock)."""
        deadline = self.clock() + timeout
        while not event.is_set():
            if self._work:
                self._run_work_item()
                continue
            left = deadline - self.clock()
            if left <= 0:
                return False
            # The task sleeps (the CPU holds no pcp reference); the event's setter need not notify.
            self._block(lambda: not self._work and not event.is_set(), min(left, 0.002))
        return True

    def pending_work(self) -> int:
        """Work items queued and not yet started."""
        return len(self._work)

    def notify(self) -> None:
        with self._cv:
            self._wake()

    # ---------------------------------------------------------------- waiting
    # The places this driver waits; node.virtual.cpu waits in virtual time instead.
    def _sleep_slowed(self, seconds: float) -> bool:
        """Sleep `seconds` of a slowed stretch, or less if the cost factor changes meanwhile; whether it did."""
        changed = self._factor_changed.wait(seconds)
        self._factor_changed.clear()
        return changed

    def _speed_changed(self) -> None:
        """The cost factor changed (from any thread): a slowed stretch under way ends its part now."""
        self._factor_changed.set()

    def _wake(self) -> None:
        """Under _cv: something a blocked CPU thread waits for may have changed."""
        self._cv.notify_all()

    def _block(self, still: Callable[[], bool], timeout: float | None) -> None:
        """Wait while still() holds, until `timeout` seconds pass (None: no bound) or a wake-up,
        in an extended quiescent state for RCU (idle, parked or sleeping: no pcp reference held)."""
        with self._cv, self.rcu.extended_qs():
            if still():
                self._cv.wait(timeout)

    # ------------------------------------------------------------------ loop
    def _run_work_item(self) -> None:
        with self._cv:
            if not self._work:
                return
            item = self._work.popleft()
        item.started_at = self.clock()
        try:
            item.result = item.fn()
        except Exception as err:  # reported to whoever flushes the item; the process's end (FiberExit) is not
            item.error = err
        item.finished_at = self.clock()
        self.noise.add(item.started_at, item.finished_at, item.kind)
        self.work_run += 1
        if item.kind == "workqueue":
            self.drain_work_items += 1
            self.drain_wait_max_s = max(self.drain_wait_max_s, item.started_at - item.queued_at)
        if self.on_work_done is not None:
            self.on_work_done(item)
        with _CALLBACK_LOCK:
            item.done = True
            callbacks, item._callbacks = item._callbacks, []
        for cb in callbacks:
            cb(item)
        self.rcu.quiescent()  # a context switch back from the kworker

    def _run(self) -> None:
        while not self._stop:
            self.rcu.quiescent()  # between steps no task or IRQ holds a pcp list set
            paused = self._paused
            now = self.clock()
            decision = self._runqueue.pick(now, self.sources, bool(self._work), paused, MEMBERSHIP in self._pausers)
            if decision.kind == sched.SOURCE:
                assert decision.source is not None
                self._step(decision.source)
            elif decision.kind == sched.WORK:
                if paused:
                    self._parked.clear()  # parked only between work items
                self._run_work_item()
            elif decision.kind == sched.PARK:
                self._park()
            else:
                self._idle(now, decision.until)

    def _idle(self, now: float, until: float | None) -> None:
        """Nothing to run: wait until `until` (None: no source; look again soon), or a wake-up."""
        nxt = now + 0.05 if until is None else until
        self._block(lambda: not self._work and not self._paused and not self._stop, min(nxt - now, 1.0))

    def _step(self, source) -> None:
        """Run one step of a source. A step that fails (the zone did not answer) is
        counted and logged; the CPU goes on, as a task would retry its allocation."""
        try:
            source.step(self)
        except Exception as err:
            self.step_errors += 1
            if self.step_errors <= 10 or self.step_errors % 1000 == 0:
                log.warning("%s step failed (%d): %s", type(source).__name__, self.step_errors, err)
            now = self.clock()
            if source.next_wake <= now:
                source.rebase(now)

    def _park(self) -> None:
        """Paused at the safe point (node.sched says when): no task or IRQ runs, and the CPU counts as
        parked. Callers that need no zone traffic at all (the audit) hold pcpu_drain_mutex, so no
        drain work is queued meanwhile; work queued anyway wakes the CPU to run it, unless MEMBERSHIP
        holds it paused (then the work runs once the CPU is online again)."""
        self._parked.set()
        self._block(lambda: self._paused and not self._stop and (not self._work or MEMBERSHIP in self._pausers), None)
