"""Which role each simulated CPU plays: the default layout (`cluster up`'s and `compare`'s), a layout from
--isolated/--rt, and one from an rt-app task set. Both engines' clusters take their roles from here.
"""

from node import rtapp
from node.shared.cpulist import parse_cpu_list, role_for_cpu


def assign_roles(nr_cpus: int, isolated: list[int], rt: list[int]) -> list[str]:
    """Role of each CPU: isolated CPUs run a latency task (RT if listed in `rt`), the rest
    are housekeeping (node.shared.cpulist.role_for_cpu, as a node derives its own). At least
    one housekeeping CPU is required to drive the zone."""
    roles = [role_for_cpu(c, isolated, rt) for c in range(nr_cpus)]
    if len(isolated) >= nr_cpus:
        raise ValueError("at least one CPU must stay a housekeeping CPU")
    return roles


# The layout `pcpsim cluster up` starts without topology flags and `pcpsim compare` measures:
# cpu0 and cpu1 housekeeping (allocation churn and IRQs), cpu2 an isolated preemptible latency
# task, cpu3 an isolated RT latency task. Every series the dashboards and rules read has a CPU
# that produces it.
DEFAULT_NODES, DEFAULT_ISOLATED, DEFAULT_RT = 4, "2-3", "3"
DEFAULT_ROLES = tuple(assign_roles(DEFAULT_NODES, parse_cpu_list(DEFAULT_ISOLATED), parse_cpu_list(DEFAULT_RT)))


def workload_roles(workload: rtapp.Workload, nr_cpus: int | None = None) -> list[str]:
    """Roles for an rt-app task set (node.rtapp): each CPU it names runs its task, the others are
    housekeeping. Without `nr_cpus`, the default layout's 4 CPUs or as many as the set names."""
    return workload.roles(nr_cpus or max(DEFAULT_NODES, max(workload.cpus) + 1))
