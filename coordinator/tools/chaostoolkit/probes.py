"""Chaos Toolkit probes of a running cluster: the audit, how many CPUs are up, and latency and
drain figures over a window of window_s seconds, read from the processes' /metrics (the
quantiles at the histogram buckets' resolution: the figure is at most the value returned).

Each returns a value for the experiment's tolerance: a bool (`true`) or a number (a range
such as [0, 50]). Arguments are checked as the actions check them.
"""

from coordinator.tools.chaostoolkit import target, window
from node.api.v1 import pcpsim_pb2 as pb


def audit_balanced(configuration: dict | None = None) -> bool:
    """Every page of the zone in exactly one place: nothing lost, nothing duplicated."""
    with target.Target(configuration).coordinator() as stub:
        a = stub.Audit(pb.Empty(), timeout=60.0)
    return a.ok and a.lost == 0 and a.duplicated == 0


def cpus_up(timeout_s: float = 0.0, configuration: dict | None = None) -> int:
    """How many CPUs are up, waiting up to timeout_s for all of them (a restart, a rejoin)."""
    return target.Target(configuration).wait_up(target.number("timeout_s", timeout_s, 0, 600))[0]


def wake_p99_ms(cpu: int, window_s: float = 2.0, configuration: dict | None = None) -> float:
    """The 99th percentile of the CPU's latency task's wake-up lateness in the window, in ms."""
    before, after = _node_window(configuration, cpu, window_s, task=True)
    return 1e3 * window.quantile_bound(before, after, "pcpsim_task_wakeup_latency_seconds", 0.99, cpu=str(cpu))


def deadline_misses(cpu: int, window_s: float = 2.0, configuration: dict | None = None) -> int:
    """Periods of the CPU's latency task that missed their deadline in the window."""
    before, after = _node_window(configuration, cpu, window_s, task=True)
    return round(window.increase(before, after, "pcpsim_task_deadline_misses_total", cpu=str(cpu)))


def work_items(cpu: int, window_s: float = 2.0, configuration: dict | None = None) -> int:
    """Work items (a workqueue drain's kworker) that ran on the CPU in the window."""
    before, after = _node_window(configuration, cpu, window_s)
    return round(window.increase(before, after, "pcpsim_workqueue_items_run_total", cpu=str(cpu)))


def drain_p99_ms(cpu: int | None = None, window_s: float = 2.0, configuration: dict | None = None) -> float:
    """The 99th percentile, in ms, of drain_all_pages in the window, or with `cpu` of that CPU's
    part of it (workqueue: queued until flushed; remote: the lock, the drain, the commit)."""
    t = target.Target(configuration)
    labels = {} if cpu is None else {"cpu": str(t.cpu(cpu))}
    name = "pcpsim_drain_all_duration_seconds" if cpu is None else "pcpsim_drain_cpu_duration_seconds"
    (before,), (after,) = window.over([t.state().metrics_address], _window(window_s))
    return 1e3 * window.quantile_bound(before, after, name, 0.99, **labels)


def _window(window_s) -> float:
    return target.number("window_s", window_s, 0.1, 600)


_TASK_ROLES = (pb.ROLE_ISOLATED_PREEMPTIBLE, pb.ROLE_ISOLATED_RT)


def _node_window(configuration, cpu, window_s, task: bool = False):
    t = target.Target(configuration)
    node = t.node_info(t.cpu(cpu))
    if task and node.role not in _TASK_ROLES:
        raise ValueError(f"cpu: cpu{node.cpu} runs no latency task ({pb.Role.Name(node.role)}); isolated CPUs do")
    address = node.metrics_address
    (before,), (after,) = window.over([address], _window(window_s))
    return before, after
