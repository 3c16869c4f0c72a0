"""Kernel-style CPU lists ("2,3", "2-3", "0-1,3"), the role map built from them, and the
names of roles.

Shared by the launcher (`pcpsim cluster up --isolated/--rt`, via coordinator.tools.cluster) and
by a node that derives its own role from its CPU number (`--isolated/--rt`,
PCPSIM_ISOLATED/PCPSIM_RT: one setting for every pod of a StatefulSet). A role's name
(`isolated-rt`) is also its `role` label value in metrics and Prometheus targets. Pure: no I/O.
"""

from collections.abc import Sequence

from node.api.v1 import pcpsim_pb2 as pb

ROLE_RT = "isolated-rt"
ROLE_PREEMPTIBLE = "isolated-preemptible"
ROLE_HOUSEKEEPING = "housekeeping"
# The roles of a NOHZ_FULL CPU (one that runs a latency task): the machine's nohz_full= list.
NOHZ_FULL_ROLES = (pb.ROLE_ISOLATED_PREEMPTIBLE, pb.ROLE_ISOLATED_RT)
# The most CPUs a cluster has: a process each, on one machine (`python -m coordinator --nodes`,
# `pcpsim cluster up --nodes`); a CPU number is below it wherever it is given.
MAX_CPUS = 1024


def parse_cpu_list(text: str, nr_cpus: int | None = None) -> list[int]:
    """Parse a kernel-style CPU list ("1,3", "2-3", "") into sorted CPU numbers.

    With `nr_cpus`, every CPU must be below it; without, below MAX_CPUS (a node does not know the
    cluster's size before it registers)."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if hi else int(lo)
        except ValueError:
            raise ValueError(f"bad CPU list item {part!r} (expected N or N-M)") from None
        if first > last or first < 0:
            raise ValueError(f"bad CPU list item {part!r} (expected N or N-M with N <= M)")
        if last >= (nr_cpus or MAX_CPUS):
            raise ValueError(f"CPU list item {part!r} is outside 0-{(nr_cpus or MAX_CPUS) - 1}")
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def role_for_cpu(cpu: int, isolated: list[int], rt: list[int]) -> str:
    """The role of `cpu` under the map: isolated CPUs run a latency task (RT if also in
    `rt`), the others are housekeeping. RT CPUs must be isolated, as for `cluster up`."""
    if not set(rt) <= set(isolated):
        raise ValueError(f"RT CPUs {sorted(set(rt) - set(isolated))} are not isolated")
    return ROLE_RT if cpu in rt else ROLE_PREEMPTIBLE if cpu in isolated else ROLE_HOUSEKEEPING


def nohz_full(roles: Sequence[str]) -> list[int]:
    """The isolated CPUs of a role map (each CPU's role by its flags' spelling): its nohz_full= list."""
    return [cpu for cpu, role in enumerate(roles) if role in (ROLE_RT, ROLE_PREEMPTIBLE)]


def role_label(role: int) -> str:
    """The flags' spelling of a Role (ROLE_ISOLATED_RT -> "isolated-rt"), used as a label value;
    "unknown" for a number the wire contract does not name."""
    try:
        name = pb.Role.Name(role)
    except ValueError:
        return "unknown"
    return name.removeprefix("ROLE_").lower().replace("_", "-")
