"""RPC fault rules, without gRPC: the one decision both node.shared.faults (the wall processes) and the
simulated network (node.sim.net) apply.

A process (an endpoint of node.sim.net) holds rules; a rule matches a direction ("in": a request
the endpoint receives, checked when it arrives; "out": one it sends, checked before it leaves), a
method glob, and on the coordinator a peer CPU (ANY_PEER: any). The first matching rule decides,
with the effects in node.shared.faults' order: its delay, then a failure (UNAVAILABLE without
handling), a drop (never handled: the caller's own bound runs out) or, "in" only, a dropped reply
(handled, then the reply is lost). Probabilities are drawn from the endpoint's seeded stream, one
draw per non-zero probability in that order, as node.shared.faults draws them. A partition is the
wall nemesis's pair of rules on the node: everything in and everything out dropped
(coordinator.tools.chaos.nemesis.PARTITION).

A rule is refused (ValueError) when it can do nothing: no effect (Rule), or a method glob that matches
no name the rules of its process meet (node.api.fault_points.check_method, which reads the names from
the wire contract): a typo must not silently do nothing.
"""

import collections
import fnmatch
from dataclasses import dataclass

from node.sim.rng import Uniform

IN = "in"
OUT = "out"
ANY_PEER = -1
FAIL = "fail"
DROP = "drop"
DROP_REPLY = "drop_reply"


@dataclass(frozen=True)
class Rule:
    direction: str
    method: str = "*"
    peer: object = ANY_PEER
    delay_s: float = 0.0
    drop: float = 0.0
    drop_reply: float = 0.0
    fail: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in (IN, OUT):
            raise ValueError(f"direction must be {IN!r} or {OUT!r}, got {self.direction!r}")
        if self.delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {self.delay_s!r}")
        for name in (DROP, DROP_REPLY, FAIL):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:  # also refuses NaN
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        if self.drop_reply and self.direction != IN:
            raise ValueError("drop_reply applies to IN rules only")
        if not (self.delay_s or self.drop or self.drop_reply or self.fail):
            raise ValueError("a rule needs a delay, drop, drop_reply or fail: one with none does nothing")


PARTITION = (Rule(IN, drop=1.0), Rule(OUT, drop=1.0))


class EndpointFaults:
    """One endpoint's rules and the stream their probabilities are drawn from."""

    def __init__(self, rules: tuple[Rule, ...], rng: Uniform, injected: collections.Counter[str] | None = None) -> None:
        """`injected`: the counter to add to (a wall process keeps one across SetFaults calls)."""
        self.rules = rules
        self.rng = rng
        self.injected: collections.Counter[str] = collections.Counter() if injected is None else injected

    def decide(self, direction: str, method: str, peer: object) -> tuple[float, str | None]:
        """(delay_s, outcome) for one request: outcome None, FAIL, DROP or DROP_REPLY."""
        rule = next(
            (
                r
                for r in self.rules
                if r.direction == direction
                and (r.peer == ANY_PEER or r.peer == peer)
                and fnmatch.fnmatchcase(method, r.method)
            ),
            None,
        )
        if rule is None:
            return 0.0, None
        if rule.delay_s:
            self.injected["delay"] += 1
        for outcome, p in ((FAIL, rule.fail), (DROP, rule.drop), (DROP_REPLY, rule.drop_reply)):
            if p > 0 and self.rng.random() < p:
                self.injected[outcome] += 1
                return rule.delay_s, outcome
        return rule.delay_s, None
