"""Figure 4 of `pcpsim bench`: the latency task's wake-up lateness with no drains, against a bare timer."""

import os
import time

from coordinator.tools.bench.figure import Figure
from coordinator.tools.cluster import ClusterConfig, LocalCluster
from coordinator.tools.stats import percentile
from node import wake_probe
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc

TIMER_PERIOD_S = 0.020


def bench_noise(quick: bool, run_dir: str) -> tuple[list[Figure], dict]:
    warmup_s, measure_s = (2.0, 30.0) if quick else (3.0, 60.0)
    roles = ["housekeeping", "isolated-preemptible"]
    probe_dir = os.path.join(run_dir, "noise-probe")
    os.makedirs(probe_dir, exist_ok=True)
    with LocalCluster(
        ClusterConfig(roles=roles, node_args=["--wake-probe", probe_dir]), os.path.join(run_dir, "noise")
    ) as cluster:
        node = next(n for n in cluster.ready.nodes if n.role == pb.ROLE_ISOLATED_PREEMPTIBLE)
        with cluster.channel(node.address) as ch:
            stub = pb_grpc.NodeStub(ch)
            time.sleep(warmup_s)
            here = wake_probe.WakeProbe(TIMER_PERIOD_S, time.monotonic() + TIMER_PERIOD_S)
            start = time.monotonic()
            stub.GetStats(pb.StatsRequest(cpu=node.cpu, reset=True), timeout=10.0)
            here.start()
            time.sleep(measure_s)
            stats = stub.GetStats(pb.StatsRequest(cpu=node.cpu), timeout=10.0)
            end = time.monotonic()
            here.stop()
    # The node writes its probe's samples when it stops.
    bare = wake_probe.read(os.path.join(probe_dir, f"cpu{node.cpu}.json"), start, end)
    task = list(stats.task.wake_latency_s)
    p_task, p_bare = percentile(task, 99), percentile(bare, 99)
    fig = Figure(
        "latency task wake p99 (no drains) vs bare timer",
        p_task,
        p_bare,
        "s",
        "<= 1.2",
        f"{len(task)} task wake-ups vs {len(bare)} wake-ups of a bare timer thread in the same node "
        f"process (node.wake_probe, 0.25 ms ahead of each task wake) over the same {measure_s:g}s, period "
        f"{TIMER_PERIOD_S * 1e3:g} ms; the same timer in this (idle) process: p99 "
        f"{percentile(here.lateness, 99) * 1e3:.3f} ms",
    )
    return [fig], {
        "task_p50_s": percentile(task, 50),
        "task_p99_s": p_task,
        "bare_p50_s": percentile(bare, 50),
        "bare_p99_s": p_bare,
        "task_samples": len(task),
        "bare_samples": len(bare),
        "bench_process_timer_p50_s": percentile(here.lateness, 50),
        "bench_process_timer_p99_s": percentile(here.lateness, 99),
    }
