"""Roles, and ACCESS: the one table of which role may call which RPC with which request.

A caller presents `authorization: Bearer <secret>`; the server maps the secret to a role
(node.shared.security.tokens) and checks the method against ACCESS (the health service is
exempt: probes carry no secret):
- `node`: a simulated CPU. It may use the zone and membership RPCs of the coordinator,
  and DrainAllPages only as direct reclaim (which runs on a node) asks: TRIGGER_RECLAIM,
  no strategy, no force_all_cpus; nothing
  of the Node service (lock, drain, queue work, pause: only the coordinator may).
- `coordinator`: the coordinator calling a node: the Node service's methods it uses (lock,
  drain, queue and flush work, park, snapshot). Its token is bound to the CPU dialled
  (node.shared.security.tokens), so a node that captures the one presented to it (it
  registered its own address) can replay it at no other node and at no coordinator.
- `operator`: the CLI and the chaos nemesis: everything.
A method missing from ACCESS is refused (fail closed): adding an RPC means adding a row.
"""

from collections.abc import Callable
from typing import Any

from node.api.v1 import pcpsim_pb2 as pb

NODE, COORDINATOR, OPERATOR = "node", "coordinator", "operator"
ROLES = (NODE, COORDINATOR, OPERATOR)
ALWAYS = None  # an ACCESS entry: the role may call the method with any request

HEALTH = "/grpc.health.v1.Health/"  # the methods of the health service, open to every caller
_COORD, _NODE_SVC = "/pcpsim.v1.Coordinator/", "/pcpsim.v1.Node/"


def _reclaim_only(request, cpu) -> bool:
    """A node may start a drain only as direct reclaim does (drain_all_pages(NULL)): skippable,
    by the cluster's own strategy, of the CPUs with pages on their lists. force_all_cpus (CMA and
    offline's) or a strategy of its choosing would let a node queue work on every isolated CPU."""
    return request.trigger == pb.TRIGGER_RECLAIM and not request.force_all_cpus and not request.strategy


def _own_cpu(request, cpu) -> bool:
    """A node bound to a CPU speaks only for it (`cpu` None: an unbound node secret)."""
    return cpu is None or request.cpu == cpu


def _own_cpu_op(request, cpu) -> bool:
    """The same for the operation a stream request carries (none: the servicer refuses it)."""
    op = request.WhichOneof("op")
    return op is None or _own_cpu(getattr(request, op), cpu)


# Method -> {role: ALWAYS or a predicate (decoded request, caller's bound CPU or None); on a
# stream, every request}. Every method of both services has a row (tests/unit/test_security.py
# checks against the proto).
# (decoded request, caller's bound CPU or None) -> whether the role may make it.
Predicate = Callable[[Any, int | None], bool]
ACCESS: dict[str, dict[str, Predicate | None]] = {
    _COORD + "Register": {NODE: _own_cpu, OPERATOR: ALWAYS},
    _COORD + "Heartbeat": {NODE: _own_cpu, OPERATOR: ALWAYS},
    _COORD + "Rmqueue": {NODE: _own_cpu, OPERATOR: ALWAYS},
    _COORD + "FreePages": {NODE: _own_cpu, OPERATOR: ALWAYS},
    _COORD + "ZoneStream": {NODE: _own_cpu_op, OPERATOR: ALWAYS},
    _COORD + "DrainAllPages": {NODE: _reclaim_only, OPERATOR: ALWAYS},
    _COORD + "GetState": {OPERATOR: ALWAYS},
    _COORD + "GetDrainHistory": {OPERATOR: ALWAYS},
    _COORD + "Audit": {OPERATOR: ALWAYS},
    _COORD + "SetFaults": {OPERATOR: ALWAYS},  # the chaos nemesis runs as the operator
    _COORD + "AllocContigRange": {OPERATOR: ALWAYS},
    _COORD + "OfflinePages": {OPERATOR: ALWAYS},
    _COORD + "ReleaseRange": {OPERATOR: ALWAYS},
    _COORD + "SetCpuOnline": {OPERATOR: ALWAYS},
    _NODE_SVC + "GetPcp": {OPERATOR: ALWAYS},
    _NODE_SVC + "PcpLockDrain": {COORDINATOR: ALWAYS, OPERATOR: ALWAYS},
    _NODE_SVC + "PcpUnlock": {COORDINATOR: ALWAYS, OPERATOR: ALWAYS},
    _NODE_SVC + "PcpControl": {COORDINATOR: ALWAYS, OPERATOR: ALWAYS},
    _NODE_SVC + "QueueWork": {COORDINATOR: ALWAYS, OPERATOR: ALWAYS},
    _NODE_SVC + "FlushWork": {COORDINATOR: ALWAYS, OPERATOR: ALWAYS},
    _NODE_SVC + "SetRunState": {COORDINATOR: ALWAYS, OPERATOR: ALWAYS},
    _NODE_SVC + "Snapshot": {COORDINATOR: ALWAYS, OPERATOR: ALWAYS},
    _NODE_SVC + "GetStats": {OPERATOR: ALWAYS},
    _NODE_SVC + "SetFaults": {OPERATOR: ALWAYS},
}
