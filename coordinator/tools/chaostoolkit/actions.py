"""Chaos Toolkit actions on a running cluster: process faults (real signals), network and CPU
faults (SetFaults, as the chaos nemesis sets them), drains and the other drain triggers.

Every function takes the experiment's arguments by name, checks them (a ValueError naming the
argument, before anything is changed) and returns what it did, which the journal records.
A CPU's SetFaults rules and slowness are set together: `partition_cpu`, `slow_cpu` and
`heal_cpu` each replace the CPU's whole fault set, so `heal_cpu` undoes either.
"""

import os
import signal
import time

from coordinator.drain.record import STRATEGY_NAMES
from coordinator.tools.chaos.nemesis import PARTITION
from coordinator.tools.chaos.processes import process_state
from coordinator.tools.chaostoolkit import target
from coordinator.tools.chaostoolkit.load import DrainLoad
from node.api.v1 import pcpsim_pb2 as pb

_load: DrainLoad | None = None  # start_drains' load: one `chaos run` is one process


def kill_cpu(cpu: int, wait_rejoin_s: float = 30.0, configuration: dict | None = None) -> dict:
    """SIGKILL the CPU's process. `cluster up` starts it again; with wait_rejoin_s > 0, return once
    the coordinator lists a new incarnation of the CPU up (or fail after that long)."""
    t = target.Target(configuration)
    cpu = t.cpu(cpu)
    wait = target.number("wait_rejoin_s", wait_rejoin_s, 0, 600)
    before = t.node_info(cpu).incarnation
    pid = t.pid(cpu)
    os.kill(pid, signal.SIGKILL)
    if wait == 0:
        return {"cpu": cpu, "pid": pid, "incarnation": before}
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        node = t.node_info(cpu)
        if node.up and not node.dead and node.incarnation != before:
            return {"cpu": cpu, "pid": pid, "incarnation": before, "new_incarnation": node.incarnation}
        time.sleep(0.1)
    raise RuntimeError(f"cpu{cpu} did not rejoin within {wait} s of its kill (is `pcpsim cluster up` running?)")


def stop_cpu(cpu: int, configuration: dict | None = None) -> dict:
    """SIGSTOP the CPU's process: it holds its pages and answers nothing until resumed."""
    t = target.Target(configuration)
    pid = t.pid(t.cpu(cpu))
    os.kill(pid, signal.SIGSTOP)
    return {"cpu": cpu, "pid": pid}


def resume_cpu(cpu: int, configuration: dict | None = None) -> dict:
    """SIGCONT the CPU's process (harmless if it runs)."""
    t = target.Target(configuration)
    pid = t.pid(t.cpu(cpu))
    was = process_state(pid)
    os.kill(pid, signal.SIGCONT)
    return {"cpu": cpu, "pid": pid, "was_stopped": was == "T"}


def partition_cpu(cpu: int, configuration: dict | None = None) -> dict:
    """Cut the CPU off: every request it receives or sends is lost (its slowness is cleared)."""
    return _set_faults(configuration, cpu, list(PARTITION), 1.0)


def slow_cpu(cpu: int, factor: float, configuration: dict | None = None) -> dict:
    """Multiply the CPU's modeled costs by `factor` (1 to 1000; a partition is cleared)."""
    return _set_faults(configuration, cpu, [], target.number("factor", factor, 1, 1000))


def heal_cpu(cpu: int, configuration: dict | None = None) -> dict:
    """Clear the CPU's partition and slowness."""
    return _set_faults(configuration, cpu, [], 1.0)


def drain(strategy: str, force_all_cpus: bool = False, configuration: dict | None = None) -> dict:
    """One drain_all_pages; its outcome (a FAILED drain is data, not an error of the action)."""
    s = target.strategy(strategy)
    if not isinstance(force_all_cpus, bool):
        raise ValueError(f"force_all_cpus: expected true or false, got {force_all_cpus!r}")
    with target.Target(configuration).coordinator() as stub:
        r = stub.DrainAllPages(
            pb.DrainAllRequest(strategy=s, force_all_cpus=force_all_cpus, trigger=pb.TRIGGER_DEMAND), timeout=120.0
        )
    return {
        "status": pb.DrainAllReply.Status.Name(r.status),
        "strategy": STRATEGY_NAMES[r.strategy],
        "duration_s": r.duration_s,
        "cpus": {str(c.cpu): {"pages": c.pages, "wait_s": c.wait_s, "ok": c.ok} for c in r.cpus},
    }


def start_drains(
    strategy: str, interval_ms: int = 150, seed: int = 1, max_s: float = 600.0, configuration: dict | None = None
) -> dict:
    """Start draining in the background, about every interval_ms on compare's seeded schedule,
    until `stop_drains` (the rollback) or max_s."""
    global _load
    if _load is not None and _load.running():
        raise RuntimeError("drains already run: stop_drains first")
    load = DrainLoad(
        target.Target(configuration),
        target.strategy(strategy),
        target.whole("interval_ms", interval_ms, 1) / 1000.0,
        target.whole("seed", seed),
        target.number("max_s", max_s, 0.1, 86400),
    )
    load.start()
    _load = load
    return {"strategy": strategy, "interval_ms": interval_ms, "seed": seed}


def stop_drains(configuration: dict | None = None) -> dict:
    """Stop start_drains' load; how many drains it ran, by outcome (empty if none ran)."""
    global _load
    if _load is None:
        return {}
    load, _load = _load, None
    return load.stop()


def cma_alloc(pages: int, start_pfn: int = 0, timeout_ms: int = 0, configuration: dict | None = None) -> dict:
    """alloc_contig_range of `pages` from start_pfn (0: the zone's last pages), draining as the kernel does."""
    return _contig(configuration, "AllocContigRange", pages, start_pfn, timeout_ms)


def offline_pages(pages: int, start_pfn: int = 0, timeout_ms: int = 0, configuration: dict | None = None) -> dict:
    """offline_pages of the range: zone_pcp_disable and a forced drain, then the range leaves the buddy."""
    return _contig(configuration, "OfflinePages", pages, start_pfn, timeout_ms)


def release_range(start_pfn: int, pages: int, configuration: dict | None = None) -> dict:
    """Give a CMA or offline range back to the buddy (the rollback of the two above)."""
    request = pb.ReleaseRangeRequest(
        start_pfn=target.whole("start_pfn", start_pfn), nr_pages=target.whole("pages", pages, 1)
    )
    with target.Target(configuration).coordinator() as stub:
        r = stub.ReleaseRange(request, timeout=30.0)
    return {"owner": r.owner, "free_pages": r.free_pages}


def cpu_offline(cpu: int, configuration: dict | None = None) -> dict:
    """CPU hotplug: take the CPU offline (a survivor drains its lists)."""
    return _hotplug(configuration, cpu, False)


def cpu_online(cpu: int, configuration: dict | None = None) -> dict:
    """CPU hotplug: bring the CPU back online."""
    return _hotplug(configuration, cpu, True)


def await_cpus(timeout_s: float = 30.0, configuration: dict | None = None) -> dict:
    """Wait until every CPU is up (a killed one restarted, a partitioned one rejoined); fail after timeout_s."""
    t = target.Target(configuration)
    up, total = t.wait_up(target.number("timeout_s", timeout_s, 0, 600))
    if up < total:
        raise RuntimeError(f"only {up} of {total} CPUs up after {timeout_s} s")
    return {"up": up}


def _set_faults(configuration, cpu, rules: list, factor: float) -> dict:
    t = target.Target(configuration)
    cpu = t.cpu(cpu)
    with t.node(cpu) as stub:
        r = stub.SetFaults(pb.FaultsRequest(rules=rules, cost_factor=factor), timeout=target.RPC_TIMEOUT_S)
    return {"cpu": cpu, "rules": len(rules), "cost_factor": factor, "injected": dict(r.injected)}


def _contig(configuration, method: str, pages, start_pfn, timeout_ms) -> dict:
    request = pb.ContigRangeRequest(
        start_pfn=target.whole("start_pfn", start_pfn),
        nr_pages=target.whole("pages", pages, 1),
        timeout_ms=target.whole("timeout_ms", timeout_ms),
    )
    with target.Target(configuration).coordinator() as stub:
        r = getattr(stub, method)(request, timeout=request.timeout_ms / 1000.0 + 120.0)
    if not r.ok:
        raise RuntimeError(f"{method} [{r.start_pfn}, +{r.nr_pages}) failed: {r.error}")
    return {"start_pfn": r.start_pfn, "pages": r.nr_pages, "duration_s": r.duration_s, "drains": len(r.drains)}


def _hotplug(configuration, cpu, online: bool) -> dict:
    t = target.Target(configuration)
    cpu = t.cpu(cpu)
    with t.coordinator() as stub:
        r = stub.SetCpuOnline(pb.CpuOnlineRequest(cpu=cpu, online=online), timeout=120.0)
    return {"cpu": cpu, "online": online, "online_cpus": r.online_cpus, "high": r.high, "batch": r.batch}
