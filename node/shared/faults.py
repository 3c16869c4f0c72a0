"""Faults injected at run time into the RPCs a process serves (IN) and sends (OUT).

The chaos nemesis drives them with the SetFaults RPC, which both services have; no
fault proxy is installable here, so the processes apply faults themselves, at the
point a message enters or leaves them:
- IN: the server interceptor (node.shared.interceptors), for each unary request and each
  message of a long-lived stream;
- OUT: the clients call `outbound` / `outbound_sync` before they send.
A rule matches a direction, a method (or a stream operation "ZoneStream.free"), and
on the coordinator a peer CPU. Its effects, in order: a delay; a failure (UNAVAILABLE
without handling the request); a drop (the request is lost: never handled, the caller
times out); a dropped reply (IN only: handled, then the reply is lost, which is what
idempotency keys exist for). A partition is IN and OUT rules dropping everything on
the node's side. SetFaults itself and the health service are never faulted, so the
nemesis can always heal (the interceptor sees only the pcpsim services).

A SetFaults request that could not do what it says changes nothing (INVALID_ARGUMENT): more
than MAX_RULES rules, a rule with no effect, a method glob that matches nothing this process
serves (IN) or sends (OUT), a peer that is not a CPU of the cluster.
"""

import asyncio
import collections
import time

import grpc

from node.api import fault_points, validate
from node.api.errors import InvalidArgument, Unavailable
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.cpulist import MAX_CPUS
from node.sim import faults as sim_faults
from node.sim.rng import Stream

MAX_DELAY_MS = 60_000
# The most rules one SetFaults may hold. Every message a process serves or sends is checked against
# its rules in order, so the bound caps that per-message cost; the nemesis sets one rule per rpc fault
# in force on the process plus two per partition (a scenario has a handful), far below it.
MAX_RULES = 256
ANY_PEER = sim_faults.ANY_PEER


DIRECTIONS: dict[int, str] = {pb.DIRECTION_IN: sim_faults.IN, pb.DIRECTION_OUT: sim_faults.OUT}


def parse_rules(rules, side: str, nr_cpus: int) -> list[sim_faults.Rule]:
    """Validate the FaultRule messages of `side`'s process ("node" or "coordinator") in a cluster of
    `nr_cpus` CPUs; raises InvalidArgument naming the bad rule and field."""
    if len(rules) > MAX_RULES:
        raise InvalidArgument(f"{len(rules)} rules in one request, limit {MAX_RULES}")
    out = []
    for i, r in enumerate(rules):
        where = f"rule {i}"
        if r.direction not in DIRECTIONS:
            raise InvalidArgument(f"{where}: direction must be IN or OUT, got {r.direction}")
        try:
            fault_points.check_method(r.method, side, DIRECTIONS[r.direction])
        except ValueError as err:
            raise InvalidArgument(f"{where}: method {err}") from None
        if r.peer != ANY_PEER:
            try:
                validate.cpu(r.peer, nr_cpus)
            except InvalidArgument as err:
                raise InvalidArgument(f"{where}: peer must be -1 (any) or a CPU of the cluster: {err}") from None
        if r.delay_ms > MAX_DELAY_MS:
            raise InvalidArgument(f"{where}: delay_ms {r.delay_ms} exceeds {MAX_DELAY_MS}")
        try:
            rule = sim_faults.Rule(
                DIRECTIONS[r.direction], r.method, r.peer, r.delay_ms / 1000.0, r.drop, r.drop_reply, r.fail
            )
        except ValueError as err:  # a probability out of [0, 1], or drop_reply on an OUT rule
            raise InvalidArgument(f"{where}: {err}") from None
        out.append(rule)
    return out


class Faults:
    def __init__(self, on_cost_factor=None):
        self.injected: collections.Counter[str] = collections.Counter()
        self._rules = sim_faults.EndpointFaults((), Stream(0), self.injected)
        self.stop_mid_drain = False
        self.on_cost_factor = on_cost_factor  # node: applies a slow-CPU factor; None: not supported

    def set(self, request, side: str, nr_cpus: int = MAX_CPUS) -> pb.FaultsReply:
        """SetFaults on `side`'s process ("node" or "coordinator") in a cluster of `nr_cpus` CPUs (a
        node, which learns the size only when it registers, checks a peer against MAX_CPUS): replace
        every rule (all validated first; a bad request changes nothing)."""
        rules = parse_rules(request.rules, side, nr_cpus)
        factor = request.cost_factor or 1.0
        if not 1.0 <= factor <= 1000.0:
            raise InvalidArgument(f"cost_factor must be in [1, 1000] (0: normal), got {request.cost_factor}")
        if factor != 1.0 and self.on_cost_factor is None:
            raise InvalidArgument("cost_factor applies to nodes only")
        if request.stop_mid_drain and self.on_cost_factor is not None:
            raise InvalidArgument("stop_mid_drain applies to the coordinator only")
        self._rules = sim_faults.EndpointFaults(tuple(rules), Stream(request.seed), self.injected)
        self.stop_mid_drain = request.stop_mid_drain
        if self.on_cost_factor is not None:
            self.on_cost_factor(factor)
        return pb.FaultsReply(injected=dict(self.injected))

    @property
    def rules(self) -> tuple[sim_faults.Rule, ...]:
        return self._rules.rules

    def _decide(self, direction: int, method: str, peer: int) -> tuple[float, str | None]:
        """(delay_s, outcome) for one message: outcome None, "fail", "drop" or "drop_reply"."""
        return self._rules.decide(DIRECTIONS[direction], method, peer)

    async def admit(self, method: str, peer: int) -> bool:
        """Before handling a request: its delay, then UNAVAILABLE (fail) or never returning (drop).
        Returns whether its reply is to be lost once handled (drop_reply)."""
        delay, outcome = self._decide(pb.DIRECTION_IN, method, peer)
        if delay:
            await asyncio.sleep(delay)
        if outcome == "fail":
            raise Unavailable(f"injected fault: {method} failed")
        if outcome == "drop":
            await lost()
        return outcome == "drop_reply"

    async def inbound(self, method: str, peer: int, handle):
        """Serve one request: `await handle()` under the faults matching it."""
        lose_reply = await self.admit(method, peer)
        reply = await handle()
        if lose_reply:
            await lost()
        return reply

    async def outbound(self, method: str, peer: int, timeout: float) -> None:
        """Before sending: delay, or raise as the caller would see a failed or lost request."""
        delay, outcome = self._decide(pb.DIRECTION_OUT, method, peer)
        if delay:
            await asyncio.sleep(delay)
        if outcome == "fail":
            raise InjectedRpcError(grpc.StatusCode.UNAVAILABLE, f"injected fault: {method} failed")
        if outcome == "drop":
            await asyncio.sleep(timeout)
            raise InjectedRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, f"injected fault: {method} lost")

    def outbound_sync(self, method: str, timeout: float) -> None:
        """`outbound` for a blocking caller (the CPU thread's zone client)."""
        delay, outcome = self._decide(pb.DIRECTION_OUT, method, ANY_PEER)
        if delay:
            time.sleep(delay)
        if outcome == "fail":
            raise InjectedRpcError(grpc.StatusCode.UNAVAILABLE, f"injected fault: {method} failed")
        if outcome == "drop":
            time.sleep(timeout)
            raise InjectedRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, f"injected fault: {method} lost")

    def outbound_sync_sent(self, method: str, timeout: float) -> bool:
        """`outbound_sync` for a caller that only needs to know whether its request went out (the
        direct-reclaim drain): False where that raises. node.alloc calls this, so that the allocator,
        which the virtual engine runs too, needs neither this module's error nor grpc."""
        try:
            self.outbound_sync(method, timeout)
        except InjectedRpcError:
            return False
        return True


class InjectedRpcError(Exception):
    """What a client sees when an injected OUT fault fails or loses its request."""

    def __init__(self, code: grpc.StatusCode, detail: str):
        super().__init__(f"{code.name}: {detail}")
        self._code, self._detail = code, detail

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._detail


async def lost() -> None:
    """A lost message: nothing more happens; the caller's deadline cancels this handler."""
    await asyncio.Event().wait()
