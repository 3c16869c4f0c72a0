"""The names fault rules meet on the wire, and the check that a rule's method glob meets one.

A rule (node.sim.faults.Rule) aims at calls by a glob over names: each unary method of the service, and
each message of a stream as "<Method>.<op>" (its request's oneof `op`), as node.shared.interceptors and
the clients name them. The names come from pcpsim.proto itself, so none is listed twice. A glob that
matches none of the names its process's rules meet can do nothing: refused, as a typo must not
silently do nothing (the scenario parser and both SetFaults servicers ask).
"""

import fnmatch

from node.api.v1 import pcpsim_pb2 as pb
from node.sim.faults import IN, OUT

EXEMPT = ("SetFaults",)  # never faulted, so the nemesis can always heal
# The service whose calls a process's rules meet, by (its side, direction): "in", the one it serves;
# "out", the one it calls (the scenario's `side`; the servicer's own on SetFaults).
SERVICES = {
    ("node", IN): "Node",
    ("node", OUT): "Coordinator",
    ("coordinator", IN): "Coordinator",
    ("coordinator", OUT): "Node",
}


def fault_points(service: str) -> tuple[str, ...]:
    """The names a rule's method glob meets on `service`'s calls (pcpsim.proto), as
    node.shared.interceptors and the clients name them: each unary method, and each message of a
    stream as "<Method>.<op>" (its request's oneof `op`); never an EXEMPT method."""
    names: list[str] = []
    for m in pb.DESCRIPTOR.services_by_name[service].methods:
        if m.name in EXEMPT:
            continue
        if m.client_streaming:
            names += [f"{m.name}.{op.name}" for op in m.input_type.oneofs_by_name["op"].fields]
        else:
            names.append(m.name)
    return tuple(names)


def check_method(pattern: str, side: str, direction: str) -> None:
    """A method glob of a rule held by `side`'s process ("node" or "coordinator"): well formed and
    matching at least one name that process's `direction` rules meet. Raises ValueError."""
    if not pattern:
        raise ValueError("is required (a name, a glob, or '*')")
    unclosed = _unclosed_set(pattern)
    if unclosed is not None:
        # fnmatch would take it as a literal '[', which no method name holds: a glob gone wrong.
        raise ValueError(f"{pattern!r} is not a valid glob: the '[' at {unclosed} is never closed")
    service = SERVICES[(side, direction)]
    names = fault_points(service)
    if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
        what = "serves" if direction == IN else "sends"
        raise ValueError(f"{pattern!r} matches nothing the {side} {what} (the {service} service's {', '.join(names)})")


def _unclosed_set(pattern: str) -> int | None:
    """The index of a '[' that opens no set ([...], [!...], []...]) as fnmatch.translate reads it."""
    i = 0
    while i < len(pattern):
        if pattern[i] != "[":
            i += 1
            continue
        j = i + 1
        if j < len(pattern) and pattern[j] == "!":
            j += 1
        if j < len(pattern) and pattern[j] == "]":
            j += 1
        j = pattern.find("]", j)
        if j < 0:
            return i
        i = j + 1
    return None
