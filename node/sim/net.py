"""The simulated network: each message is delivered after a latency drawn from a seeded distribution.

The distribution is an empirical one: a table of quantiles, sampled by inverse transform with
linear interpolation between them (a uniform draw, then arithmetic: no math.log or exp, whose last
bit may differ between C libraries, so a seed gives the same latencies on every machine). Messages
on one link (a gRPC stream: HTTP/2 over one TCP connection) arrive in the order they were sent: a
message drawn faster than the one before it on its link waits for it.

Where the shape comes from: LOOPBACK_ZONE_RTT_US, round trips on an open ZoneStream between a node
and the coordinator on loopback, measured here with pcpsim's own bench helper
(coordinator.tools.bench.streams.rtt_zone; 3,000 round trips after 50 to warm up, a 1-CPU idle
cluster, 2026-12-02 04:38 UTC, load average 3.2 on the 2-core development machine). Its tail is the
loaded host's scheduling, which is why the table keeps it: it is what the wall engine's messages
see. The virtual engine runs in kernel time, so a driver scales it (`Latency.scaled`): one way is
half a round trip, and a wall-time figure stands for 1/TIME_SCALE of it in kernel time
(node.shared.timebase), which makes the median one-way latency 0.5 us of kernel time, an IPI's order.

The nemesis, at exact virtual instants (coordinator.tools.chaos.virtual_nemesis schedules it from a
chaos scenario). `request` carries an RPC between two endpoints (a CPU's number, the coordinator's
name) under node.shared.faults' semantics, so a scenario means the same thing in both engines:
- the sender's OUT rules before it leaves: a delay, then UNAVAILABLE at the sender (fail) or
  nothing at all (drop: the caller's own bound runs out, as the wall client's sleep of its timeout);
- the receiver's IN rules when it arrives: a delay, then UNAVAILABLE sent back (fail), never
  handled (drop), or handled and its reply lost (drop_reply);
- a partition is those rules on the node (node.sim.faults.PARTITION): everything it is sent is
  lost on arrival and everything it sends is lost on leaving, as the wall node's interceptor and
  clients drop them; healing removes the rules, and nothing lost comes back.
Below the rules, what processes and links do:
- `stop` (SIGSTOP): messages that reach the endpoint wait, unread, and are read at `resume` in the
  order they arrived, as a stopped process's sockets hold them; what the endpoint sends meanwhile
  leaves at `resume`, after those are read, as a stopped process sends nothing (the driver stops the
  endpoint's own code, which may run on to its next decision point first: node.virtual.cpu);
- `kill`: what waits for it is lost, a request that reaches it is answered UNAVAILABLE (the
  connection is refused), a reply is lost, and it sends nothing until `revive`; every request it
  was serving fails UNAVAILABLE at its caller (its host resets the connection, as a wall client's
  call to a SIGKILLed server ends at once, not at its deadline); `move_serving` hands what one
  endpoint serves to another (a process that goes on under a new endpoint);
- `cut`: a link failure between two sets of endpoints, below gRPC: `hold` keeps each message that
  reaches the cut until `heal` and then sends it on (TCP retransmitting across a short outage), or
  else the message is lost, whether it is sent during the cut or reaches it in flight.
"""

import bisect
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from node.sim.clock import EventQueue
from node.sim.faults import DROP, DROP_REPLY, FAIL, IN, OUT, EndpointFaults, Rule
from node.sim.rng import Uniform

UNAVAILABLE = "UNAVAILABLE"

# Percentile -> round trip in microseconds (see the module docstring).
LOOPBACK_ZONE_RTT_US: tuple[tuple[float, float], ...] = (
    (0.0, 180.0),  # below the lowest measured percentile (p1 189.3): the fastest round trip seen is near it
    (1.0, 189.3),
    (10.0, 213.2),
    (25.0, 223.1),
    (50.0, 252.8),
    (75.0, 320.0),
    (90.0, 418.5),
    (99.0, 1034.5),
    (99.9, 4547.1),
    (100.0, 4547.1),  # the sample's tail is cut at p99.9: 3,000 round trips say nothing beyond it
)


class Latency:
    """An empirical distribution: (percentile, seconds) points, percentiles 0 to 100, both increasing."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        ps = [p for p, _ in points]
        xs = [x for _, x in points]
        if ps[0] != 0.0 or ps[-1] != 100.0 or ps != sorted(ps) or xs != sorted(xs) or xs[0] < 0:
            raise ValueError(f"latency quantiles must run from p0 to p100, non-decreasing and >= 0: {points}")
        self._ps = [p / 100.0 for p in ps]
        self._xs = xs

    @classmethod
    def scaled(cls, points: Sequence[tuple[float, float]], factor: float) -> "Latency":
        """The same shape with every value times `factor` (e.g. microseconds of wall round trip to
        seconds of kernel time one way: 1e-6 / 2 / TIME_SCALE)."""
        return cls([(p, x * factor) for p, x in points])

    def draw(self, rng: Uniform) -> float:
        u = rng.random()
        i = bisect.bisect_right(self._ps, u)  # 1 <= i <= len - 1: u < 1 = the last point
        p0, p1 = self._ps[i - 1], self._ps[i]
        x0, x1 = self._xs[i - 1], self._xs[i]
        return x0 if p1 == p0 else x0 + (x1 - x0) * (u - p0) / (p1 - p0)


class SimNetwork:
    def __init__(self, queue: EventQueue, rng: Uniform, latency: Latency) -> None:
        self.queue = queue
        self.rng = rng
        self.latency = latency
        self._last: dict[object, float] = {}  # link -> arrival time of its last message
        self.lost = 0  # messages lost to a rule, a cut, or a dead endpoint
        self._faults: dict[object, EndpointFaults] = {}
        self._cuts: list[Cut] = []
        self._stopped: dict[object, list[_Message]] = {}  # endpoint -> messages waiting for it, in order
        self._unsent: dict[object, list[_Message]] = {}  # stopped endpoint -> what it sent meanwhile, in order
        self._dead: set[object] = set()
        # request number -> (the endpoint serving it, what its caller gets if that endpoint dies)
        self._serving: dict[int, tuple[object, Callable[[], None]]] = {}
        self._requests = 0

    def arrival(self, link: object) -> float:
        """When a message sent now over `link` arrives: after a drawn latency, and never before the
        link's previous message."""
        arrival = max(self.queue.clock.now + self.latency.draw(self.rng), self._last.get(link, 0.0))
        self._last[link] = arrival
        return arrival

    def send(self, link: object, deliver: Callable[..., object], *args: object) -> float:
        """Run `deliver(*args)` when a message sent now over `link` arrives; returns the arrival time."""
        arrival = self.arrival(link)
        self.queue.at(arrival, deliver, *args)
        return arrival

    # ------------------------------------------------------------------ the nemesis's state
    def set_rules(self, endpoint: object, rules: Sequence[Rule], rng: Uniform) -> None:
        """Replace `endpoint`'s fault rules (none: no faults), drawing from `rng`, as SetFaults does."""
        if rules:
            self._faults[endpoint] = EndpointFaults(tuple(rules), rng)
        else:
            self._faults.pop(endpoint, None)

    def faults(self, endpoint: object) -> EndpointFaults | None:
        return self._faults.get(endpoint)

    def cut(self, a: Collection[object], b: Collection[object], hold: bool = False) -> "Cut":
        cut = Cut(frozenset(a), frozenset(b), hold)
        self._cuts.append(cut)
        return cut

    def heal(self, cut: "Cut") -> None:
        """Remove the cut; a holding cut sends on what it held, in the order it reached the cut."""
        self._cuts.remove(cut)
        held, cut.held = cut.held, []
        for message in held:
            self._transmit(message)

    def stop(self, endpoint: object) -> None:
        self._stopped.setdefault(endpoint, [])
        self._unsent.setdefault(endpoint, [])

    def resume(self, endpoint: object) -> None:
        """Read what reached the stopped endpoint, now, in the order it arrived; then send what it
        sent while stopped, in the order it sent it."""
        for message in self._stopped.pop(endpoint, []):
            self.queue.at(self.queue.clock.now, self._arrive, message)
        for message in self._unsent.pop(endpoint, []):
            self._transmit(message)  # in the order it sent them, after what reached it (above)

    def stopped(self, endpoint: object) -> bool:
        return endpoint in self._stopped

    def kill(self, endpoint: object) -> None:
        self._dead.add(endpoint)
        served = [n for n, (at, _) in self._serving.items() if at == endpoint]
        for n in served:  # in the order they arrived (dicts keep insertion order)
            self._serving.pop(n)[1]()
        waiting = self._stopped.pop(endpoint, [])
        self.lost += len(waiting) + len(self._unsent.pop(endpoint, []))
        for cut in self._cuts:
            kept = [m for m in cut.held if endpoint not in (m.src, m.dst)]
            self.lost += len(cut.held) - len(kept)
            cut.held = kept

    def move_serving(self, old: object, new: object) -> None:
        """The requests `old` is serving are `new`'s from now on (the same process, a new endpoint)."""
        for n, (at, reset) in list(self._serving.items()):
            if at == old:
                self._serving[n] = (new, reset)

    def revive(self, endpoint: object) -> None:
        """A restarted process on the endpoint (its rules, as a new process's, are the caller's to set)."""
        self._dead.discard(endpoint)

    def dead(self, endpoint: object) -> bool:
        return endpoint in self._dead

    # ------------------------------------------------------------------ messages
    def request(
        self,
        src: object,
        dst: object,
        method: str,
        handle: Callable[[Callable[[Any], None]], object],
        on_reply: Callable[[Any], object],
        on_error: Callable[[str, str], object],
    ) -> None:
        """An RPC (or one message of a stream) from `src` to `dst`, under both ends' rules (the module
        docstring). On arrival `handle(respond)` runs at `dst`; `respond(value)` sends the reply, which
        runs `on_reply(value)` at `src` when it arrives. A failure runs `on_error(code, detail)` at
        `src`. A lost request or reply runs nothing: the caller's bound is its own event. A rule's delay
        is a wait in the process that applies it, so it ends no earlier than the process's resume
        if the process is stopped meanwhile, and never if it is killed."""
        queue = self.queue

        def fail(at: object, to: object, detail: str) -> None:
            if at == to:
                on_error(UNAVAILABLE, detail)
            else:
                self._transmit(_Message(at, to, on_error, (UNAVAILABLE, detail)))

        def leave(outcome: str | None) -> None:
            if outcome == FAIL:
                fail(src, src, f"injected fault: {method} failed")
            elif outcome == DROP:
                self.lost += 1
            else:
                self._send(_Message(src, dst, arrive, (), refuse))

        def refuse() -> None:
            # The refusal is the destination host's, not the dead process's: it travels back.
            self._launch(_Message(dst, src, on_error, (UNAVAILABLE, f"{dst} is down")))

        def arrive() -> None:
            delay, outcome = self._decide(dst, IN, method, src)
            if delay:
                queue.after(delay, self._arrive, _Message(dst, dst, admitted, (outcome,)))
            else:
                admitted(outcome)

        def admitted(outcome: str | None) -> None:
            if outcome == FAIL:
                fail(dst, src, f"injected fault: {method} failed")
            elif outcome == DROP:
                self.lost += 1
            else:
                self._requests += 1
                n = self._requests

                def reset() -> None:  # the host's, like a refusal: it travels back whatever the process
                    self._launch(_Message(dst, src, on_error, (UNAVAILABLE, f"{dst}: connection reset")))

                self._serving[n] = (dst, reset)
                handle(lambda value: respond(value, outcome == DROP_REPLY, n))

        def respond(value: object, lose: bool, n: int) -> None:
            if self._serving.pop(n, None) is None:
                return  # its server was killed: the caller has had its reset
            if lose:
                self.lost += 1
            else:
                self._send(_Message(dst, src, on_reply, (value,)))

        delay, outcome = self._decide(src, OUT, method, dst)
        if delay:
            queue.after(delay, self._arrive, _Message(src, src, leave, (outcome,)))
        else:
            leave(outcome)

    def _decide(self, endpoint: object, direction: str, method: str, peer: object) -> tuple[float, str | None]:
        faults = self._faults.get(endpoint)
        return (0.0, None) if faults is None else faults.decide(direction, method, peer)

    def _cut_between(self, src: object, dst: object) -> "Cut | None":
        # A loop, not next() over a generator: this runs twice per message, mostly with no cut at all.
        for c in self._cuts:
            if c.separates(src, dst):
                return c
        return None

    def _send(self, m: "_Message") -> None:
        """The process at `m.src` sends `m`: now, or at its resume if it is stopped (a cut's retransmits
        and a host's refusals are no process's sending, and go through `_transmit` whatever it does)."""
        unsent = self._unsent.get(m.src) if self._unsent else None
        if unsent is not None:
            unsent.append(m)
        else:
            self._transmit(m)

    def _transmit(self, m: "_Message") -> None:
        """Send one message now over the link (src, dst): lost if its source is dead or a dropping cut
        separates its ends; else it arrives after a drawn latency, in order on its link."""
        cut = self._cut_between(m.src, m.dst)
        if m.src in self._dead or (cut is not None and not cut.hold):
            self.lost += 1
        else:
            self._launch(m)

    def _launch(self, m: "_Message") -> None:
        self.queue.at(self.arrival((m.src, m.dst)), self._arrive, m)

    def _arrive(self, m: "_Message") -> None:
        cut = self._cut_between(m.src, m.dst)
        if cut is not None:
            if cut.hold:
                cut.held.append(m)
            else:
                self.lost += 1
        elif m.dst in self._dead:
            if m.refused is not None:
                m.refused()
            else:
                self.lost += 1
        elif m.dst in self._stopped:
            self._stopped[m.dst].append(m)
        else:
            m.deliver(*m.args)


@dataclass(frozen=True)
class _Message:
    """A message on its way: what runs on arrival, and what runs instead if its destination is down."""

    src: object
    dst: object
    deliver: Callable[..., object]
    args: tuple[object, ...] = ()
    refused: Callable[[], object] | None = None


class Cut:
    """A link failure between every endpoint of `a` and every endpoint of `b` (both ways)."""

    def __init__(self, a: frozenset[object], b: frozenset[object], hold: bool) -> None:
        if a & b:
            raise ValueError(f"a cut's two sides share endpoints: {sorted(map(repr, a & b))}")
        self.a = a
        self.b = b
        self.hold = hold
        self.held: list[_Message] = []

    def separates(self, x: object, y: object) -> bool:
        return (x in self.a and y in self.b) or (x in self.b and y in self.a)
