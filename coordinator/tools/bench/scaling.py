"""Figure 3 of `pcpsim bench`: drain_all_pages against the number of CPUs, per strategy."""

import os
import statistics

from coordinator.tools.bench.figure import Figure, linear_fit, log
from coordinator.tools.bench.streams import Stream, rtt_control, tiny_cluster
from node.api.v1 import pcpsim_pb2 as pb
from node.api.v1 import pcpsim_pb2_grpc as pb_grpc

FULL_SCALING_NS = (1, 2, 4, 8, 16, 32)
QUICK_SCALING_NS = (1, 2, 4, 8)


def bench_scaling(quick: bool, run_dir: str, plot_path: str | None) -> tuple[list[Figure], dict]:
    ns = QUICK_SCALING_NS if quick else FULL_SCALING_NS
    reps = 7 if quick else 15
    med: dict[str, list[float]] = {"workqueue": [], "remote": []}
    rtts = []
    strategies = {"workqueue": pb.STRATEGY_WORKQUEUE, "remote": pb.STRATEGY_REMOTE}
    for n in ns:
        log(f"scaling: N={n}")
        with tiny_cluster(["idle"] * n, os.path.join(run_dir, f"scale-{n}")) as cluster:
            node0 = cluster.ready.nodes[0]
            with cluster.channel(cluster.coordinator_address) as cch, cluster.channel(node0.address) as nch:
                coord = pb_grpc.CoordinatorStub(cch)
                ctl = Stream(pb_grpc.NodeStub(nch).PcpControl, "bench-pcp-control")
                try:
                    for _ in range(20):
                        rtt_control(ctl, 0)
                    samples: dict[str, list[float]] = {k: [] for k in strategies}
                    for i in range(reps + 1):  # the first round warms every channel and stream
                        for name, strategy in strategies.items():
                            rtts.append(rtt_control(ctl, 0))
                            r = coord.DrainAllPages(
                                pb.DrainAllRequest(strategy=strategy, force_all_cpus=True, trigger=pb.TRIGGER_DEMAND),
                                timeout=60.0,
                            )
                            if r.status != pb.DrainAllReply.DONE or len(r.cpus) != n:
                                raise RuntimeError(
                                    f"drain_all_pages {name} at N={n}: "
                                    f"{pb.DrainAllReply.Status.Name(r.status)}, {len(r.cpus)} CPUs"
                                )
                            if i:
                                samples[name].append(r.duration_s)
                finally:
                    ctl.close()
        for name in strategies:
            med[name].append(statistics.median(samples[name]))
    rtt = statistics.median(rtts)
    slopes = {name: linear_fit(list(ns), med[name]) for name in strategies}
    note = f"N = {list(ns)}, idle CPUs, force_all_cpus, median of {reps} per point, least-squares slope"
    figs = [
        Figure(f"drain_all_pages {name}: per-CPU slope vs stream RTT", slopes[name][0], rtt, "s", None, note)
        for name in strategies
    ]
    figs.append(
        Figure(
            "per-CPU slope workqueue / remote",
            slopes["workqueue"][0],
            slopes["remote"][0],
            "s",
            None,
            "ratio of the two slopes",
        )
    )
    detail = {
        "n": list(ns),
        "median_duration_s": med,
        "rtt_s": rtt,
        "fit": {k: {"slope_s": v[0], "intercept_s": v[1]} for k, v in slopes.items()},
    }
    if plot_path:
        from coordinator.tools.bench.plot import plot_scaling

        detail["plot"] = plot_scaling(detail, plot_path)
    return figs, detail
