"""What a CPU reports, the same in both engines: GetStats' change of its lifetime counters and its
latency task's figures, and GetEvents' logged events in a window. node.runtime answers the RPCs with
them in wall time; coordinator.tools.virtual_phase reads its virtual CPUs with them.
"""

from typing import Any

from node.alloc import PageAllocator
from node.api.v1 import pcpsim_pb2 as pb
from node.cpu import Cpu
from node.mm import pcp as pcpmod
from node.tasks import LatencyTask

ROLES = {
    "housekeeping": pb.ROLE_HOUSEKEEPING,
    "isolated-preemptible": pb.ROLE_ISOLATED_PREEMPTIBLE,
    "isolated-rt": pb.ROLE_ISOLATED_RT,
    "idle": pb.ROLE_IDLE,
}


def counters(stats: pcpmod.PcpStats, alloc: PageAllocator, cpu: Cpu) -> dict[str, Any]:
    """A CPU's lifetime counters GetStats reports the change of (the virtual driver's too)."""
    return {
        "trylock": stats.trylock_fail_alloc + stats.trylock_fail_free,
        "fallback": stats.buddy_fallback_alloc + stats.buddy_fallback_free,
        "alloc_failures": alloc.alloc_failures,
        "allocs": alloc.allocs,
        "frees": alloc.frees,
        "busy": cpu.busy_s,
        "drain_items": cpu.drain_work_items,
    }


def stats_since(
    cpu_id: int,
    role: str,
    now: dict[str, Any],
    base: dict[str, Any],
    drain_wait_max_s: float,
    task: LatencyTask | None,
) -> pb.NodeStats:
    """GetStats' answer: the change of a CPU's counters (`counters`) from `base` to `now`, and its latency
    task's figures since the task's last reset_stats."""
    d = {k: now[k] - base[k] for k in now}
    msg = pb.NodeStats(
        cpu=cpu_id,
        role=ROLES[role],
        drain_work_items=d["drain_items"],
        drain_wait_max_s=drain_wait_max_s,
        trylock_failures=d["trylock"],
        buddy_fallbacks=d["fallback"],
        alloc_failures=d["alloc_failures"],
        allocs=d["allocs"],
        frees=d["frees"],
        busy_s=d["busy"],
    )
    if task is not None:
        w = task.window
        msg.task.CopyFrom(
            pb.LatencyTaskStats(
                kind=task.kind,
                period_s=task.period,
                wake_latency_s=task.wake_latency,
                runs=w.runs,
                deadline_misses=w.deadline_misses,
                stolen_s=w.stolen_s,
                noise_events=w.noise_events,
                max_single_noise_s=w.max_single_noise_s,
                misses_by_cause=w.misses_by_cause,
            )
        )
    return msg


def cpu_events(cpu: Cpu, alloc: PageAllocator, task, drain, start: float, end: float, now: float) -> list[pb.CpuEvent]:
    """A CPU's logged events overlapping [start, end] (node.eventlog), by start: work items and IRQs, the
    remote drainer's grants (`drain`'s records: the pcp lock held; rcu-swap: the list set swapped out
    until the commit), buddy fallbacks after a failed trylock, the latency task's activations (`task`,
    or None). `now` ends a grant still open. The virtual engine reads its CPUs with it too
    (coordinator.tools.virtual_phase)."""
    lanes = [
        ("work", cpu.noise.between(start, end)),
        ("fallback", alloc.fallbacks.between(start, end)),
        ("task", task.activations.between(start, end) if task else []),
        (
            "lock",
            [
                (g.granted_at, g.ended_at or now, g.outcome)
                for g in drain.records()
                if g.granted_at <= end and (g.ended_at or now) >= start
            ],
        ),
    ]
    out = [pb.CpuEvent(lane=lane, kind=k, start_s=s, end_s=e) for lane, evs in lanes for s, e, k in evs]
    out.sort(key=lambda ev: ev.start_s)
    return out
