"""The virtual driver of the drain rules: runs their effects (coordinator.drain.effects) on node.sim's
event queue and simulated network, in one process and in virtual time (docs/engine.md).

Each running program is a task the event queue resumes: a request travels to its CPU over the
simulated network (a link each way between the coordinator and each CPU, so a CPU's messages keep
their order), the CPU answers it when it arrives (a `Peer`, coordinator.drain.virtual_ends: the CPU's
half, a scripted fake in unit tests), at once or `Later` once its own handling has waited in virtual
time (coordinator.tools.virtual_cluster), and the answer travels back;
its bound is an event at the instant it runs out, and whichever comes first resumes the task (a token
turns the other into a no-op, as the wall stream's close makes a late reply unreadable). A Send that
watches the lease looks every `poll_s`, as the wall driver does. The chaos trap stops the whole
coordinator process (its `sigstop`, node.sim.sigstop, which its reaper and zone service share) and
holds what reaches its endpoint: every task's resumption and every look at a lease that falls due
meanwhile is held until SIGCONT, as asyncio's timers fire late after one. The trap resumes the process
by itself after `stop_for_s` (the unit tests'), or else the chaos run's heal or timer does (`cont`).
What came due while stopped runs first at the resume, before the messages the endpoint held
(SimNetwork.resume queues those after it): after a SIGCONT asyncio runs its overdue timers in its
first pass, while a reply that waited in a socket must still pass gRPC's poller thread.
pcpu_drain_mutex is a `VirtualMutex`, handed over in FIFO order. A ZoneLocked effect on a `LockedZone`
(the whole cluster's zone service, coordinator.tools.virtual_peer.CoordinatorZone) waits for the virtual
zone->lock and holds it for the hold its operations cost, as the wall zone service's one thread does; on
any other zone object (the unit tests' recorders) it applies at once.

Every request travels by SimNetwork.request from the endpoint `COORDINATOR` to the CPU's number, under
both ends' fault rules (node.sim.faults), named as the wall processes' rules name it: "PcpControl.<op>"
for a control stream message, the method for a unary call. A rule's failure comes back as `Failed`
with the wall driver's text.

`scale`: the rules' seconds per virtual second. The rules' constants (control timeouts, retry sleeps,
the lease poll) and the cluster's figures (leases, timeouts) are the wall engine's; a chaos run keeps
them and its CPUs run in kernel time (virtual time), so it gives TIME_SCALE: each duration a rule
yields is divided by it before it is scheduled, and the rules' clock (`rule_clock`) reads virtual time
times it. 1 (the default): the rules' seconds are virtual seconds.

Nothing here reads a wall clock or draws an unseeded number: the order of every step is the event
queue's (time, seq), so one seed gives one trace (`trace`, one line per step).
"""

import collections
import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from coordinator.drain import effects as fx
from coordinator.drain.control import Control
from coordinator.drain.virtual_ends import Answer, Later, LockedZone, Peer, Refusal
from coordinator.membership_rule import Member
from node.sim.clock import EventQueue
from node.sim.net import SimNetwork
from node.sim.sigstop import Sigstop

T = TypeVar("T")


class NotEnded(RuntimeError):
    """A program the driver was asked to run to its end had not ended by the instant given."""


COORDINATOR = "coordinator"  # the coordinator's end of the network, as the nemesis names it


class VirtualMutex:
    """pcpu_drain_mutex in virtual time: held or not, and who waits for it, first come first served."""

    def __init__(self) -> None:
        self.held = False
        self.waiters: collections.deque[tuple[_Task, int]] = collections.deque()


class _Task:
    """One running program; `token` counts its effects, so only the current effect's outcome resumes it."""

    def __init__(self, program: fx.Program[Any], done: Callable[[Any, BaseException | None], None]) -> None:
        self.program = program
        self.done = done
        self.token = 0


class VirtualDriver:
    def __init__(
        self,
        control: Control,
        queue: EventQueue,
        net: SimNetwork,
        peers: Mapping[int, Peer],
        zone: object,
        declare_dead: Callable[[Member], object],
        stop_for_s: float | None = None,
        scale: float = 1.0,
        endpoint: object = COORDINATOR,
        sigstop: Sigstop | None = None,
    ) -> None:
        self.control = control
        self.queue = queue
        self.net = net
        self.peers = peers
        self.zone = zone  # the zone service ZoneLocked effects run on (zone->lock is this one thread)
        self.declare_dead = declare_dead  # page_alloc_cpu_dead (the reaper's kill)
        self.sigstop = sigstop or Sigstop(queue)  # its process's: the reaper and the zone service share it
        self.armed = stop_for_s is not None  # the chaos trap: the next StopHere stops the process
        self.stop_for_s = stop_for_s  # how long it stays stopped then; None: until `cont` (the nemesis's heal)
        self.on_trap: Callable[[], object] | None = None  # called when the trap springs
        self.scale = scale
        self.endpoint = endpoint  # this coordinator's end of the network
        self.epoch = 0  # sent with every request (node.epoch_rule); 0: none
        self.trace: list[str] = []
        self.live: dict[_Task, None] = {}  # programs started and not ended, in start order

    def rule_clock(self) -> float:
        """The rules' clock: virtual time in the rules' seconds (see `scale`)."""
        return self.queue.clock.now * self.scale

    def virtual(self, rule_s: float) -> float:
        """A duration in the rules' seconds as virtual seconds."""
        return rule_s / self.scale

    def arm_trap(self) -> None:
        """The chaos trap: the next drain to reach its StopHere stops the coordinator process (`stop`)
        until `cont`."""
        self.armed, self.stop_for_s = True, None

    def disarm_trap(self) -> None:
        self.armed, self.stop_for_s = False, None

    @property
    def dead(self) -> bool:
        """The coordinator process was killed: none of its programs runs further."""
        return self.sigstop.killed

    def kill(self) -> None:
        """SIGKILL of the process (its `sigstop`): its programs end at their next step (`_step`)."""
        self.sigstop.kill()

    def stop(self) -> None:
        """SIGSTOP: none of the process's code runs (its `sigstop`), its endpoint holds what reaches it."""
        self.sigstop.stop()
        self.net.stop(self.endpoint)

    def cont(self) -> None:
        """SIGCONT: what fell due meanwhile runs from now, then what reached its endpoint."""
        self.sigstop.cont()
        if self.net.stopped(self.endpoint):
            self.net.resume(self.endpoint)

    # ------------------------------------------------------------------ running programs
    def start(self, program: fx.Program[T], done: Callable[[Any, BaseException | None], None]) -> None:
        """Run `program` from now; `done(result, None)` or `done(None, error)` when it ends."""
        task = _Task(program, done)
        self.live[task] = None
        self._step(task, None, None)

    def run(self, program: fx.Program[T], until: float, what: str = "the drain") -> T:
        """Run `program` to its end (other events run meanwhile, in order); NotEnded if it has not
        ended by virtual time `until`."""
        outcome: list[tuple[Any, BaseException | None]] = []
        self.start(program, lambda value, error: outcome.append((value, error)))
        while not outcome and len(self.queue) and (self.queue.next_time() or 0.0) <= until:
            self.queue.step()
        if not outcome:
            raise NotEnded(f"{what} had not ended by virtual time {until!r}")
        value, error = outcome[0]
        if error is not None:
            raise error
        result: T = value
        return result

    def close(self) -> None:
        """The run is over: the programs still waiting end where they are (_abandon), none of their
        steps running, as when the process ends."""
        for task in list(self.live):
            _abandon(task.program)
        self.live.clear()

    def _note(self, line: str) -> None:
        self.trace.append(f"{self.queue.clock.now!r} {line}")

    def _step(self, task: _Task, value: Any, error: BaseException | None) -> None:
        if self.dead:
            self.live.pop(task, None)
            _abandon(task.program)
            return
        if self.sigstop.held(self._step, task, value, error):  # the process is stopped: it runs at SIGCONT
            return
        task.token += 1  # whatever outcome of the effect before is still on its way is stale from now on
        try:
            effect = task.program.throw(error) if error is not None else task.program.send(value)
        except StopIteration as end:
            self.live.pop(task, None)
            task.done(end.value, None)
            return
        except Exception as err:
            self.live.pop(task, None)
            task.done(None, err)
            return
        self._do(task, task.token, effect)

    def _wake(self, task: _Task, token: int, value: Any = None, error: BaseException | None = None) -> None:
        if token == task.token:
            self._step(task, value, error)

    def _soon(self, task: _Task, token: int, value: Any = None, error: BaseException | None = None) -> None:
        """Resume at this instant, as an event of its own (no recursion however long a program runs)."""
        self.queue.at(self.queue.clock.now, self._wake, task, token, value, error)

    # ------------------------------------------------------------------ effects
    def _do(self, task: _Task, token: int, effect: fx.Effect) -> None:
        if isinstance(effect, fx.Send):
            cpu, message = effect.member.cpu, effect.message
            # The wall driver's account of an unanswered request: the control stream's own timeout.
            late = f"StreamBroken: DEADLINE_EXCEEDED: no reply on cpu{cpu}-pcp-control within {effect.timeout}s"
            op = message.WhichOneof("op")
            self._request(
                task,
                token,
                cpu,
                f"PcpControl.{op}",
                effect.timeout,
                late,
                "StreamBroken: ",
                lambda p: p.control(message, self.epoch),
            )
            if effect.give_up is not None:
                self.queue.after(self.virtual(effect.poll_s), self._poll, task, token, effect)
        elif isinstance(effect, fx.Post):
            cpu, message = effect.member.cpu, effect.message
            what = f"PcpControl.{message.WhichOneof('op')}"
            self._note(f"cpu{cpu} {what} posted")

            def arrive(respond: Callable[[Any], None]) -> None:
                self._answer(cpu, what, self.peers[cpu].control(message, self.epoch), respond)

            self.net.request(self.endpoint, cpu, what, arrive, lambda reply: None, lambda code, detail: None)
            self._soon(task, token)
        elif isinstance(effect, fx.Call):
            method, request = effect.method, effect.request
            late = "DEADLINE_EXCEEDED: Deadline Exceeded"  # grpc.aio's deadline, as the wall driver reports it
            self._request(
                task,
                token,
                effect.member.cpu,
                method,
                effect.timeout,
                late,
                "",
                lambda p: p.call(method, request, self.epoch),
            )
        elif isinstance(effect, fx.Sleep):
            self.queue.after(self.virtual(effect.seconds), self._wake, task, token)
        elif isinstance(effect, fx.Gather):
            self._gather(task, token, effect)
        elif isinstance(effect, fx.StopHere):
            if self.armed:
                span = self.stop_for_s
                self.disarm_trap()
                self._note("stopped" if span is None else f"stopped for {span!r}")
                self.stop()
                if span is not None:
                    self.queue.after(span, self.cont)
                if self.on_trap is not None:
                    self.on_trap()
            self._soon(task, token)
        elif isinstance(effect, fx.ZoneLocked):
            self._note(effect.what)
            if isinstance(self.zone, LockedZone):
                run = functools.partial(effect.fn, self.zone, *effect.args)
                self.zone.locked(run, lambda value, error: self._wake(task, token, value, error))
                return
            try:
                self._soon(task, token, effect.fn(self.zone, *effect.args))
            except Exception as err:
                self._soon(task, token, error=err)
        elif isinstance(effect, fx.DeclareDead):
            self._note(f"cpu{effect.member.cpu} declared dead")
            try:
                self._soon(task, token, self.declare_dead(effect.member))
            except Exception as err:  # fenced in the store: nobody declared dead (MembershipRule.declare_dead)
                self._soon(task, token, error=err)
        elif isinstance(effect, fx.Lock):
            self._lock(task, token, effect)
        elif isinstance(effect, fx.Unlock):
            self._unlock(effect.mutex)
            self._soon(task, token)
        else:
            raise TypeError(f"not an effect: {effect!r}")

    def _request(
        self,
        task: _Task,
        token: int,
        cpu: int,
        what: str,
        timeout: float,
        late: str,
        failed: str,
        handle: Callable[[Peer], Answer | Later | None],
    ) -> None:
        """A request to `cpu` over the network, handled on arrival, its answer sent back; Failed(`late`)
        after `timeout` (the rules' seconds); a rule's failure Failed(`failed` + its code and detail)."""
        self._note(f"cpu{cpu} {what} sent")

        def arrive(respond: Callable[[Any], None]) -> None:
            self._answer(cpu, what, handle(self.peers[cpu]), respond)

        def reply(message: Any) -> None:
            if isinstance(message, Refusal):
                error(message.code, message.detail)
                return
            if token == task.token:
                self._note(f"cpu{cpu} {what} answered")
            self._wake(task, token, message)

        def error(code: str, detail: str) -> None:
            if token == task.token:
                self._note(f"cpu{cpu} {what} failed: {code}")
                self._wake(task, token, error=fx.Failed(f"{failed}{code}: {detail}"))

        def expire() -> None:
            if token == task.token:
                self._note(f"cpu{cpu} {what} timed out")
                self._wake(task, token, error=fx.Failed(late))

        self.net.request(self.endpoint, cpu, what, arrive, reply, error)
        self.queue.after(self.virtual(timeout), expire)

    def _answer(self, cpu: int, what: str, answer: Answer | Later | None, respond: Callable[[Any], None]) -> None:
        """Send a CPU's answer to a request that reached it back: after its handling time, once its node
        half has done its waiting, or never (a lost request)."""
        if answer is None:
            self._note(f"cpu{cpu} {what} lost")
        elif isinstance(answer, Later):
            answer.bind(respond)
        else:
            self.queue.after(answer.after_s, respond, answer.reply)

    def _poll(self, task: _Task, token: int, send: fx.Send) -> None:
        if token != task.token:
            return
        if self.sigstop.held(self._poll, task, token, send):  # its timer comes due while stopped: it fires then
            return
        assert send.give_up is not None
        if send.give_up():
            self._note(f"cpu{send.member.cpu} given up on")
            self._wake(task, token, error=fx.GaveUp())
        else:
            self.queue.after(self.virtual(send.poll_s), self._poll, task, token, send)

    def _gather(self, task: _Task, token: int, gather: fx.Gather) -> None:
        results: list[Any] = [None] * len(gather.programs)
        left = [len(gather.programs)]
        if not gather.programs:
            self._soon(task, token, results)
            return

        def finished(i: int, value: Any, error: BaseException | None) -> None:
            results[i] = error if error is not None else value
            left[0] -= 1
            if not left[0]:
                self._wake(task, token, results)

        for i, program in enumerate(gather.programs):
            self._step(_Task(program, functools.partial(finished, i)), None, None)

    def _lock(self, task: _Task, token: int, lock: fx.Lock) -> None:
        mutex = lock.mutex
        assert isinstance(mutex, VirtualMutex), "the virtual driver's programs take VirtualMutexes"
        if not mutex.held:
            mutex.held = True
            self._soon(task, token, True)
        elif not lock.wait:
            self._soon(task, token, False)
        else:
            mutex.waiters.append((task, token))

    def _unlock(self, mutex: object) -> None:
        assert isinstance(mutex, VirtualMutex) and mutex.held, "unlock of a mutex not held"
        if mutex.waiters:
            task, token = mutex.waiters.popleft()  # handed over: it stays held
            self._soon(task, token, True)
        else:
            mutex.held = False


def _abandon(program: fx.Program[Any]) -> None:
    """A killed coordinator's program ends where it is: none of its steps runs, its `finally` clauses'
    effects (an Unlock) included, as a SIGKILLed process runs none. Closing it throws GeneratorExit at
    each such yield in turn (a nested one meets the next); left to the garbage collector instead, each
    would print "generator ignored GeneratorExit"."""
    for _ in range(64):  # a program nests a few finally clauses, not 64
        try:
            program.close()
            return
        except RuntimeError:  # a finally clause yielded an effect: close again from there
            continue
    raise RuntimeError(f"{getattr(program, '__qualname__', 'a program')} yields on after 64 closes")
