"""The virtual driver of the node's agent (node.agent_rule; node.agent is the wall one): heartbeats and
Register attempts are events on node.sim's queue, each request and its answer a message over
SimNetwork (one link each way per CPU, so a CPU's messages keep their order), each bound an event at the
instant it runs out; a token makes whichever of the answer and the bound comes second a no-op, as a
gRPC deadline makes a late reply unreadable. The coordinator's replies pass the epoch rule
(node.epoch_rule) as node.epoch's do. Before it discards or reports its pages it waits for the CPU to
park at a safe point (the host's `when_parked`), as the wall agent does. Incarnations come from a
seeded stream (node.identity).

Each call goes by SimNetwork.request from the CPU's number to `COORDINATOR` under both ends' fault
rules, a rule's failure the refusal of its code. `scale` is the rules' seconds per virtual second (see
coordinator.drain.virtual): the rule's clock and the lease it keeps are in the rules' seconds, its
bounds and waits divided by `scale` when scheduled. A stopped process (its `sigstop`, SIGSTOP) runs
nothing until SIGCONT: what fell due meanwhile runs then, in order (node.sim.sigstop); a killed one
(`stop`) runs nothing again.
"""

from collections.abc import Callable
from typing import Any, Protocol

from node import agent_rule
from node.agent_rule import HEARTBEAT_TIMEOUT_S, REGISTER_BACKOFF_S, REGISTER_TIMEOUT_S, AgentRule, Answer
from node.api.errors import status_of
from node.api.v1 import pcpsim_pb2 as pb
from node.api.validate import to_page_list
from node.epoch_rule import EpochRule
from node.identity import Ids
from node.sim.clock import EventQueue
from node.sim.net import SimNetwork
from node.sim.sigstop import Sigstop

COORDINATOR = "coordinator"  # the far end of every CPU's membership links


class Host(Protocol):
    """The CPU the agent speaks for: its pcp count, its pages, parking it, the pageset and the zone's
    state it is told."""

    lease_until: float

    @property
    def parked(self) -> bool: ...

    incarnation: str  # the process's, as its zone requests carry it

    def pcp_count(self) -> int: ...

    def holdings(self) -> list[tuple[int, int, int]]: ...

    def discard(self) -> None: ...

    def park(self, parked: bool) -> None: ...

    def when_parked(self, fn: Callable[[], object]) -> None: ...  # fn() once parked at a safe point

    def set_pageset(self, high: int, batch: int, high_max: int) -> None: ...

    def zone_heard(self, free_pages: int, reclaim_active: bool, below_high: bool) -> None: ...  # a heartbeat reply's


class Coordinator(Protocol):
    """The coordinator as a request reaches it (coordinator.virtual_members.VirtualMembers.handle):
    `reply` gets the answer or the error it was refused with; never called: the answer is lost."""

    def handle(self, method: str, request: Any, reply: Callable[[Any], None]) -> None: ...


class VirtualAgent(AgentRule):
    def __init__(
        self,
        queue: EventQueue,
        net: SimNetwork,
        host: Host,
        coordinator: Coordinator,
        request: pb.RegisterRequest,
        ids: Ids,
        interval: float,
        trace: list[str] | None = None,
        scale: float = 1.0,
        register_once: bool = False,
        sigstop: Sigstop | None = None,
    ) -> None:
        """`request`: the registration (its incarnation is drawn here); `interval`: the node's own
        heartbeat interval; `trace`: where each step is written, one line each (a list to share with
        the coordinator's driver); `register_once`: the node's --unsafe-register-once (tests only: a
        Register whose answer is lost is not sent again, and the CPU stays parked); `sigstop`: the
        SIGSTOP state of its process."""
        super().__init__(lambda: queue.clock.now * scale)
        self.register_once = register_once
        self.queue = queue
        self.scale = scale
        self.net = net
        self.host = host
        self.coordinator = coordinator
        self.cpu = request.cpu
        self.request = request
        self.ids = ids
        self.interval = interval
        self.epoch = EpochRule()
        self.incarnation = host.incarnation = ids.incarnation()
        self.trace = [] if trace is None else trace
        self.stopped = False
        self.sigstop = sigstop or Sigstop(queue)  # its process's (the CPU's, in a whole cluster)
        self._token = 0  # counts calls: only the current one's outcome is acted on

    def start(self) -> None:
        """Register (parked until answered), then beat."""
        self.host.park(True)
        self._register(resume=False, then=self._next_beat)

    def stop(self) -> None:
        """The process is gone: nothing of it runs again."""
        self.stopped = True

    def _after(self, rule_s: float, fn: Callable[..., object], *args: object) -> None:
        """fn(*args) `rule_s` (the rules' seconds) from now, as this process's timer."""
        self.queue.after(rule_s / self.scale, self._run, fn, *args)

    def _run(self, fn: Callable[..., object], *args: object) -> None:
        if not self.stopped and not self.sigstop.held(self._run, fn, *args):
            fn(*args)

    def _note(self, line: str) -> None:
        self.trace.append(f"{self.queue.clock.now!r} cpu{self.cpu} {line}")

    # ------------------------------------------------------------------ one call
    def _call(self, method: str, request: Any, timeout: float, outcome: Callable[[str | None, Any], None]) -> None:
        """Send `request`; outcome(None, reply) on an answer that may be acted on, outcome(code, None) on
        a refusal, a reply the epoch rule sets aside, or no answer within `timeout`."""
        self._token += 1
        token = self._token
        self._note(f"{method} sent")

        def answered(reply: Any) -> None:
            if token != self._token:
                return
            self._token += 1
            if isinstance(reply, Exception):
                code = status_of(reply).name
                self._note(f"{method} refused: {code}")
                outcome(code, None)
                return
            verdict = self.epoch.reply(method, reply.coordinator_epoch)
            self._note(f"{method} answered" + (f", epoch {reply.coordinator_epoch}: {verdict}" if verdict else ""))
            outcome(verdict, None if verdict else reply)

        def failed(code: str, detail: str) -> None:
            if token == self._token:
                self._token += 1
                self._note(f"{method} failed: {code}")
                outcome(code, None)

        def expired() -> None:
            if token == self._token:
                self._token += 1
                self._note(f"{method} timed out")
                outcome("DEADLINE_EXCEEDED", None)

        self.net.request(
            self.cpu,
            COORDINATOR,
            method,
            lambda respond: self.coordinator.handle(method, request, respond),
            lambda reply: self._run(answered, reply),
            lambda code, detail: self._run(failed, code, detail),
        )
        self._after(timeout, expired)

    # ------------------------------------------------------------------ heartbeats
    def _next_beat(self) -> None:
        if not self.stopped:
            self._after(self.next_beat(self.interval), self._beat)

    def _beat(self) -> None:
        if self.stopped:
            return
        sent_at = self.clock()
        request = pb.HeartbeatRequest(cpu=self.cpu, pcp_count=self.host.pcp_count(), incarnation=self.incarnation)
        self._call("Heartbeat", request, HEARTBEAT_TIMEOUT_S, lambda code, reply: self._beaten(sent_at, code, reply))

    def _beaten(self, sent_at: float, code: str | None, reply: pb.HeartbeatReply | None) -> None:
        if reply is not None:
            if self.beat_answered(Answer.of(reply), sent_at, self.host.parked):
                self._note("runs")
                self.host.park(False)
            self.host.lease_until = self.lease_until
            self.host.zone_heard(reply.free_pages, reply.reclaim_active, reply.below_high)
            self.host.set_pageset(reply.high, reply.batch, reply.high_max)
        elif code is not None:
            resume = agent_rule.rejoin_for(code)
            if resume is not None:
                self._rejoin(resume, then=self._next_beat)
                return
        self._next_beat()

    # ------------------------------------------------------------------ registering
    def _rejoin(self, resume: bool, then: Callable[[], None]) -> None:
        """Park, and once the CPU is at its safe point (no allocation or zone call of it in flight, as
        node.agent waits for it), register again: with every page held (resume) or with none and a new
        incarnation."""
        self.host.park(True)
        self._note("parked")
        self.host.when_parked(lambda: self._run(self._rejoin_parked, resume, then))

    def _rejoin_parked(self, resume: bool, then: Callable[[], None]) -> None:
        if not resume:
            self.host.discard()
            self.incarnation = self.host.incarnation = self.ids.incarnation()
        self._register(resume, then)

    def _register(self, resume: bool, then: Callable[[], None]) -> None:
        request = pb.RegisterRequest()
        request.CopyFrom(self.request)
        request.incarnation = self.incarnation
        request.resume = resume
        self.epoch.resuming = resume  # before the holdings are read: nothing they report may leave now
        request.holdings.CopyFrom(to_page_list(pb.PageList, self.host.holdings() if resume else []))
        request.holdings_epoch = self.epoch.registered if resume else 0  # the coordinator they are from
        self.register_sent()
        self._attempt(request, REGISTER_BACKOFF_S[0], then)

    def _attempt(self, request: pb.RegisterRequest, wait: float, then: Callable[[], None]) -> None:
        sent_at = self.clock()

        def outcome(code: str | None, reply: pb.RegisterReply | None) -> None:
            if code is not None:
                if agent_rule.ask_again(code, self.stopped, give_up=self.register_once):
                    self._after(wait, self._attempt, request, agent_rule.backoff(wait, REGISTER_BACKOFF_S[1]), then)
                    return
                self.register_failed(code)
                if not self.in_doubt:  # refused: the coordinator took none of the holdings
                    self.epoch.resuming = False
                self._note("stays parked")
                then()
                return
            assert reply is not None
            runs = self.register_answered(request.resume, Answer.of(reply), sent_at)
            if runs is None:
                self._note("holdings refused: discarding them")
                self._rejoin(resume=False, then=then)
                return
            self.host.lease_until = self.lease_until
            self.host.set_pageset(reply.high, reply.batch, reply.high_max)
            if runs:
                self._note("runs")
                self.host.park(False)
            then()

        self._call("Register", request, REGISTER_TIMEOUT_S, outcome)
