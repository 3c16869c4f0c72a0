"""What a compare phase's figures are and what its results file holds, from whichever engine ran it:
the wall engine's processes (coordinator.tools.compare) or virtual time (coordinator.tools.virtual_compare).

summarize_phase turns one phase's CPU statistics (node.api's NodeStats), drain records and audit into its
figures; results assembles the phases into the file `pcpsim report` reads (its fields: compare's
module docstring). Every time in them is in seconds of the engine's clock: `time_scale` of them per
kernel second.
"""

import collections
import hashlib
import json
import math
import os
from dataclasses import asdict
from typing import Any

from coordinator.drain.record import TRIGGER_NAMES
from coordinator.tools.stats import percentile, summary
from node.api.v1 import pcpsim_pb2 as pb
from node.shared.cpulist import role_label
from node.shared.timebase import TIME_SCALE, CostModel
from node.tasks import NOISE_CAUSES

HIST_BUCKET_KERNEL_US = 1  # oslat's bucket width


def _tasks(stats: dict, role: int) -> list:
    return [s for s in stats.values() if s.role == role]


def _task_summary(nodes: list) -> dict:
    """Wake-up latency, runs, misses, drain work and stolen time by cause of the latency tasks on `nodes`."""
    lat = [x for s in nodes for x in s.task.wake_latency_s]
    stolen = dict.fromkeys(NOISE_CAUSES, 0.0)
    misses: dict[str, int] = {}
    for s in nodes:
        for cause, sec in s.task.stolen_s.items():
            stolen[cause] = stolen.get(cause, 0.0) + sec
        for cause, n in s.task.misses_by_cause.items():
            misses[cause] = misses.get(cause, 0) + n
    return {
        "runs": sum(s.task.runs for s in nodes),
        "wake_latency_p50_s": percentile(lat, 50),
        "wake_latency_p99_s": percentile(lat, 99),
        "wake_latency_max_s": max(lat, default=0.0),
        "deadline_misses": sum(s.task.deadline_misses for s in nodes),
        "misses_by_cause": dict(sorted(misses.items())),
        "drain_work_items": sum(s.drain_work_items for s in nodes),
        "stolen_s": sum(stolen.values()),
        "stolen_by_cause_s": stolen,
    }


def wake_histogram(latencies_s, time_scale: float = TIME_SCALE) -> dict[str, int]:
    """Wake-up latencies as oslat counts them: {bucket: count}, bucket = whole kernel us
    (floor(wall / time_scale), so bucket "3" holds [3, 4) us). Keys are strings for JSON."""
    hist: dict[int, int] = {}
    for lat in latencies_s:
        bucket = max(0, math.floor(lat / time_scale * 1e6 / HIST_BUCKET_KERNEL_US)) * HIST_BUCKET_KERNEL_US
        hist[bucket] = hist.get(bucket, 0) + 1
    return {str(b): n for b, n in sorted(hist.items())}


def cpu_detail(s, time_scale: float = TIME_SCALE) -> dict:
    """The raw per-CPU record of one latency CPU (see the module docstring); `time_scale`: seconds of
    the record's clock per kernel second (1.0 under virtual time)."""
    t, lat = s.task, list(s.task.wake_latency_s)
    return {
        "role": role_label(s.role),
        "kind": t.kind,
        "period_s": t.period_s,
        "wake_latency_hist_kernel_us": wake_histogram(lat, time_scale),
        "wake_latency_min_s": min(lat, default=0.0),
        "wake_latency_avg_s": sum(lat) / len(lat) if lat else 0.0,
        "wake_latency_max_s": max(lat, default=0.0),
        "wake_latency_last_s": lat[-1] if lat else 0.0,
        "wake_latency_p50_s": percentile(lat, 50),
        "wake_latency_p99_s": percentile(lat, 99),
        "runs": t.runs,
        "deadline_misses": t.deadline_misses,
        "misses_by_cause": dict(sorted(t.misses_by_cause.items())),
        "stolen_s": dict(t.stolen_s),
        "noise_events": dict(t.noise_events),
        "max_single_noise_s": t.max_single_noise_s,
        "drain_work_items": s.drain_work_items,
        "drain_wait_max_s": s.drain_wait_max_s,
    }


def summarize_phase(stats: dict, history, audit, errors: list, contig=(), time_scale: float = TIME_SCALE) -> dict:
    done = [d for d in history if d.status == pb.DrainAllReply.DONE]
    durations = [d.duration_s for d in done]
    out = {
        "drain_all": {**summary(durations), "durations_s": durations},
        # rcu-swap: how long each drain waited for its slowest CPU's quiescent state (0 otherwise).
        "grace_period": summary([d.grace_period_s for d in done]),
        "cpus": {
            str(cpu): cpu_detail(s, time_scale)
            for cpu, s in sorted(stats.items())
            if s.role in (pb.ROLE_ISOLATED_PREEMPTIBLE, pb.ROLE_ISOLATED_RT)
        },
        "drain_all_failed": sum(1 for d in history if d.status == pb.DrainAllReply.FAILED),
        "drain_rpc_errors": errors[:10],
        "drains_by_trigger": dict(collections.Counter(TRIGGER_NAMES[d.trigger] for d in history)),
    }
    if contig:  # cma / offline events (--trigger-mix): each whole operation, drains and retries included
        ok = [c["duration_s"] for c in contig if c["ok"]]
        out["contig"] = {
            **summary(ok),
            "failed": len(contig) - len(ok),
            "by_trigger": dict(collections.Counter(c["trigger"] for c in contig)),
            "errors": [c["error"] for c in contig if not c["ok"]][:10],
        }
    pre = _tasks(stats, pb.ROLE_ISOLATED_PREEMPTIBLE)
    rt = _tasks(stats, pb.ROLE_ISOLATED_RT)
    if pre:
        out["isolated_preemptible"] = {
            **_task_summary(pre),
            "max_single_noise_s": max(s.task.max_single_noise_s for s in pre),
        }
    if rt:
        out["isolated_rt"] = {**_task_summary(rt), "drain_wait_max_s": max(s.drain_wait_max_s for s in rt)}
    out["pcp"] = {
        "trylock_failures": sum(s.trylock_failures for s in stats.values()),
        "buddy_fallbacks": sum(s.buddy_fallbacks for s in stats.values()),
        "alloc_failures": sum(s.alloc_failures for s in stats.values()),
        "allocs": sum(s.allocs for s in stats.values()),
    }
    out["audit"] = {
        "ok": audit.ok,
        "lost": audit.lost,
        "duplicated": audit.duplicated,
        "unexpected": audit.unexpected,
        "errors": list(audit.errors)[:10],
    }
    return out


def results(config: Any, phases: dict, costs: CostModel) -> dict:
    """The results file from each phase's summarize_phase figures (its drain window included), by phase
    name. `config`: a coordinator.tools.compare_plan.CompareConfig (typed Any: compare imports this module);
    `costs`: those the phases ran with, whose time_scale is the figures' (seconds of the figures' clock
    per kernel second: TIME_SCALE on the wall engine, 1.0 under virtual time)."""
    floor = phases["noise_floor"]
    per_cpu = {name: {"cpus": phase.pop("cpus")} for name, phase in phases.items()}
    for name, phase in phases.items():
        if "drain_window" in phase:
            per_cpu[name]["drain_window"] = phase.pop("drain_window")
    return {
        "seed": config.seed,
        "kernel": config.kernel,
        "time_scale": costs.time_scale,
        "hist_bucket_kernel_us": HIST_BUCKET_KERNEL_US,
        "phases": per_cpu,
        "config": {
            "measure_s": config.measure_s,
            "warmup_s": config.warmup_s,
            "drain_interval_s": config.drain_interval_s,
            "roles": list(config.roles),
            "strategies": list(config.strategies),
            "trigger_mix": dict(config.trigger_mix),
            "workload": input_file(config.workload),
            "cost_model": input_file(config.cost_model),
            "costs": asdict(costs),
        },
        # A task set may have no preemptible task (a cyclictest-like FIFO set): None then.
        "noise_floor": {
            "wake_latency_p99_s": floor.get("isolated_preemptible", {}).get("wake_latency_p99_s"),
            "wake_latency_p50_s": floor.get("isolated_preemptible", {}).get("wake_latency_p50_s"),
            "rt_wake_latency_p99_s": floor.get("isolated_rt", {}).get("wake_latency_p99_s", 0.0),
            "audit": floor["audit"],
        },
        "strategies": {name: phases[name] for name in config.strategies},
    }


def input_file(path: str | None) -> dict | None:
    """A file the run read (its workload, its cost model), as the results name it: its name and its
    contents' sha256. Not its path, which is the host's: one seed gives the same results from any
    checkout, and two files of one name but other contents differ."""
    if path is None:
        return None
    with open(path, "rb") as f:
        return {"file": os.path.basename(path), "sha256": hashlib.sha256(f.read()).hexdigest()}


def results_json(result: dict) -> str:
    """The results file's text: what write_json writes, byte for byte."""
    return json.dumps(result, indent=2, sort_keys=True)


def write_json(result: dict, path: str) -> None:
    with open(path, "w") as f:
        f.write(results_json(result))
